"""Topology as it is (issue 14, deliverable 5): an MSS cluster of three nodes. Every node is unclustered,
upgraded and given the master secret; phase 6 moves the group to each node in turn, from a BizTalk server
reads the adapter handlers through each owner, and returns it to the owner it started on."""
from __future__ import annotations

from selftest.e2e.suite import run_suite


def test_full_run_on_a_three_node_cluster(tmp_path):
    run = run_suite(tmp_path, "--lab", "three-nodes", "--apply", "--change-ticket", "CHG-3NODES")
    assert run.returncode == 0, run.output[-4000:]
    assert set(run.outcomes.values()) == {"passed"}, sorted(n for n, s in run.outcomes.items() if s != "passed")
    estate = run.lab_state["estate"]
    for node in ("NODE1", "NODE2", "NODE3"):
        assert estate["hosts"][node]["sso"]["version"] == "10.0.2000.0", node
        assert estate["hosts"][node]["sso"]["holds_secret"] is True, node
        assert f"test_adapter_properties_readable_through_node[{node}]" in run.outcomes
    assert estate["cluster"]["group"]["owner"] == "NODE1"
    assert estate["cluster"]["resource"]["state"] == "Online"
    results = [r for r in run.journal() if r["kind"] == "result"]
    upgraded = [r["host"] for r in results if r["phase"] == "upgrade" and r["step"] == "wait for the operator's upgrade"]
    assert upgraded == ["NODE1", "NODE2", "NODE3"], upgraded
    restored = [r["host"] for r in results if r["phase"] == "recluster" and r["step"] == "restore the master secret"]
    assert sorted(restored) == ["NODE1", "NODE2", "NODE3"], restored
    pointed = [r["host"] for r in results if r["phase"] == "recluster" and r["step"] == "point SSO tools at SSOCLUSTER"]
    assert sorted(pointed) == ["NODE1", "NODE2", "NODE3"], pointed
    moves = [r["host"] for r in results if r["phase"] == "failover" and r["step"].startswith("move the SSO group")]
    assert moves == ["NODE2", "NODE3", "NODE1"], moves  # each other node in turn, then back to the start


def test_a_biztalk_server_out_of_rotation_is_left_as_found(tmp_path):
    """BTS3 is in the group but out of rotation (ENTSSO, the Rule Engine and every host instance stopped, as
    an operator leaves a server under maintenance): the change completes and starts nothing on it."""
    import yaml

    from entsso.lab.server import load_scenario

    servers = load_scenario("fast")["biztalk"]["servers"]
    bts3 = {"name": "BTS3", "entsso": "Stopped", "rule_engine": "Stopped",
            "host_instances": [{"host": "BizTalkServerApplication", "type": "InProcess", "state": "Stopped"},
                               {"host": "ReceiveHost", "type": "InProcess", "state": "Stopped"}]}
    path = tmp_path / "out-of-rotation.yml"
    path.write_text(yaml.safe_dump({"extends": "fast", "name": "out-of-rotation",
                                    "biztalk": {"servers": [*servers, bts3]}}), encoding="utf-8")
    run = run_suite(tmp_path / "reports", f"--lab={path}", "--apply", "--change-ticket", "CHG-ROTATION")
    assert run.returncode == 0, run.output[-4000:]
    services = run.lab_state["estate"]["hosts"]["BTS3"]["services"]
    assert {n: s["status"] for n, s in services.items()} == {
        "ENTSSO": "Stopped", "RuleEngineUpdateService": "Stopped",
        "BTSSvc$BizTalkServerApplication": "Stopped", "BTSSvc$ReceiveHost": "Stopped"}, services
    # the lab's own log of changes names nothing done on BTS3 (the last 500 events: the whole fast run)
    events = run.lab_state["estate"]["events"]
    assert [e["what"] for e in events if e["host"] == "BTS3"] == []
    assert [e for e in events if e["host"] == "BTS1"]  # where the change did act, the log shows it
    assert [r["outcome"] for r in run.journal() if r["kind"] == "result" and r["host"] == "BTS3"
            and r["phase"] == "silence"] == ["unchanged", "unchanged"]
