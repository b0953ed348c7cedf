"""A pytest plugin the benchmark loads into the suite's own process (`-p selftest.bench.recorder`).

It changes nothing the suite does: it listens to the run's CallLog, copies its StatementLog, notes when
each phase starts and ends (the journal's phase_started / phase_finished, timed here with time.time()
like CallRecord.started), how long each Poller sleeps and how much CPU the suite's process and the lab's
spent on each snapshot of the estate (the gate's is the first), and writes all of it to
<run dir>/bench.json when the session ends, for selftest.bench.measure to turn into figures."""
from __future__ import annotations

import json
import os
import time
from typing import Any, Callable

import pytest

from entsso.plugin import RUN_KEY

_STATE: dict[str, Any] = {}


def _wrap_journal(run: Any, windows: list[dict[str, Any]]) -> None:
    journal_write: Callable[..., Any] = run.journal.write

    def write(kind: str, **fields: Any) -> Any:
        if kind in ("phase_started", "rehearsal_started"):  # the rehearsal before phase 1 is a window too
            phase = fields.get("phase") if kind == "phase_started" else "rehearsal"
            windows.append({"phase": phase, "start": time.time(), "end": None})
        record = journal_write(kind, **fields)
        if kind in ("phase_finished", "rehearsal"):
            phase = fields.get("phase") if kind == "phase_finished" else "rehearsal"
            for w in reversed(windows):
                if w["phase"] == phase and w["end"] is None:
                    w["end"] = time.time()
                    break
        return record

    run.journal.write = write  # instance attribute: Journal.intent/result go through it too


def _wrap_poller(poller: Any, name: str, sleeps: list[dict[str, Any]]) -> None:
    real_sleep = poller.sleep

    def sleep(seconds: float) -> None:
        sleeps.append({"poller": name, "start": time.time(), "seconds": seconds})
        real_sleep(seconds)

    poller.sleep = sleep


def _lab_cpu(run: Any) -> float | None:
    """CPU seconds the lab's process has used (Linux /proc), or None."""
    proc = getattr(getattr(run, "lab", None), "_proc", None)
    try:
        fields = open(f"/proc/{proc.pid}/stat").read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime
    except (AttributeError, OSError, ValueError, IndexError):
        return None


def _wrap_snapshot(run: Any, snapshots: list[dict[str, Any]]) -> None:
    real = run.snapshot

    def snapshot(*, fresh: bool = False) -> Any:
        first = run._snapshot is None
        start, cpu, lab = time.time(), time.process_time(), _lab_cpu(run)
        result = real(fresh=fresh)
        if fresh or first:  # a snapshot that asked the estate (not the kept one)
            lab_end = _lab_cpu(run)
            snapshots.append({"start": start, "seconds": time.time() - start, "hosts": len(result.hosts),
                              "suite_cpu": time.process_time() - cpu,
                              "lab_cpu": None if lab is None or lab_end is None else lab_end - lab})
        return result

    run.snapshot = snapshot


@pytest.hookimpl(trylast=True)
def pytest_configure(config: pytest.Config) -> None:
    run = config.stash.get(RUN_KEY, None)
    if run is None:
        return
    _STATE.update(run=run, configured=time.time(), windows=[], sleeps=[], calls=[], snapshots=[])
    run.calls.listeners.append(lambda r: _STATE["calls"].append(
        {"host": r.host, "operation": r.operation, "start": r.started, "seconds": r.seconds, "outcome": r.outcome}))
    _wrap_journal(run, _STATE["windows"])
    _wrap_poller(run.poller, "poller", _STATE["sleeps"])
    _wrap_poller(run.poller_slow, "poller_slow", _STATE["sleeps"])
    _wrap_snapshot(run, _STATE["snapshots"])


def pytest_sessionfinish(session: pytest.Session) -> None:
    if "run" in _STATE:
        _STATE["finished"] = time.time()


@pytest.hookimpl(tryfirst=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    run = _STATE.get("run")
    if run is None:
        return
    statements = [{"start": s.started, "seconds": s.seconds, "database": s.database, "outcome": s.outcome}
                  for s in list(run.statements.records)]
    doc = {"configured": _STATE["configured"], "finished": _STATE.get("finished", time.time()),
           "calls": _STATE["calls"], "statements": statements, "phases": _STATE["windows"],
           "sleeps": _STATE["sleeps"], "snapshots": _STATE["snapshots"],
           "polls": {"poller": run.poller.polls, "poller_slow": run.poller_slow.polls}}
    (run.dir / "bench.json").write_text(json.dumps(doc, indent=1))
