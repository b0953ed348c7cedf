"""Every topology Microsoft documents for a clustered master secret server (issue 26), each against its lab
scenario on one estate that outlives the runs: the gate names the topology (summary.json); a change stopped in
phase 4 (NODE2's package fails) is backed out and the estate is in service as before; a new change then
completes. Asserted on the lab's own log: no SQL Server role moved (but with --allow-sql-failover), no SCM stop
of a clustered host instance, every host instance as before."""
from __future__ import annotations

from typing import Any

from selftest.e2e.suite import run_suite

STOP_IN_UPGRADE = {"kind": "installer_exit", "host": "NODE2", "exit_code": 1603}


def host_instances(state: dict[str, Any]) -> dict[str, Any]:
    """Every host instance of the estate, BizTalk servers and nodes, and the services the nodes run."""
    hosts = state["estate"]["hosts"]
    return {name: {"host_instances": {i["host_name"]: i["service_state"] for i in h["host_instances"]},
                   "services": {s: v["status"] for s, v in h["services"].items() if s != "ENTSSO" or
                                h["role"] == "biztalk"}}
            for name, h in hosts.items()}


def clustered_scm_stops(state: dict[str, Any]) -> list[str]:
    """SCM stop controls sent to a service a resource of the SSO group runs (clustered host instances, IIS)."""
    clustered = {r["service"] for r in state["estate"]["cluster"]["topology"]["group_resources"] if r["service"]}
    return [k for k in state["estate"]["service_controls"] if k.split(" ")[1] in clustered]


def roles(state: dict[str, Any]) -> dict[str, str]:
    return {r["name"]: r["owner"] for r in state["estate"]["cluster"]["topology"]["roles"]}


def change_backout_change(start_lab, tmp_path, scenario: str, *extra: str) -> tuple[Any, list[Any]]:
    """A change stopped in phase 4 and its backout on a lab that outlives the runs; then the whole change on a
    fresh lab of the same scenario. The lab's log holds both to the rules of the topology."""
    lab = start_lab(scenario)
    before = lab.state()
    env, inv = dict(lab.env), f"--inventory={lab.inventory_path}"
    lab.post("/faults", {**STOP_IN_UPGRADE})
    stopped = run_suite(tmp_path / "reports", inv, "--apply", "--change-ticket", "CHG-T1", *extra, env=env)
    assert stopped.returncode == 1 and stopped.summary["verdict_phase"] == "upgrade", stopped.output[-3000:]
    lab.post("/faults/clear", {})
    back = run_suite(tmp_path / "reports", inv, "--backout", "--change-ticket", "CHG-T1", *extra, env=env)
    assert back.returncode == 0 and back.summary["verdict"] == "backed-out", back.output[-3000:]
    after_backout = lab.state()
    assert host_instances(after_backout) == host_instances(before)
    assert after_backout["estate"]["cluster"]["group"]["owner"] == before["estate"]["cluster"]["group"]["owner"]
    assert after_backout["estate"]["cluster"]["resource"]["state"] == "Online"
    for state in (after_backout,):
        assert state["estate"]["cluster"]["restart_policy"]["actions"] == []
        assert clustered_scm_stops(state) == []
        assert roles(state) == roles(before)
    done = run_suite(tmp_path / "full", f"--lab={scenario}", "--apply", "--change-ticket", "CHG-T2", *extra)
    assert done.returncode == 0 and done.summary["verdict"] == "completed", done.output[-3000:]
    after = done.lab_state
    assert host_instances(after) == host_instances(before)
    assert after["estate"]["cluster"]["restart_policy"]["actions"] == []
    assert clustered_scm_stops(after) == []
    assert roles(after) == roles(before)
    return lab, [stopped, back, done, before, after]


def test_mss_role_on_the_sql_cluster_moves_alone_and_warns_beside_the_messagebox(start_lab, tmp_path):
    _, (stopped, back, done, before, after) = change_backout_change(start_lab, tmp_path, "mss-on-sql-cluster")
    topology = stopped.summary["topology"]
    assert topology["name"] == "MSS role on the SQL cluster"
    assert topology["sql_roles"] == [{"role": "SQL Server (MSSQLSERVER)", "sql_server": "SQL1", "owner_node": "NODE1"}]
    assert any("shares the active node of the MessageBox" in w for w in topology["warnings"]), topology["warnings"]
    moves = after["estate"]["cluster"]["topology"]["group_moves"]
    assert moves and all(m["group"] == "SSO" and not m["holds_sql"] for m in moves)
    assert after["estate"]["cluster"]["topology"]["sql_outages"] == []
    assert roles(after)["SQL Server (MSSQLSERVER)"] == "NODE1"
    assert "Cluster topology: MSS role on the SQL cluster" in (stopped.dir / "report.html").read_text()
    plan = run_suite(tmp_path / "plan", "--lab=mss-on-sql-cluster", "--plan", "--change-ticket", "CHG-PLAN")
    text = (plan.dir / "plan.md").read_text()
    assert "NODE1 owns the active SQL Server instance SQL1 (SQL Server (MSSQLSERVER))" in text, text[:3000]
    assert "shares the active node of the MessageBox" in text


