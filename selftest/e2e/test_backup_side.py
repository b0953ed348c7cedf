"""Issue 27 items 4 and 5 end to end: what the suite does when the Backup BizTalk Server job collides with
phase 2 or fails part-way, when a node's clock is not SQL Server's, and when a backup folder cannot be
written — each against the lab through the real clients, judged on the lab's state."""
from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from selftest.e2e.suite import run_suite


def _scenario(tmp_path: Path, name: str, body: str) -> Path:
    path = tmp_path / f"{name}.yml"
    path.write_text(f"extends: fast\nname: {name}\n{body}", encoding="utf-8")
    return path


def test_a_backup_folder_the_suite_cannot_write_on_the_other_node_is_refused_before_phase_1(tmp_path):
    """NODE2's C:\\SSOBackup refuses the WinRM account: phase 5 would copy the secret backup there after
    BizTalk stopped and the MSS was unclustered. The gate's probe finds it; nothing changes."""
    scenario = _scenario(tmp_path, "backup-folder-read-only",
                         "sso:\n  hosts:\n    NODE2: {backup_folder_read_only: true}\n")
    run = run_suite(tmp_path / "r", f"--lab={scenario}", "--apply", "--change-ticket", "CHG-RO-1")
    assert run.returncode == 1, run.output[-3000:]
    assert run.summary["verdict"] == "refused"
    message = run.message("test_secret_backup_folder_writable[NODE2]")
    assert "'C:\\\\SSOBackup' exists but the account the suite connects as cannot write in it" in message, message
    assert "grant that account Modify on C:\\SSOBackup on NODE2" in message, message
    assert "test_secret_backup_folder_writable[NODE1]" not in run.failed()
    assert not [r for r in run.journal() if r["kind"] == "intent"]  # phase 1 never began
    state = run.lab_state
    assert state["changes"] == 0
    assert "NODE2 Write-File" not in state["winrm"]["received"]


def test_a_node_clock_minutes_behind_sql_server_does_not_misjudge_this_changes_secret_backup(tmp_path):
    """NODE1 runs 280 s behind SQL Server (inside Kerberos' 5 minutes): the backup phase 2 writes there carries
    a write time earlier than the change's start as SQL Server dated it. Judged on SQL Server's clock with
    the skew measured at the start, it is this change's backup: phases 1-2 complete. A node 7 minutes off is
    refused at the gate, naming the skew and the bound."""
    scenario = tmp_path / "node-clock-behind.yml"
    scenario.write_text("extends: default\nname: node-clock-behind\nsso:\n  hosts:\n    NODE1: {clock_skew_sec: -280}\n"
                        "    NODE2: {clock_skew_sec: 40}\n", encoding="utf-8")
    run = run_suite(tmp_path / "r", "tests_pre", f"--lab={scenario}", "--apply", "--change-ticket", "CHG-SKEW-1")
    assert run.returncode == 0, run.output[-3000:]
    journal = run.journal()
    skews = next(r["skews"] for r in journal if r["kind"] == "clock_skews")
    assert -300 < skews["NODE1"] < -250 and 20 < skews["NODE2"] < 70, skews
    started = datetime.fromisoformat(next(r["change_started"] for r in journal if r["kind"] == "change_started"))
    written = run.lab_state["estate"]["hosts"]["NODE1"]["files"]["C:\\SSOBackup\\ENTSSO-CHG-SKEW-1.bak"]
    # what a judgement on the node's own clock would have refused (the test's premise, not the suite's answer)
    assert datetime.fromisoformat(written["last_write_utc"].replace("Z", "+00:00")) < started.astimezone(UTC)
    assert run.summary["verdict"] != "refused"
    assert "NODE1 Backup-MasterSecret" in run.lab_state["winrm"]["received"]

    off = tmp_path / "node-clock-off.yml"
    off.write_text("extends: default\nname: node-clock-off\nsso:\n  hosts:\n    NODE2: {clock_skew_sec: 420}\n",
                   encoding="utf-8")
    gate = run_suite(tmp_path / "g", "tests_pre", "-m", "readiness", f"--lab={off}")
    assert gate.returncode == 1, gate.output[-3000:]
    assert gate.failed() == {"test_host_clock_agrees_with_sql_server[NODE2]"}, sorted(gate.failed())
    message = gate.message("test_host_clock_agrees_with_sql_server[NODE2]")
    assert "s ahead of SQL Server's" in message and "Maximum tolerance for computer clock synchronization" in message
    assert "w32tm /resync" in message


