"""`--backout --change-ticket X` (issue 17): from a stop in each of phases 1-6, the estate back in
service — SSODB naming the cluster, the ENTSSO resource Online, the secret on every node, BizTalk as the
change's baseline — with the verdict `backed-out` for the backout (issue 25: never `completed`, the upgrade
was not done); a second backout changes nothing; a backed-out change is never continued."""
from __future__ import annotations

import pytest

from selftest.e2e.suite import run_suite
from selftest.e2e.test_change import biztalk_state

# a fault that stops the change in each phase (on the package scenario: every node upgraded by a package).
# The rehearsal before phase 1 makes the first calls of these operations (two Set-ServiceState on each BizTalk
# server, one Backup-MasterSecret and one Set-ClusterResourceState on the owner): the change's come after
STOPS = {
    "silence": {"kind": "fail", "host": "BTS2", "operation": "Set-ServiceState", "call": 3},  # its host instances
    "backup": {"kind": "fail", "host": "NODE1", "operation": "Backup-MasterSecret", "call": 2},
    "uncluster": {"kind": "fail", "host": "NODE1", "operation": "Set-ClusterResourceState", "call": 2},
    "upgrade": {"kind": "installer_exit", "host": "NODE2", "exit_code": 1603},
    "recluster": {"kind": "fail", "host": "NODE2", "operation": "Restore-MasterSecret", "call": 1},
    # NODE2 paused mid-run (Cluster-Aware Updating, say) as phase 6's first move, to NODE2, arrives
    "failover": {"kind": "node_paused", "host": "NODE2", "operation": "Move-ClusterGroup", "call": 1},
}


@pytest.mark.parametrize("phase", list(STOPS))
def test_backout_from_a_stop_puts_the_estate_back_in_service(start_lab, tmp_path, phase):
    lab = start_lab("package")
    before = biztalk_state(lab)
    env, inv = dict(lab.env), f"--inventory={lab.inventory_path}"
    ticket = f"CHG-BACK-{phase}"
    lab.post("/faults", {**STOPS[phase], "message": "injected fault"})
    change = run_suite(tmp_path / "reports", inv, "--apply", "--change-ticket", ticket, env=env)
    assert change.returncode == 1 and change.summary["verdict"] == "stopped", change.output[-3000:]
    assert change.summary["verdict_phase"] == phase
    assert f"{inv} --backout --change-ticket {ticket}" in change.output  # the way back, printed
    if phase == "failover":  # stopped at the move, saying why and what to do; nothing after it ran
        assert "move the SSO group to NODE2 on NODE2 failed: NODE2 is Paused in the cluster (paused during the " \
               "run" in change.output, change.output[-3000:]
        assert "resume it (Resume-ClusterNode NODE2)" in change.output
        state = lab.state()
        assert state["estate"]["hosts"]["NODE2"]["node_state"] == "Paused"
        assert state["estate"]["cluster"]["group"]["owner"] == "NODE1"  # nothing moved
        # phase 6 read NODE1, where the group was, then stopped at the move: nothing was read on NODE2
        assert "NODE2 Get-AdapterHandlers" not in state["winrm"]["received"]
        reads = [r["host"] for r in change.journal() if r["kind"] == "intent" and r["step"].startswith("read the adapter")]
        assert reads == ["NODE1"]
    lab.post("/faults/clear", {})

    back = run_suite(tmp_path / "reports", inv, "--backout", "--change-ticket", ticket, env=env)
    assert back.returncode == 0, back.output[-3000:]
    assert back.summary["verdict"] == "backed-out"
    assert "backed out: the upgrade is not done" in back.summary["verdict_reason"]
    state = lab.state()
    assert state["sql"]["secret_server"] == "SSOCLUSTER"
    assert state["estate"]["cluster"]["resource"]["state"] == "Online"
    assert state["estate"]["cluster"]["group"]["owner"] == "NODE1"  # where it was before the change
    assert state["estate"]["cluster"]["restart_policy"]["actions"] == []  # never an SCM stop of the cluster's ENTSSO
    assert all(state["estate"]["hosts"][n]["sso"]["holds_secret"] for n in ("NODE1", "NODE2"))
    assert all(state["estate"]["hosts"][n]["sso"]["tools_server"] == "SSOCLUSTER" for n in ("NODE1", "NODE2"))
    assert biztalk_state(lab) == before
    assert "test_biztalk_as_before_the_change_after_backout" in back.outcomes
    # every check passed; junit.xml's one skipped case says the upgrade was not done (not a passed upgrade)
    assert {n: o for n, o in back.outcomes.items() if o != "passed"} == {"upgrade": "skipped"}

    if phase == "upgrade":  # once is enough for what follows: it does not depend on where the change stopped
        changes = lab.state()["changes"]
        again = run_suite(tmp_path / "reports", inv, "--backout", "--change-ticket", ticket, env=env)
        assert again.returncode == 0 and again.summary["verdict"] == "backed-out", again.output[-3000:]
        assert lab.state()["changes"] == changes  # a second backout changes nothing
        refused = run_suite(tmp_path / "reports", inv, "--apply", "--change-ticket", ticket, env=env)
        assert refused.returncode != 0 and "was backed out" in refused.output
        assert lab.state()["changes"] == changes
        # the estate takes a new change: no unfinished one is left on it
        other = run_suite(tmp_path / "reports", "tests_pre", inv, "-m", "readiness", env=env)
        assert other.outcomes["test_no_other_change_unfinished_on_the_estate"] == "passed"


