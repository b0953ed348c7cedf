"""The change is the unit, on one estate: this admin box's runs of a ticket recorded the change on their
estate; an estate that, read in full, holds no record of it is not that change's (a new lab, another
inventory) or lost its record. The run refuses before anything changes instead of taking those runs'
phases as done."""
from __future__ import annotations

import shutil

from selftest.e2e.suite import run_suite


def test_a_ticket_recorded_on_another_estate_is_refused_before_anything_changes(full_run, tmp_path):
    assert full_run.returncode == 0, full_run.output[-2000:]
    reports = tmp_path / "reports"
    reports.mkdir()
    shutil.copytree(full_run.dir, reports / full_run.dir.name)  # the admin box's journal of CHG-SELFTEST-1
    run = run_suite(reports, "--lab", "fast", "--apply", "--change-ticket", "CHG-SELFTEST-1")  # a fresh estate
    assert run.returncode != 0
    assert run.lab_state["changes"] == 0, run.lab_state["changes"]
    assert "no node of this estate holds that record now" in run.output, run.output[-3000:]
    assert "Nothing was changed" in run.output
    assert [r["kind"] for r in run.journal() if r["kind"] in ("gate_refused", "intent")] == ["gate_refused"]
    # the same ticket's backout is refused alike
    out = run_suite(reports, "--lab", "fast", "--backout", "--change-ticket", "CHG-SELFTEST-1")
    assert out.returncode != 0 and out.lab_state["changes"] == 0
    assert "no node of this estate holds that record now" in out.output, out.output[-3000:]
