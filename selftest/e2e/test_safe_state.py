"""A late failure leaves the safest state (issue 24 item 5): when SSO on a node cannot use the restored
secret (KB 3000847: it cannot decrypt, event 10536 in its log right after the restore), the change moves the
SSO group back to a node whose SSO this change has shown to work before it stops — never leaving it on the one
node shown not to work — and says so."""
from __future__ import annotations

from pathlib import Path

from selftest.e2e.suite import run_suite


def test_a_node_that_cannot_decrypt_after_the_restore_leaves_the_group_on_a_proven_node(start_lab, tmp_path: Path):
    scenario = tmp_path / "cannot-decrypt.yml"
    scenario.write_text("extends: fast\nname: cannot-decrypt\nsso:\n  hosts:\n"
                        "    NODE2: {restore_cannot_decrypt: true}\n")
    lab = start_lab(str(scenario))
    run = run_suite(tmp_path / "reports", f"--inventory={lab.inventory_path}", "--apply", "--change-ticket",
                    "CHG-DECRYPT-1", env=dict(lab.env))
    assert run.returncode == 1, run.output[-3000:]
    assert run.summary["verdict"] == "stopped" and run.summary["verdict_phase"] == "recluster"
    reason = run.summary["verdict_reason"]
    assert "10536" in reason and "NODE2" in reason
    assert "The group was moved back to NODE1, whose SSO this change has shown to work" in reason
    state = lab.state()["estate"]
    assert state["cluster"]["group"]["owner"] == "NODE1" and state["cluster"]["group"]["state"] == "Online"
    steps = [(r["step"], r["host"], r["outcome"]) for r in run.journal()
             if r["kind"] == "result" and r["phase"] == "recluster"]
    # the restore itself said it worked (unchanged: NODE2 held the secret already, RestoreSecret wrote it again)
    assert any(st == "restore the master secret" and h == "NODE2" and o in ("ok", "unchanged") for st, h, o in steps)
    assert steps[-1] == ("move the SSO group back to NODE1", "NODE1", "ok")
    assert not [r for r in run.journal() if r["kind"] == "intent" and r["phase"] == "failover"]