def test_a_change_that_cannot_fit_the_window_is_refused_before_phase_1(start_lab, tmp_path):
    """The whole change's worst case (phases 1-7 and a backout from its latest stop) is held against the window
    before BizTalk is silenced: no outage and no backout for a change that could be seen not to fit."""
    # timeouts that make phases 1-2 short and the upgrade long (900 s a node, against a 10-minute window)
    scenario = tmp_path / "window.yml"
    scenario.write_text("extends: package\nname: window\ntimeouts: {service_start: 10, service_stop: 10, "
                        "group_move: 10, backup_job: 60, upgrade: 900, reboot: 60}\n")
    lab = start_lab(str(scenario))
    env, inv = dict(lab.env), f"--inventory={lab.inventory_path}"
    from datetime import datetime, timedelta

    ends = (datetime.now().astimezone() + timedelta(minutes=10)).isoformat(timespec="seconds")
    run = run_suite(tmp_path / "reports", inv, "--apply", "--change-ticket", "CHG-WINDOW-1", "--window-ends", ends,
                    env=env)
    assert run.returncode == 1, run.output[-3000:]
    assert run.summary["verdict"] == "refused", run.summary["verdict_reason"]
    refused = [r for r in run.journal() if r["kind"] == "window_refused"]
    assert refused and refused[0]["phase"] == "silence" and "the whole change may take up to" in refused[0]["reason"]
    assert "there is nothing to back out" in run.output and "--backout" not in run.summary["verdict_reason"]
    assert not [r for r in run.journal() if r["kind"] == "intent"]  # phase 1 never began
    assert lab.state()["changes"] == 0
    # the window's end and the worst case, said at the start and kept in summary.json
    assert "change window ends " in run.output and "the whole change takes at most" in run.output
    assert run.summary["window"]["ends"].startswith(ends[:16]) and run.summary["window"]["worst_case_minutes"] > 10


def test_window_end_in_the_past_or_malformed_is_refused_before_anything_connects(tmp_path):
    run = run_suite(tmp_path, "--inventory=inventory/example.yml", "--apply", "--change-ticket", "CHG-W",
                    "--window-ends", "25:99")
    assert run.returncode == 4 and "--window-ends '25:99': give the time the change window ends as HH:MM" in run.output
    from datetime import datetime, timedelta

    now = datetime.now().astimezone()
    past = (now - timedelta(minutes=5)).strftime("%H:%M")
    run = run_suite(tmp_path, "--inventory=inventory/example.yml", "--apply", "--change-ticket", "CHG-W",
                    "--window-ends", past)
    assert run.returncode == 4, run.output[-2000:]
    assert f"--window-ends {past}: that time passed" in run.output and "give the date: --window-ends " in run.output
    later = (now + timedelta(hours=30)).isoformat(timespec="minutes")
    run = run_suite(tmp_path, "--inventory=inventory/example.yml", "--apply", "--change-ticket", "CHG-W",
                    "--window-ends", later)
    assert run.returncode == 4 and "more than a change window's 24 h" in run.output
