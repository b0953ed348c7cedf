"""The lab's cluster topologies (issue 26, entsso/lab/cluster.py) driven on the model: a group moves with all
its resources, SQL Server in a moved group is unavailable until it is online on the new node, an SCM stop of a
clustered host instance is answered by the restart policy, and an un-clustered host instance on the owner
blocks the move."""
from __future__ import annotations

from typing import Any

import pytest

from entsso.lab.clock import Clock
from entsso.lab.model import Estate, PSError
from entsso.lab.server import _merge, load_scenario
from entsso.domain import cluster
from selftest.lab.test_model import FakeSql, services, wait_until


class OutageSql(FakeSql):
    """FakeSql that can go down as the SQL endpoint does (set_unavailable), recording each change."""

    def __init__(self, secret_server: str) -> None:
        super().__init__(secret_server)
        self.changes: list[bool] = []

    def set_unavailable(self, flag: bool) -> None:
        self.available = not flag
        self.changes.append(not flag)


def make(scenario: str, speed: float = 2000.0, **overrides: Any) -> Estate:
    doc = load_scenario(scenario)
    if overrides:
        doc = _merge(doc, overrides)
    return Estate(doc, Clock(speed), OutageSql(doc["sso"]["secret_server"]))


def move(e: Estate, host: str, node: str) -> dict[str, Any]:
    table = {k: list(v) for k, v in cluster.STATES_AFTER_MOVE.items()}
    return e.invoke(host, "Move-ClusterGroup", {"group": e.cluster.group, "node": node, "timeout_sec": 300,
                                                "states_after_move": table})


def cluster_facts(e: Estate, node: str) -> dict[str, Any]:
    return e.invoke(node, "Get-HostFacts", {"cluster": {"group": e.cluster.group, "resource": "ENTSSO"},
                                            "services": ["ENTSSO"], "biztalk": True})


def test_the_group_resources_and_the_other_roles_are_read_raw_with_their_types():
    e = make("mss-on-sql-cluster")
    doc = cluster_facts(e, "NODE2")
    c = doc["cluster"]
    roles = {r["name"]: r for r in c["roles"]}
    assert [(r["name"], r["resource_type"]) for r in roles["SSO"]["resources"]] == [
        ("SSOCLUSTER", "Network Name"), ("ENTSSO", "Generic Service")]
    # the SSO group's resources are the role named as the group, as Python takes them (the script returns roles raw)
    from entsso.domain.cluster import parse_cluster

    parsed = parse_cluster("NODE2", doc)
    assert parsed is not None and [(r.name, r.type) for r in parsed.group_resources or ()] == [
        ("SSOCLUSTER", "Network Name"), ("ENTSSO", "Generic Service")]
    assert set(roles) == {"Cluster Group", "SSO", "SQL Server (MSSQLSERVER)", "MSDTC-SQL1"}
    sql = roles["SQL Server (MSSQLSERVER)"]
    assert sql["owner_node"] == "NODE1"
    assert {"name": "SQL Server", "type": "SQL Server", "VirtualServerName": "SQL1"}.items() <= {
        "name": sql["resources"][3]["name"], "type": sql["resources"][3]["resource_type"],
        **sql["resources"][3]["parameters"]}.items()
    assert sql["resources"][4]["dependency_expression"] == "([SQL Server])"


def test_moving_a_group_that_holds_sql_server_takes_sql_down_until_it_is_online_on_the_new_node():
    e = make("mss-in-sql-role", speed=200.0)
    sql = e.sql
    got = move(e, "NODE1", "NODE2")
    assert (got["owner_node"], got["state"]) == ("NODE2", "Online")
    assert sql.changes == [False, True]  # down at the move, up once online on NODE2
    outage = e.dump()["cluster"]["topology"]["sql_outages"]
    assert len(outage) == 1 and outage[0]["end"] is not None
    assert e.dump()["cluster"]["topology"]["group_moves"][0]["holds_sql"] is True
    # ENTSSO came online after SQL Server (it needs SSODB)
    assert e.dump()["hosts"]["NODE2"]["sso"]["running_as"] == "SQL1"


