"""Phase 6's adapter-properties proof without a second hop, end to end on the lab. The full run (the shared
`full_run`, NTLM, MSS nodes without BizTalk) is asserted in test_full_run.py; here: what the read needs from
SQL Server is the gate's, so a login that may not list the handlers is refused before anything changes,
never stopped in phase 6."""
from __future__ import annotations

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
