"""The SSO group fails over on its own mid-change (issue 27 item 3): as phase 6 reads the adapter handlers on
NODE1, a resource of the group fails past its restart threshold and the cluster moves the group to NODE2. The
read fails; the run asks where the group is, stops at phase 6 naming the move (it moves nothing more), and
--backout puts BizTalk back as it was."""
from __future__ import annotations

from selftest.e2e.suite import run_suite
from selftest.e2e.test_change import assert_backed_out_to_service, biztalk_state


def test_a_group_that_fails_over_on_its_own_stops_phase_6_naming_it_and_backout_restores_biztalk(start_lab, tmp_path):
    path = tmp_path / "group-failover.yml"
    # NODE1's Get-AdapterHandlers: call 1 is the gate's, call 2 phase 6's first read (the group on NODE1)
    path.write_text("extends: package\nname: group-failover\nfaults:\n  - {kind: group_failover, host: NODE1, "
                    "operation: Get-AdapterHandlers, call: 2}\n", encoding="utf-8")
    lab = start_lab(str(path))
    before = biztalk_state(lab)
    env, inv = dict(lab.env), f"--inventory={lab.inventory_path}"
    run = run_suite(tmp_path / "reports", inv, "--apply", "--change-ticket", "CHG-GF-1", env=env)
    assert run.returncode == 1, run.output[-3000:]
    assert run.summary["verdict"] == "stopped" and run.summary["verdict_phase"] == "failover"
    reason = run.summary["verdict_reason"]
    assert "no longer on NODE1" in reason and "failed it over on its own to NODE2" in reason, reason
    assert f"{inv} --backout --change-ticket CHG-GF-1" in run.output
    moved = [r for r in run.journal() if r["kind"] == "group_moved_behind"]
    assert [(r["phase"], r["expected"], r["owner"]) for r in moved] == [("failover", "NODE1", "NODE2")]
    stopped = lab.state()
    assert [(f["from"], f["to"]) for f in stopped["faults"]["group_failovers"]] == [("NODE1", "NODE2")]
    # the run moved nothing after the cluster did: one move of phase 6 would be a second Move-ClusterGroup
    assert stopped["estate"]["cluster"]["group"]["owner"] == "NODE2"
    moves = [r for r in run.journal() if r["kind"] == "result" and r["phase"] == "failover"
             and "move the SSO group" in r["step"]]
    assert moves == []

    back = run_suite(tmp_path / "reports", inv, "--backout", "--change-ticket", "CHG-GF-1", env=env)
    assert_backed_out_to_service(back, lab, before)
