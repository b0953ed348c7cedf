"""Issue 27 items 4 and 5 end to end: what the suite does when the Backup BizTalk Server job collides with
phase 2 or fails part-way, when a node's clock is not SQL Server's, and when a backup folder cannot be
written — each against the lab through the real clients, judged on the lab's state."""
from __future__ import annotations

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
