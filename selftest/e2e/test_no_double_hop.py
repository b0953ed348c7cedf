"""No double hop on the default transport, end to end on the lab, which refuses every second hop of its
NTLM logons (docs/lab.md). The full run passing with NTLM and MSS nodes without BizTalk is the shared
`full_run` (test_full_run.py); here: what phase 6's adapter read needs from SQL Server is the gate's, and a
primary that does not own the group (phase 3 would ask the cluster's SSO server from another machine) is
refused by the gate naming the fix — both before anything changes, never a stop mid-change."""
from __future__ import annotations

import yaml

from selftest.e2e.suite import run_suite
from selftest.e2e.test_sql_estate import scenario


def test_a_login_that_may_not_list_the_adapter_handlers_is_refused_by_the_gate_naming_the_grant(tmp_path):
    lab = scenario(tmp_path, "denied-handlers", denied=["BizTalkMgmtDb.dbo.adm_SendHandler"])
    run = run_suite(tmp_path, "tests_pre", f"--lab={lab}", "--apply", "--change-ticket", "CHG-HANDLERS")
    assert run.returncode == 1, run.output[-3000:]
    assert "GRANT SELECT ON BizTalkMgmtDb.dbo.adm_SendHandler TO [entsso]" in run.output
    assert run.outcomes["test_sql_login_has_the_grants_the_run_needs"] == "failed"
    kinds = [r["kind"] for r in run.journal()]
    assert "gate_refused" in kinds and "intent" not in kinds
    assert run.lab_state["changes"] == 0


def test_a_primary_that_does_not_own_the_group_is_refused_by_the_gate_naming_both_fixes(start_lab, tmp_path):
    lab = start_lab("fast")
    inv = yaml.safe_load(lab.inventory_path.read_text())
    inv["cluster"]["primary"] = "NODE2"  # NODE1 owns the group
    path = tmp_path / "primary-node2.yml"
    path.write_text(yaml.safe_dump(inv))
    run = run_suite(tmp_path / "r", "tests_pre", f"--inventory={path}", "-m", "readiness", env=dict(lab.env))
    assert run.returncode == 1, run.output[-3000:]
    assert run.failed() == {"test_primary_owns_the_sso_group"}, sorted(run.failed())
    message = run.message("test_primary_owns_the_sso_group")
    assert "owned by NODE1, while cluster.primary is NODE2" in message and "second hop" in message, message
    assert "Move-ClusterGroup SSO -Node NODE2" in message and "set cluster.primary to NODE1" in message, message
    assert lab.state()["changes"] == 0
