"""A second change against an SSO system is refused naming who holds it: the holder's run, change,
operator and admin box, from the journal the holder keeps in the same reports folder."""
from __future__ import annotations

import getpass
import os
import socket
import subprocess
import sys
from pathlib import Path

from entsso.change.journal import Journal
from entsso.change.lock import find_holder, owner_record
from selftest.e2e.suite import run_suite, spawn_suite

RESOURCE = "entsso-upgrade:SSOCLUSTER"


def test_a_refused_change_names_the_run_operator_and_admin_box_holding_the_lock(start_lab, tmp_path):
    scenario = tmp_path / "slow-operator.yml"
    scenario.write_text("extends: fast\nupgrade:\n  operator_delay_sec: 1000000\n")  # the holder waits in phase 4
    lab = start_lab(str(scenario))
    reports = tmp_path / "reports"
    inv = f"--inventory={lab.inventory_path}"
    holder = spawn_suite(reports, inv, "--apply", "--change-ticket", "CHG-HOLDER", env=dict(lab.env))
    try:
        holder.wait_for(lambda records: any(r.get("kind") == "operator_instruction" for r in records))
        held_by = holder.dir.name
        second = run_suite(reports, inv, "--apply", "--change-ticket", "CHG-SECOND", env=dict(lab.env))
    finally:
        holder.proc.terminate()  # the holder is interrupted (and so releases the lock)
        holder.wait(120)
    assert second.returncode == 4
    assert (f"cannot take the estate lock: the estate lock '{RESOURCE}' on SQL Server SQL1 is held by run {held_by} "
            f"(change CHG-HOLDER) of {getpass.getuser()} on the admin box {socket.gethostname()}, since ") in second.output
    assert f"(its report: {reports / held_by / 'report.html'})" in second.output
    assert "nothing was changed by this run" in second.output


def _journal(folder: Path, run: str) -> Journal:
    return Journal(folder / run / "journal.jsonl", run)


def test_a_released_lock_or_a_dead_holder_is_not_named(tmp_path):
    released = _journal(tmp_path, "r-released")
    released.write("estate_locked", resource=RESOURCE, ticket="CHG-1", **owner_record())
    released.write("estate_unlocked", resource=RESOURCE)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    gone = _journal(tmp_path, "r-dead")  # killed: SQL Server dropped its session, and so its lock
    gone.write("estate_locked", resource=RESOURCE, ticket="CHG-2", **{**owner_record(), "pid": int(dead.stdout)})
    other = _journal(tmp_path, "r-other-cluster")
    other.write("estate_locked", resource="entsso-upgrade:OTHERCLUSTER", ticket="CHG-3", **owner_record())
    assert find_holder(tmp_path, RESOURCE) is None
    live = _journal(tmp_path, "r-live")
    live.write("estate_locked", resource=RESOURCE, ticket="CHG-4", **owner_record())
    found = find_holder(tmp_path, RESOURCE)
    assert found is not None
    assert (found["run"], found["ticket"], found["pid"], found["operator"]) == (
        "r-live", "CHG-4", os.getpid(), getpass.getuser())
