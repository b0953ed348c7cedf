"""Issue 28 in a change: ENTSSO's event log read after each restore stops the change at that step."""
from __future__ import annotations

from selftest.e2e.suite import run_suite


def test_a_restore_that_leaves_sso_unable_to_decrypt_stops_the_change_at_that_restore(tmp_path):
    """NODE2 runs an SSO build with KB 3000847's defect: the restore there succeeds and ENTSSO logs 10536.
    The change stops right after that restore (phase 5), naming the event, KB 3062831 and how to continue;
    nothing after it runs (the primary's restore, the failover)."""
    run = run_suite(tmp_path, "--lab", "restore-cannot-decrypt", "--apply", "--change-ticket", "CHG-DECRYPT-1")
    assert run.returncode == 1, run.output[-3000:]
    assert run.summary["verdict"] == "stopped"
    journal = run.journal()
    stopped = [r for r in journal if r["kind"] == "phase_stopped"]
    assert stopped and stopped[-1]["phase"] == "recluster", stopped
    message = stopped[-1]["message"]
    assert message.startswith("NODE2: found ENTSSO logged after the master secret was restored on it: event 10536 at")
    assert "0x80090005, Bad Data" in message and "KB 3062831" in message, message
    intents = [(r["phase"], r["step"], r.get("host")) for r in journal if r["kind"] == "intent"]
    assert ("recluster", "restore the master secret", "NODE2") in intents
    assert ("recluster", "restore the master secret", "NODE1") not in intents  # stopped at NODE2's restore
    assert not [i for i in intents if i[0] == "failover"]


def test_the_secret_backup_is_read_back_through_sso_and_matches_its_copy(full_run):
    """Issue 28 item 4: phase 2 reads its backup back on the node (GetFilePasswordReminder and Get-FileHash):
    the reminder is the one the change wrote, the node's SHA-256 is the off-node copy's; the console shows
    the reminder before phase 3 and the report shows both."""
    results = {r["step"]: r for r in full_run.journal() if r["kind"] == "result" and r["phase"] == "backup"}
    copy, back = results["copy the secret backup off the node"], results["read the secret backup back through SSO"]
    assert back["outcome"] == "ok" and back["evidence"]["unrestorable"] is None, back
    assert back["evidence"]["sha256_on_node"] == copy["evidence"]["sha256"]
    reminder = back["evidence"]["reminder"]
    assert reminder and "CHG-SELFTEST-1" in reminder
    out = full_run.output
    assert out.index(f"password reminder, read back from the file by SSO: {reminder!r}") < out.index("[phase 3/7]")
    report = (full_run.dir / "report.html").read_text()
    assert "Read back on the node" in report and copy["evidence"]["sha256"] in report


def test_a_backup_that_cannot_be_read_back_refuses_the_change_before_it_starts(start_lab, tmp_path):
    """A backup written cut short on the MSS (the lab's sso.hosts.NODE1.backup_written_damaged: BackupSecret
    reports success): the rehearsal's own backup is read back before phase 1 and fails, so the change is
    refused with nothing changed, naming the file and SSO's answer."""
    scenario = tmp_path / "damaged.yml"
    scenario.write_text("extends: fast\nname: backup-damaged\nsso:\n  hosts:\n    NODE1:\n"
                        "      backup_written_damaged: true\n", encoding="utf-8")
    lab = start_lab(str(scenario))
    run = run_suite(tmp_path / "reports", f"--inventory={lab.inventory_path}", "--apply", "--change-ticket",
                    "CHG-BACKUP-BAD", env=dict(lab.env))
    assert run.returncode == 1, run.output[-3000:]
    assert run.summary["verdict"] == "refused", run.summary["verdict_reason"]
    assert "SSO cannot read the backup" in run.output and "-rehearsal-" in run.output, run.output[-3000:]
    assert lab.state()["changes"] == 0
    refused = [r for r in run.journal() if r["kind"] == "gate_refused"]
    assert refused and any("Read-SecretBackup" in f for f in refused[-1]["findings"]), refused
