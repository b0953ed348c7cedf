"""The suite's own fixtures, for entsso.plugin (the runbook's phase fixtures are in fixtures/): the run, the
estate as first observed and its baseline, judge (a finding fails the test, with the fact it judged as
evidence), and testinfra's `host` for the site's checks."""
from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import fields, is_dataclass
from datetime import datetime
from typing import Any

import pytest

from entsso.change.run import Baseline, Run
from entsso.estate.snapshot import Snapshot
from entsso.report.keys import RUN_KEY

EVIDENCE_KEY = pytest.StashKey[list[tuple[str, str]]]()  # a test's evidence: (name, text), for the report


@pytest.fixture(scope="session")
def run(request: pytest.FixtureRequest) -> Run:
    r = request.config.stash.get(RUN_KEY, None)
    if r is None:
        pytest.fail("the entsso suite needs an estate: --inventory FILE or --lab", pytrace=False)
    return r


@pytest.fixture(scope="session")
def estate(run: Run) -> Snapshot:
    """The estate as first observed: each host asked once."""
    started = time.monotonic()
    snap = run.snapshot()
    _find_change_start(run)  # before any phase acts
    _read_topology(run, snap)
    assert run.journal is not None  # build_run opened it
    run.journal.write("snapshot", phase="estate", seconds=round(time.monotonic() - started, 3),
                      winrm_calls=run.calls.count(), sql_statements=run.statements.count())
    return snap


def _read_topology(run: Run, snap: Snapshot) -> None:
    """The cluster's topology (issue 26), named once in the journal, the report and summary.json."""
    from entsso.estate.checks import topology

    run.topology = topology.summary(snap, run)
    if run.topology is not None and run.journal is not None:
        run.journal.write("topology", **run.topology)


def _find_change_start(run: Run) -> datetime:
    """When this change began (its backups must be newer): Run.change_started finds it once and journals
    it with its source (the change record, the master secret backup, or now)."""
    return run.change_started


@pytest.fixture(scope="session")
def baseline(run: Run, estate: Snapshot) -> Baseline:
    """What ran and was enabled before the change (kept for phase 7 and for --resume)."""
    return run.baseline()


@pytest.fixture
def judge(request: pytest.FixtureRequest) -> Callable[..., None]:
    """judge(finding, fact): attach the fact judged as evidence, then fail with the finding if any."""
    def _judge(finding: Any, fact: Any = None) -> None:
        if fact is not None:
            _attach(request, "fact judged", fact)
        if finding is not None:
            pytest.fail(str(finding), pytrace=False)

    return _judge


def _attach(request: pytest.FixtureRequest, name: str, fact: Any) -> None:
    text = json.dumps(_plain(fact), indent=2, default=str, sort_keys=True)
    extras = request.node.stash.setdefault(EVIDENCE_KEY, [])
    extras.append((name, text))


def _plain(o: Any) -> Any:
    """A fact as JSON-able data, without the raw documents ("raw") it was parsed from. One pass over the
    fields (dataclasses.asdict deep-copies first: most of a gate test's own time on a large estate)."""
    if is_dataclass(o) and not isinstance(o, type):
        return {f.name: _plain(getattr(o, f.name)) for f in fields(o) if f.name != "raw"}
    if isinstance(o, dict):
        return {str(k): _plain(v) for k, v in o.items() if k != "raw"}
    if isinstance(o, (list, tuple)):
        return [_plain(v) for v in o]
    if isinstance(o, datetime):
        return o.isoformat()
    return o


@pytest.fixture(scope="session")
def testinfra_host(run: Run) -> Callable[[str], Any]:
    """testinfra_host("NODE1") -> a pytest-testinfra Host (winrm backend, cmd shell) for simple per-host
    checks (host.run, host.check_output), reached with the suite's own WinRM settings and credentials,
    never through a URL that holds the password (entsso.change.sitechecks). PowerShell goes through
    entsso.remote.winrm."""
    from entsso.change.sitechecks import testinfra_host as make

    cache: dict[str, Any] = {}

    def get(name: str) -> Any:
        if name not in cache:
            cache[name] = make(run, name)
        return cache[name]

    return get


@pytest.fixture
def host(request: pytest.FixtureRequest, run: Run, testinfra_host: Callable[[str], Any]) -> Any:
    """testinfra's `host`, for the site's checks: one of the estate's hosts, in the gate (before anything
    changes) or after the change (once phase 7 has put BizTalk back). Overrides pytest-testinfra's own
    `host` (its --hosts URLs would carry the password)."""
    param = getattr(request, "param", None)
    if param is None:
        pytest.fail("`host` is the site checks' fixture: put the test in the folder the inventory's site_checks "
                    "names (or --site-checks)", pytrace=False)
    name, moment = param
    if moment == "after":
        request.getfixturevalue("resumed")  # the whole change, as the suite's own post tests have it
    h = testinfra_host(name)
    h.estate_name = name
    return h
