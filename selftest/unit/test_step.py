"""phases.step: whatever an operation raises, the failure is journalled and the run stops with a record
that the report and --resume read (an error no operation names, too)."""
from __future__ import annotations

import threading
from types import SimpleNamespace

import pytest

from entsso import journal, phases
from entsso.journal import Journal


def _run(tmp_path):  # type: ignore[no-untyped-def]
    return SimpleNamespace(step_gate=threading.Lock(), stopped=None, journal=Journal(tmp_path / "journal.jsonl", "r1"),
                           resume_command=lambda: "pytest --inventory=prod.yml --resume r1")


def _fails(exc: Exception):  # type: ignore[no-untyped-def]
    def action():  # type: ignore[no-untyped-def]
        raise exc
    return action


@pytest.mark.parametrize("exc", [RuntimeError("the node did not answer"), ValueError("an unforeseen answer")],
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
    assert "--resume r1" in str(err.value)
