"""ENTSSO's own start failures meet the suite (issue 27 item 2): NODE2's ENTSSO account cannot log on (its
password expired: the SCM's 1069). The change stops at the first start of ENTSSO on NODE2 — phase 3's start
outside the cluster — naming 1069 and the fix, and --backout puts BizTalk's SSO back (the group on NODE1)."""
from __future__ import annotations

from pathlib import Path

from selftest.e2e.suite import run_suite


def test_a_logon_failure_stops_the_change_at_nodes_first_start_and_the_backout_restores(start_lab, tmp_path: Path):
    scenario = tmp_path / "logon-failure.yml"
    scenario.write_text("extends: fast\nname: logon-failure\nsso:\n  hosts:\n    NODE2: {logon_failure: true}\n")
    lab = start_lab(str(scenario))
    env, inv, ticket = dict(lab.env), f"--inventory={lab.inventory_path}", "CHG-LOGON-1"
    run = run_suite(tmp_path / "reports", inv, "--apply", "--change-ticket", ticket, env=env)
    assert run.returncode == 1, run.output[-3000:]
    assert run.summary["verdict"] == "stopped" and run.summary["verdict_phase"] == "uncluster", run.output[-3000:]
    reason = run.summary["verdict_reason"]
    assert "start ENTSSO through the SCM on NODE2 failed: ENTSSO did not start on NODE2" in reason, reason
    assert "Win32 error 1069" in reason and "logon failure" in reason
    assert "sc.exe config ENTSSO password=" in reason
    assert f"{inv} --backout --change-ticket {ticket}" in run.output
    failed = [(r["step"], r["host"]) for r in run.journal() if r["kind"] == "result" and r["outcome"] == "failed"]
    assert failed == [("start ENTSSO through the SCM", "NODE2")]
    assert lab.state()["estate"]["hosts"]["NODE2"]["services"]["ENTSSO"]["status"] == "Stopped"

    back = run_suite(tmp_path / "reports", inv, "--backout", "--change-ticket", ticket, env=env)
    assert back.returncode == 0, back.output[-3000:]
    assert back.summary["verdict"] == "backed-out"
    # NODE2's ENTSSO cannot run the cluster's resource either: the backout leaves it out and says so
    assert "NODE2 was left out of the backout's restore" in back.summary["verdict_reason"]
    assert "1069" in back.summary["verdict_reason"]
    assert [r["node"] for r in back.journal() if r["kind"] == "node_left_out"] == ["NODE2"]
    state = lab.state()
    assert state["sql"]["secret_server"] == "SSOCLUSTER"
    c = state["estate"]["cluster"]
    assert (c["group"]["owner"], c["resource"]["state"]) == ("NODE1", "Online")
    assert c["restart_policy"]["actions"] == []
    assert state["estate"]["hosts"]["NODE1"]["sso"]["running_as"] == "SSOCLUSTER"


def _slow_node2(tmp_path: Path, start_sec: int) -> Path:
    scenario = tmp_path / f"slow-{start_sec}.yml"
    scenario.write_text(f"extends: fast\nname: slow-{start_sec}\nsso:\n  hosts:\n"
                        f"    NODE2: {{start_sec: {start_sec}}}\n")
    return scenario


def test_a_slow_start_within_the_pending_timeout_is_waited_for_and_the_change_completes(start_lab, tmp_path: Path):
    lab = start_lab(str(_slow_node2(tmp_path, 150)))  # about three minutes' start, within PendingTimeout (180 s)
    run = run_suite(tmp_path / "reports", f"--inventory={lab.inventory_path}", "--apply", "--change-ticket",
                    "CHG-SLOW-150", env=dict(lab.env))
    assert run.returncode == 0, run.output[-3000:]
    assert run.summary["verdict"] == "completed"
    state = lab.state()["estate"]
    assert (state["cluster"]["group"]["owner"], state["cluster"]["resource"]["state"]) == ("NODE1", "Online")
    assert state["cluster"]["restart_policy"]["actions"] == []  # no start of NODE2's was failed
    # NODE2's starts took their time: each resource online there and its SCM start are among the slowest steps
    slow = [r for r in run.journal() if r["kind"] == "result" and r["host"] == "NODE2"
            and r["step"] in ("bring the ENTSSO resource online", "start ENTSSO through the SCM")]
    assert slow and all(r["outcome"] in ("ok", "unchanged") for r in slow)


def test_a_start_past_the_pending_timeout_fails_the_resource_and_the_change_stops_safely(start_lab, tmp_path: Path):
    lab = start_lab(str(_slow_node2(tmp_path, 200)))
    env, inv, ticket = dict(lab.env), f"--inventory={lab.inventory_path}", "CHG-SLOW-200"
    run = run_suite(tmp_path / "reports", inv, "--apply", "--change-ticket", ticket, env=env)
    assert run.returncode == 1, run.output[-3000:]
    assert run.summary["verdict"] == "stopped" and run.summary["verdict_phase"] == "recluster", run.output[-3000:]
    reason = run.summary["verdict_reason"]
    assert "the cluster could not bring ENTSSO online on NODE2" in reason, reason
    assert "PendingTimeout (180 s)" in reason and "The group was moved back to NODE1 and is Online there" in reason
    c = lab.state()["estate"]["cluster"]
    assert (c["group"]["owner"], c["resource"]["state"]) == ("NODE1", "Online")
    assert not [r for r in run.journal() if r["kind"] == "intent" and r["phase"] == "failover"]

    back = run_suite(tmp_path / "reports", inv, "--backout", "--change-ticket", ticket, env=env)
    assert back.returncode == 0, back.output[-3000:]
    assert back.summary["verdict"] == "backed-out"
    assert "NODE2 was left out of the backout's restore" in back.summary["verdict_reason"]
    c = lab.state()["estate"]["cluster"]
    assert (c["group"]["owner"], c["resource"]["state"]) == ("NODE1", "Online")
    assert lab.state()["sql"]["secret_server"] == "SSOCLUSTER"
