"""entsso.domain.topology: which documented topology a cluster's roles and the SSO group's resources make
(issue 26), from Get-HostFacts' raw documents."""
from __future__ import annotations

from typing import Any

import pytest

from entsso.domain import topology


def res(name: str, rtype: str, **params: str) -> dict[str, Any]:
    return {"name": name, "resource_type": rtype, "state": "Online", "owner_group": "SSO", "owner_node": "NODE1",
            "dependency_expression": "", "possible_owners": ["NODE1", "NODE2"], "parameters": params}


BASE = [res("SSOCLUSTER", "Network Name", DnsName="SSOCLUSTER"), res("IP Address 10.0.0.5", "IP Address"),
        res("ENTSSO", "Generic Service", ServiceName="ENTSSO")]
CORE = {"name": "Cluster Group", "state": "Online", "owner_node": "NODE1", "group_type": "Cluster",
        "resources": [res("Cluster Name", "Network Name")]}
SQL_ROLE = {"name": "SQL Server (MSSQLSERVER)", "state": "Online", "owner_node": "NODE2",
            "group_type": "GenericService",
            "resources": [res("SQL Network Name (SQL1)", "Network Name", DnsName="SQL1"),
                          res("SQL Server", "SQL Server", InstanceName="MSSQLSERVER", VirtualServerName="SQL1")]}


def reading(group: list[dict[str, Any]], *roles: dict[str, Any]) -> topology.Reading:
    sso = {"name": "SSO", "state": "Online", "owner_node": "NODE1", "group_type": "GenericService",
           "resources": group}
    got = topology.read("SSO", "ENTSSO", topology.parse_resources(group), topology.parse_roles([CORE, sso, *roles]))
    assert got is not None
    return got


@pytest.mark.parametrize(("group", "roles", "name"), [
    (BASE, (), topology.DEDICATED),
    (BASE, (SQL_ROLE,), topology.ON_SQL_CLUSTER),
    (BASE[2:] + SQL_ROLE["resources"] + [res("SQL Server Agent", "SQL Server Agent")], (), topology.IN_SQL_ROLE),
    (BASE + [res("BizTalk Host", "Generic Service", ServiceName="BTSSvc$ClusteredHost"),
             res("MSDTC", "Distributed Transaction Coordinator")], (), topology.WITH_HOSTS),
    (BASE + [res("IIS", "Generic Service", ServiceName="W3SVC")], (SQL_ROLE,), topology.WITH_HOSTS),
])
def test_each_documented_topology_is_named(group, roles, name):
    assert reading(group, *roles).name == name


def test_a_resource_of_an_unknown_type_makes_it_none_of_them_and_is_named():
    r = reading(BASE + [res("Contoso Agent", "Contoso Backup Agent")])
    assert r.name is None
    assert "resource 'Contoso Agent' of type 'Contoso Backup Agent'" in (r.why_none or "")


def test_a_generic_service_running_something_else_is_unknown_too():
    r = reading(BASE + [res("Print Spooler", "Generic Service", ServiceName="Spooler")])
    assert (r.name, [x.name for x in r.unknown]) == (None, ["Print Spooler"])


def test_sql_server_and_host_instances_in_one_group_is_none_of_them():
    r = reading(BASE[2:] + SQL_ROLE["resources"] + [res("H", "Generic Service", ServiceName="BTSSvc$H")])
    assert r.name is None and "SQL Server and BizTalk host instances together" in (r.why_none or "")


def test_the_sql_role_names_its_instance_as_clients_do():
    named = dict(SQL_ROLE, resources=[res("SQL Server (INST1)", "SQL Server", InstanceName="INST1",
                                          VirtualServerName="SQLVS")])
    r = reading(BASE, named)
    assert [x.sql_name for x in r.sql_roles] == ["SQLVS\\INST1"]


def test_dependencies_are_read_from_the_expression():
    got = topology.parse_resources([dict(res("A", "SQL Server Agent"),
                                         dependency_expression="([SQL Server]) and ([Disk 1] or [Disk 2])")])
    assert got is not None and got[0].depends_on == ("SQL Server", "Disk 1", "Disk 2")


def test_not_read_is_not_a_topology():
    assert topology.read("SSO", "ENTSSO", None, None) is None


def test_a_resource_that_is_not_one_is_an_error_that_shows_it():
    with pytest.raises(topology.UnreadableTopology, match=r"a cluster resource that is not one: None"):
        topology.parse_resources([None])  # type: ignore[list-item]