def test_sso_with_clustered_hosts_silences_them_through_the_cluster(start_lab, tmp_path):
    _, (stopped, back, done, before, after) = change_backout_change(start_lab, tmp_path, "sso-with-clustered-hosts")
    assert stopped.summary["topology"]["name"] == "SSO with clustered BizTalk hosts"
    assert stopped.summary["topology"]["unclustered_host_instances"] == {"NODE1": ["NodeLocalHost"],
                                                                         "NODE2": ["NodeLocalHost"]}
    steps = [(r["phase"], r["step"], r["host"]) for r in done.journal() if r["kind"] == "result"]
    assert ("silence", "take the clustered host instances offline through the cluster", "NODE1") in steps
    assert ("silence", "stop the host instances outside the cluster", "NODE1") in steps
    assert ("resume", "bring the clustered host instances online through the cluster", "NODE1") in steps
    # the un-clustered instance was stopped before the group first moved, and it never blocked a move
    assert after["estate"]["cluster"]["topology"]["moves_blocked"] == []
    assert after["estate"]["service_controls"].get("NODE1 BTSSvc$NodeLocalHost stop")  # through the SCM, as it is
    events = [e["what"] for e in after["estate"]["events"]]
    assert "Stop-ClusterResource BizTalk ClusteredHost" in events and "Start-ClusterResource IIS" in events


def test_mss_inside_sql_servers_role_is_refused_without_the_opt_in(tmp_path):
    run = run_suite(tmp_path, "--lab=mss-in-sql-role", "--apply", "--change-ticket", "CHG-SQLROLE")
    assert run.returncode != 0
    msg = run.message("test_cluster_is_a_topology_microsoft_documents")
    assert "the MSS inside SQL Server's role" in msg and "--allow-sql-failover" in msg, msg
    assert run.summary["topology"]["name"] == "MSS inside SQL Server's role"
    assert run.lab_state["changes"] == 0


def test_mss_inside_sql_servers_role_with_the_opt_in_fails_sql_server_over_and_completes(start_lab, tmp_path):
    _, (stopped, back, done, before, after) = change_backout_change(start_lab, tmp_path, "mss-in-sql-role",
                                                                     "--allow-sql-failover")
    assert done.summary["topology"]["sql_failover_allowed"] is True
    outages = after["estate"]["cluster"]["topology"]["sql_outages"]
    assert outages and all(o["end"] for o in outages)
    journal = done.journal()
    downs = [r for r in journal if r["kind"] == "sql_unavailable"]
    backs = [r for r in journal if r["kind"] == "sql_back"]
    relocked = [r for r in journal if r["kind"] == "result" and r["step"] == "take the estate lock again after SQL "
                                                                            "Server moved"]
    assert len(downs) == len(backs) == len(relocked) == 4  # phase 5 to NODE2 and back, phase 6 to NODE2 and back
    assert all(r["outcome"] == "ok" and r["evidence"]["held"] for r in relocked)
    # BizTalk was silenced through every move: the moves are in phases 5 and 6 only
    assert {r["phase"] for r in downs} <= {"recluster", "failover"}
    report = (done.dir / "report.html").read_text()
    assert "SQL Server goes offline (moves with the group)" in report and "SQL Server answers again" in report
    plan_notes = "\n".join(r.get("message", "") for r in journal)
    assert done.summary["verdict"] == "completed", plan_notes[-200:]


def test_a_group_holding_an_unknown_resource_type_is_refused_by_name_and_nothing_changes(tmp_path):
    run = run_suite(tmp_path, "--lab=cluster-unknown-resource", "--apply", "--change-ticket", "CHG-UNKNOWN")
    assert run.returncode != 0
    assert run.outcomes["test_cluster_is_a_topology_microsoft_documents"] == "failed"
    msg = run.message("test_cluster_is_a_topology_microsoft_documents")
    assert "resource 'Contoso Backup Agent' of type 'Contoso Backup Agent'" in msg, msg
    assert run.summary["topology"]["name"] is None
    assert run.summary["topology"]["unknown_resources"] == [{"name": "Contoso Backup Agent",
                                                             "type": "Contoso Backup Agent"}]
    assert run.lab_state["changes"] == 0
    assert [r for r in run.journal() if r["kind"] == "gate_refused"]


def test_the_gate_names_a_dedicated_mss_cluster(tmp_path):
    run = run_suite(tmp_path, "tests_pre", "-m", "readiness", "--lab=fast")
    assert run.returncode == 0, run.output[-3000:]
    assert run.outcomes["test_cluster_is_a_topology_microsoft_documents"] == "passed"
    assert run.summary["topology"]["name"] == "dedicated MSS cluster"
    assert run.lab_state["changes"] == 0


def test_a_clustered_host_instance_stopped_before_the_change_stays_stopped(tmp_path):
    """The operator had taken one clustered host instance offline (the group is PartialOnline, ENTSSO Online): the
    gate accepts it, the change completes, and it is offline again at the end while IIS is back online."""
    import yaml

    path = tmp_path / "stopped-clustered-host.yml"
    path.write_text(yaml.safe_dump({"extends": "sso-with-clustered-hosts", "name": "stopped-clustered-host",
                                    "cluster": {"group_resources": [
                                        {"name": "MSDTC-SSO", "type": "Distributed Transaction Coordinator"},
                                        {"name": "BizTalk ClusteredHost", "type": "Generic Service",
                                         "service": "BTSSvc$ClusteredHost", "depends_on": ["ENTSSO"],
                                         "state": "Offline"},
                                        {"name": "IIS", "type": "Generic Service", "service": "W3SVC"}]}}),
                    encoding="utf-8")
    run = run_suite(tmp_path / "reports", f"--lab={path}", "--apply", "--change-ticket", "CHG-STOPPEDHOST")
    assert run.returncode == 0 and run.summary["verdict"] == "completed", run.output[-3000:]
    resources = {r["name"]: r["state"] for r in run.lab_state["estate"]["cluster"]["topology"]["group_resources"]}
    assert resources == {"MSDTC-SSO": "Online", "BizTalk ClusteredHost": "Offline", "IIS": "Online"}
    assert run.lab_state["estate"]["cluster"]["group"]["state"] == "PartialOnline"
    assert clustered_scm_stops(run.lab_state) == []