def test_a_move_of_the_sso_role_on_the_sql_cluster_leaves_sql_server_where_it_is():
    e = make("mss-on-sql-cluster")
    move(e, "NODE1", "NODE2")
    roles = {r["name"]: r for r in cluster_facts(e, "NODE1")["cluster"]["roles"]}
    assert roles["SQL Server (MSSQLSERVER)"]["owner_node"] == "NODE1"
    assert roles["SSO"]["owner_node"] == "NODE2"
    assert e.sql.changes == []


def test_an_unclustered_host_instance_on_the_owner_blocks_the_move_until_it_is_stopped():
    e = make("sso-with-clustered-hosts")
    with pytest.raises(PSError, match=r"dependent services running outside the cluster \(BTSSvc\$NodeLocalHost"):
        move(e, "NODE1", "NODE2")
    assert e.dump()["cluster"]["group"]["owner"] == "NODE1"
    assert e.dump()["cluster"]["topology"]["moves_blocked"][0]["services"] == ["BTSSvc$NodeLocalHost"]
    services(e, "NODE1", ("BTSSvc$NodeLocalHost", "Stopped"))
    got = move(e, "NODE1", "NODE2")
    assert got["owner_node"] == "NODE2"
    # the clustered host instance and IIS came with the group, after ENTSSO
    svc = e.dump()["hosts"]["NODE2"]["services"]
    assert (svc["BTSSvc$ClusteredHost"]["status"], svc["W3SVC"]["status"]) == ("Running", "Running")
    assert e.dump()["hosts"]["NODE1"]["services"]["BTSSvc$ClusteredHost"]["status"] == "Stopped"


def test_an_scm_stop_of_a_clustered_host_instance_is_answered_by_the_restart_policy():
    e = make("sso-with-clustered-hosts", speed=200.0)
    services(e, "NODE1", ("BTSSvc$ClusteredHost", "Stopped"))
    assert wait_until(e, lambda: e.dump()["hosts"]["NODE1"]["services"]["BTSSvc$ClusteredHost"]["status"]
                      == "Running", 60)
    assert "restart 1 of 3 of BizTalk ClusteredHost on NODE1" in e.dump()["cluster"]["restart_policy"]["actions"][0][
        "what"]


def test_clustered_host_instances_go_offline_and_online_through_the_cluster():
    e = make("sso-with-clustered-hosts")
    out = e.invoke("NODE1", "Set-ClusterResourceState", {"resource": "BizTalk ClusteredHost", "state": "Offline",
                                                         "timeout_sec": 60})
    assert (out["state_before"], out["state"], out["changed"]) == ("Online", "Offline", True)
    assert e.dump()["cluster"]["group"]["state"] == "PartialOnline"
    e.clock.sleep(20)
    assert e.dump()["cluster"]["restart_policy"]["actions"] == []  # through the cluster: no policy
    out = e.invoke("NODE1", "Set-ClusterResourceState", {"resource": "BizTalk ClusteredHost", "state": "Online",
                                                         "timeout_sec": 60})
    assert out["state"] == "Online" and e.dump()["cluster"]["group"]["state"] == "Online"


def test_past_its_restart_threshold_a_clustered_host_instance_fails_the_whole_group_over():
    e = make("sso-with-clustered-hosts", speed=200.0, cluster={"restart_threshold": 0})
    services(e, "NODE1", ("BTSSvc$NodeLocalHost", "Stopped"))
    services(e, "NODE1", ("BTSSvc$ClusteredHost", "Stopped"))
    assert wait_until(e, lambda: e.dump()["cluster"]["group"]["owner"] == "NODE2"
                      and e.dump()["cluster"]["group"]["state"] == "Online", 120)
    svc = e.dump()["hosts"]["NODE2"]["services"]
    assert (svc["ENTSSO"]["status"], svc["BTSSvc$ClusteredHost"]["status"], svc["W3SVC"]["status"]) == (
        "Running", "Running", "Running")
    moved = e.dump()["cluster"]["topology"]["group_moves"][-1]
    assert (moved["from"], moved["to"], moved["why"]) == ("NODE1", "NODE2", "restart policy failover")
