"""phases.step: whatever an operation raises, the failure is journalled and the run stops with a record
that the report and --resume read (an error no operation names, too)."""
from __future__ import annotations

import threading
from types import SimpleNamespace

import pytest

from entsso.change import journal, steps as phases
from entsso.change.journal import Journal
from entsso.domain.errors import DomainError
from entsso.domain.poll import WaitTimedOut
from entsso.remote.sql import SqlError
from entsso.remote.winrm import RemoteError


def _run(tmp_path):  # type: ignore[no-untyped-def]
    return SimpleNamespace(step_gate=threading.Lock(), stopped=None, interrupted=None, in_flight={},
                           journal=Journal(tmp_path / "journal.jsonl", "r1"),
                           resume_command=lambda: "pytest --inventory=prod.yml --apply --change-ticket CHG1")


def _fails(exc: Exception):  # type: ignore[no-untyped-def]
    def action():  # type: ignore[no-untyped-def]
        raise exc
    return action


@pytest.mark.parametrize("exc", [DomainError("the node did not answer"), ValueError("an unforeseen answer")],
                         ids=["named", "unexpected"])
def test_a_failed_step_is_journalled_and_stops_the_run(tmp_path, exc):
    run = _run(tmp_path)
    with pytest.raises(pytest.fail.Exception) as err:
        phases.step(run, "recluster", "put the secret backup on the node", "NODE2", _fails(exc))
    run.journal.close()
    records = list(journal.read(tmp_path / "journal.jsonl"))
    assert [(r["kind"], r.get("outcome")) for r in records] == [
        ("intent", None), ("result", "failed"), ("phase_stopped", None)]
    assert str(exc) in records[1]["error"] and str(exc) in str(err.value)
    assert run.stopped is not None and run.stopped[0] == "recluster"
    assert "--apply --change-ticket CHG1" in str(err.value)
    assert run.in_flight == {}


def test_a_step_interrupted_while_it_runs_is_journalled_interrupted_and_the_interrupt_goes_on(tmp_path):
    run = _run(tmp_path)

    def action():  # type: ignore[no-untyped-def]
        run.interrupted = "SIGTERM"  # what the plugin's signal handler sets before raising
        raise KeyboardInterrupt("SIGTERM: the run was interrupted")

    with pytest.raises(KeyboardInterrupt):
        phases.step(run, "upgrade", "wait for the operator's upgrade", "NODE2", action)
    records = list(journal.read(tmp_path / "journal.jsonl"))
    assert [(r["kind"], r.get("outcome")) for r in records] == [("intent", None), ("result", "interrupted")]
    assert "SIGTERM" in records[1]["error"]
    assert run.in_flight == {}


def test_no_step_starts_once_the_run_is_interrupted(tmp_path):
    run = _run(tmp_path)
    run.interrupted = "SIGINT"
    ran = []
    with pytest.raises(pytest.fail.Exception) as err:
        phases.step(run, "silence", "stop host instances", "BTS2", lambda: ran.append(1))
    assert ran == [] and "interrupted (SIGINT)" in str(err.value)
    assert list(journal.read(tmp_path / "journal.jsonl")) == []


@pytest.mark.parametrize("exc", [RuntimeError("a bug"), LookupError("a bug"), KeyError("a bug"), TypeError("a bug")])
def test_a_bug_in_the_suite_is_reported_as_one_even_when_it_raises_runtimeerror(tmp_path, exc):
    run = _run(tmp_path)
    with pytest.raises(pytest.fail.Exception) as err:
        phases.step(run, "upgrade", "start ENTSSO through the SCM", "NODE1", _fails(exc))
    assert "report this error to the entsso-upgrade maintainers" in str(err.value)
    assert type(exc).__name__ in str(err.value)


@pytest.mark.parametrize("exc", [RemoteError("NODE1", "refused", "WinRM refused the call"),
                                 SqlError("login failed"), WaitTimedOut("ENTSSO to start", 60, "Stopped"),
                                 DomainError("the estate refused")], ids=["winrm", "sql", "wait", "domain"])
def test_an_estate_failure_is_named_without_the_maintainers_message(tmp_path, exc):
    run = _run(tmp_path)
    with pytest.raises(pytest.fail.Exception) as err:
        phases.step(run, "upgrade", "start ENTSSO through the SCM", "NODE1", _fails(exc))
    assert "maintainers" not in str(err.value)


def test_a_step_journals_what_its_operation_says_it_did(tmp_path):
    from entsso.domain.outcome import Outcome

    run = _run(tmp_path)
    run.operator = None
    same = phases.step(run, "silence", "disable job", None,
                       lambda: Outcome(False, {"job": "J", "enabled": False}, "the job was already disabled"), job="J")
    did = phases.step(run, "silence", "disable job", None, lambda: Outcome(True, {"job": "K", "enabled": False}),
                      job="K")
    code = phases.step(run, "upgrade", "install the SSO update package", "NODE2",
                       lambda: Outcome(True, {"exit_code": 1603}, word="exit code 1603"))
    read = phases.step(run, "failover", "list the adapter handlers", None, lambda: [{"changed": False}])
    assert (same.changed, did.changed, code.outcome) == (False, True, "exit code 1603")
    assert read == [{"changed": False}]  # a read's result is returned as it is
    results = [r for r in journal.read(tmp_path / "journal.jsonl") if r["kind"] == "result"]
    assert [r["outcome"] for r in results] == ["unchanged", "ok", "exit code 1603", "ok"]  # a read is "ok"
    assert results[0]["noop_reason"] == "the job was already disabled" and results[0]["evidence"]["job"] == "J"
    assert results[2]["evidence"] == {"exit_code": 1603}
