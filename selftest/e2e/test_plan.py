"""`--plan` (issue 17): read from the live estate, it lists every operation the change then performs
(compared with the journal of the --apply run that follows), changes nothing, exits 0, and its
plan.html renders in headless Chromium."""
from __future__ import annotations

from selftest.e2e.suite import run_suite
from selftest.e2e.test_report import _chromium


def test_the_plan_lists_every_operation_the_change_then_performs_and_changes_nothing(start_lab, tmp_path):
    lab = start_lab("fast")
    env, inv = dict(lab.env), f"--inventory={lab.inventory_path}"
    plan = run_suite(tmp_path / "reports", inv, "--plan", "--change-ticket", "CHG-PLAN-1", env=env)
    assert plan.returncode == 0, plan.output[-3000:]
    assert lab.state()["changes"] == 0
    assert plan.summary["verdict"] == "read-only"
    assert "failed" not in plan.output.splitlines()[-1]  # nothing not yet done counts as a failure
    text = (plan.dir / "plan.md").read_text()
    assert "BTS1: stop host instances: BTSSvc$BizTalkServerApplication Running → Stopped" in text
    assert "NODE1: move the master secret server to NODE1: SSODB secret server SSOCLUSTER → NODE1" in text
    assert "NODE2: wait for the operator's upgrade: NODE2 SSO 10.0.1000.0 → 10.0.2000.0, manual" in text
    assert "## Backout plan" in text and "## Test plan" in text
    # issue 28 item 7: the operator is asked to silence the monitoring tools before phase 1
    checklist = text.split("## Before phase 1: what you do", 1)[1].split("## Implementation plan", 1)[0]
    assert "- [ ] Put SCOM" in checklist and "BizTalk360" in checklist and "auto-healing" in checklist
    assert "local ENTSSO service on NODE1, NODE2" in checklist
    # issue 28 item 2: the BizTalk servers' SSO stays at 10.0.1000.0 while the MSS goes to 10.0.2000.0
    behind = text.split("## SSO servers this change leaves behind", 1)[1].split("## Test plan", 1)[0]
    assert "goes to SSO 10.0.2000.0" in behind and "- BTS1 (SSO 10.0.1000.0)" in behind and "- BTS2 (SSO" in behind
    assert "job DTA Purge and Archive (BizTalkDTADb): disabled before the change, stays disabled" in text

    change = run_suite(tmp_path / "reports", inv, "--apply", "--change-ticket", "CHG-PLAN-1", env=env)
    assert change.returncode == 0, change.output[-3000:]
    planned = {(o["phase"], o["step"], o["host"], o["job"]) for o in plan.summary["plan"]["operations"]}
    performed = {(r["phase"], r["step"], r.get("host"), r.get("job")) for r in change.journal() if r["kind"] == "intent"}
    assert planned == performed, {"planned only": sorted(map(str, planned - performed)),
                                  "performed only": sorted(map(str, performed - planned))}
    unchanged = {(r["phase"], r["step"], r.get("host"), r.get("job")) for r in change.journal()
                 if r["kind"] == "result" and r["outcome"] == "unchanged"}
    already = {(o["phase"], o["step"], o["host"], o["job"]) for o in plan.summary["plan"]["operations"] if o["already"]}
    assert already <= unchanged  # what the plan called "already so" changed nothing

    dom = _chromium(str(tmp_path / "browser"), "--virtual-time-budget=3000", "--dump-dom",
                    (plan.dir / "plan.html").as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert "Implementation plan" in dom.stdout and "Backout plan" in dom.stdout
    assert dom.stdout.count("<tr class=") == len(planned)
