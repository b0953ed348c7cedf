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