BACKUP_JOB = "Backup BizTalk Server (BizTalkMgmtDb)"
LOG_FAILED = ("Executed as user: NT SERVICE\\SQLSERVERAGENT. BACKUP LOG is terminating abnormally. "
              "[SQLSTATE 42000] (Error 3013).  The step failed.")


def test_a_backup_run_whose_log_step_fails_stops_phase_2_and_backs_out(start_lab, tmp_path):
    """Phase 2's run makes the full set, then MarkAndBackupLog fails: the run is judged by its steps and the
    change stops in phase 2 naming the step and its message; --backout puts BizTalk back as it was."""
    lab = start_lab("fast")
    env, inv = dict(lab.env), f"--inventory={lab.inventory_path}"
    lab.post("/faults", {"kind": "job_fails", "job": BACKUP_JOB, "step": "MarkAndBackupLog", "message": LOG_FAILED})
    change = run_suite(tmp_path / "reports", inv, "--apply", "--change-ticket", "CHG-PARTIAL-1", env=env)
    assert change.returncode == 1 and change.summary["verdict"] == "stopped", change.output[-3000:]
    assert change.summary["verdict_phase"] == "backup"
    assert "its step 3 (MarkAndBackupLog) Failed: " + LOG_FAILED in change.output, change.output[-3000:]
    assert "not taken as this change's backup" in change.output
    state = lab.state()
    assert state["estate"]["cluster"]["group"]["state"] == "Online" and state["sql"]["secret_server"] == "SSOCLUSTER"
    assert not [r for r in change.journal() if r["kind"] == "intent" and r.get("phase") == "uncluster"]
    assert f"{inv} --backout --change-ticket CHG-PARTIAL-1" in change.output

    back = run_suite(tmp_path / "reports", inv, "--backout", "--change-ticket", "CHG-PARTIAL-1", env=env)
    assert back.returncode == 0 and back.summary["verdict"] == "backed-out", back.output[-3000:]
    state = lab.state()
    assert all(state["sql"]["jobs"][j]["enabled"] for j in (BACKUP_JOB, "Monitor BizTalk Server (BizTalkMgmtDb)"))
    assert state["estate"]["hosts"]["BTS1"]["services"]["BTSSvc$BizTalkServerApplication"]["status"] == "Running"
    assert {n: o for n, o in back.outcomes.items() if o != "passed"} == {"upgrade": "skipped"}


def test_a_scheduled_backup_run_colliding_with_phase_2_is_waited_for_and_the_change_completes(start_lab, tmp_path):
    """The job's schedule starts it an instant before phase 2's sp_start_job (22022): the suite waits for that
    run, starts its own, proves its own full set (not the scheduled run's) and the change completes."""
    lab = start_lab("fast")
    env, inv = dict(lab.env), f"--inventory={lab.inventory_path}"
    lab.post("/faults", {"kind": "job_collision", "job": BACKUP_JOB, "operation": "sp_start_job"})
    run = run_suite(tmp_path / "reports", inv, "--apply", "--change-ticket", "CHG-COLLIDE-1", env=env)
    assert run.returncode == 0 and run.summary["verdict"] == "completed", run.output[-3000:]
    proof = next(r["evidence"] for r in run.journal()
                 if r["kind"] == "result" and r.get("step") == "force a full BizTalk backup")
    assert proof["start_collisions"] == 1 and len(proof["waited_for_runs_going"]) == 1
    assert proof["set_id"] > proof["before_set_id"] and proof["steps"][-1]["outcome"] == "Succeeded"
    # said in the run's log, which the report keeps with phase 2
    said = [p.name for p in run.dir.rglob("*") if p.is_file() and b"met a run that had just started (22022"
            in p.read_bytes()]
    assert said, sorted(p.name for p in run.dir.rglob("*"))
    assert lab.state()["sql"]["counters"]["procedures"]["sp_ForceFullBackup"] == 2
