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


AGED_SSO_V5 = """extends: fast
name: sso-v5-aged-secret
sso:
  version: 9.0.1865.0
  hosts:
    NODE1:
      events:
        # its id is not published (0 here); its words are biztalknotes' (2016-11-22), as Windows prints them UNCONFIRMED
        - id: 0
          level: Warning
          hours_ago: 30
          message: >-
            ESSO master secret has exceeded one year.It is recommended that this key be updated after a
            one year lifetime.
upgrade:
  target_version: 9.0.2096.0
"""


def test_an_sso_v5_build_and_an_aged_secret_are_warned_of_and_put_on_the_checklist(tmp_path):
    """Issue 28 items 1 and 8: SSO 9.0.x is SSO v5, in KB 3000847's scope, and the builds that carry KB 3062831
    are not published: the plan asks the operator to confirm the fix on every node; ENTSSO's warning that the
    master secret is older than a year is found by its published words. Both are warnings (the change is not
    refused), in the plan's checklist, summary.json, the report and the console."""
    scenario = tmp_path / "aged.yml"
    scenario.write_text(AGED_SSO_V5, encoding="utf-8")
    run = run_suite(tmp_path / "reports", f"--lab={scenario}", "--plan", "--change-ticket", "CHG-AGED-1")
    warnings = run.summary["warnings"]
    assert [w.split(":")[0] for w in warnings] == ["NODE1", "NODE1", "NODE2"], warnings
    assert all("KB 3062831" in w for w in warnings if "9.0.1865.0" in w), warnings
    assert len([w for w in warnings if "9.0.1865.0 is SSO version 5" in w]) == 2
    aged = [w for w in warnings if "older than a year" in w]
    assert len(aged) == 1 and aged[0].startswith("NODE1: ENTSSO warned at"), warnings
    plan = (run.dir / "plan.md").read_text()
    assert "- [ ] NODE2: SSO 9.0.1865.0 is SSO version 5" in plan and "- [ ] NODE1: ENTSSO warned at" in plan
    assert "Warning: NODE1: SSO 9.0.1865.0 is SSO version 5" in run.output
    assert "Warnings (the gate does not refuse on these" in (run.dir / "report.html").read_text()


def test_the_default_lab_has_nothing_to_warn_of(full_run):
    assert full_run.summary["warnings"] == []
    assert "Warning:" not in full_run.output
