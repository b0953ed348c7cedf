"""What the cluster holding the master secret server holds besides it (issue 26): every resource of the SSO
group and every other role on the nodes, as Get-HostFacts reads them raw (Get-ClusterGroup,
Get-ClusterResource, Get-ClusterResourceDependency, Get-ClusterOwnerNode, Get-ClusterParameter), and which of
the topologies Microsoft documents for a clustered master secret server that is:

- dedicated MSS cluster: the SSO group holds its network name, IP address and the ENTSSO Generic Service;
- MSS role on the SQL cluster: the same SSO group, as a role of its own on the nodes of a SQL Server failover
  cluster ("you can add the master secret server as a cluster resource in your SQL Server database cluster",
  Learn, "Clustering the Master Secret Server");
- MSS inside SQL Server's role: the ENTSSO resource in SQL Server's own group, so a move of the MSS is a move
  of SQL Server;
- SSO with clustered BizTalk hosts: the group also holds host instances (BTSSvc$ Generic Services), IIS for
  isolated hosts and MSDTC ("How to Cluster SSO and a BizTalk Host in the Same Cluster Group").
Anything else (a resource of another type, SQL Server and BizTalk hosts in one group) is none of them.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from entsso.domain.errors import DomainError
from entsso.domain.names import same_name

DEDICATED = "dedicated MSS cluster"
ON_SQL_CLUSTER = "MSS role on the SQL cluster"
IN_SQL_ROLE = "MSS inside SQL Server's role"
WITH_HOSTS = "SSO with clustered BizTalk hosts"
TOPOLOGIES = (DEDICATED, ON_SQL_CLUSTER, IN_SQL_ROLE, WITH_HOSTS)

BTS_PREFIX = "BTSSvc$"
IIS_SERVICE = "W3SVC"
# the resource types an SSO group of one of the documented topologies may hold, besides Generic Services
PLUMBING = frozenset({"Network Name", "Distributed Network Name", "IP Address", "IPv6 Address",
                      "IPv6 Tunnel Address", "Physical Disk", "Distributed Transaction Coordinator"})
SQL_TYPES = frozenset({"SQL Server", "SQL Server Agent"})
# the roles every cluster has, which say nothing of the topology
CORE_GROUP_TYPES = frozenset({"Cluster", "AvailableStorage", "ClusterStoragePool", "ClusterSharedVolume"})


@dataclass(frozen=True)
class Resource:
    name: str
    type: str
    state: str
    group: str | None
    owner_node: str | None
    depends_on: tuple[str, ...]
    possible_owners: tuple[str, ...]
    parameters: dict[str, str]

    @property
    def service(self) -> str | None:
        return self.parameters.get("ServiceName") if self.type == "Generic Service" else None

    @property
    def host_instance(self) -> str | None:
        """The BizTalk host whose instance this Generic Service runs (BTSSvc$<host>), else None."""
        s = self.service
        return s[len(BTS_PREFIX):] if s and s.startswith(BTS_PREFIX) else None


@dataclass(frozen=True)
class Role:
    name: str
    state: str
    owner_node: str | None
    group_type: str | None
    resources: tuple[Resource, ...]

    def sql_server(self) -> Resource | None:
        return next((r for r in self.resources if r.type == "SQL Server"), None)

    @property
    def sql_name(self) -> str | None:
        """The SQL Server instance this role serves, as clients name it (VirtualServerName[\\InstanceName])."""
        r = self.sql_server()
        if r is None:
            return None
        server = r.parameters.get("VirtualServerName") or next(
            (x.parameters.get("DnsName") for x in self.resources if x.type == "Network Name"), None) or self.name
        instance = r.parameters.get("InstanceName")
        return server if not instance or instance.upper() == "MSSQLSERVER" else f"{server}\\{instance}"


def _deps(expression: str | None) -> tuple[str, ...]:
    """The resource names in a dependency expression (`([A]) and ([B] or [C])`)."""
    return tuple(re.findall(r"\[([^\]]+)\]", expression or ""))


class UnreadableTopology(DomainError, ValueError):
    """Get-HostFacts' roles or resources are not what the script returns: the message shows what came."""


def _resource(doc: dict[str, Any]) -> Resource:
    if not isinstance(doc, dict) or not doc.get("name"):
        raise UnreadableTopology(f"Get-HostFacts gave a cluster resource that is not one: {doc!r} (expected "
                                 "{name, resource_type, state, ...}; see docs/operations.md)")
    return Resource(str(doc.get("name")), str(doc.get("resource_type") or "Unknown"), str(doc.get("state")),
                    doc.get("owner_group"), doc.get("owner_node"), _deps(doc.get("dependency_expression")),
                    tuple(doc.get("possible_owners") or ()),
                    {str(k): str(v) for k, v in (doc.get("parameters") or {}).items() if v is not None})


def parse_resources(docs: list[dict[str, Any]] | None) -> tuple[Resource, ...] | None:
    return None if docs is None else tuple(_resource(d) for d in docs)


def group_resources(roles: tuple[Role, ...] | None, group: str | None) -> tuple[Resource, ...] | None:
    """Every resource of the SSO group: those of the role named as the group (Get-HostFacts returns every role
    raw); none when no role has that name, None when the roles were not read."""
    if roles is None:
        return None
    return next((r.resources for r in roles if group and same_name(r.name, group)), ())


def parse_roles(docs: list[dict[str, Any]] | None) -> tuple[Role, ...] | None:
    if docs is None:
        return None
    for d in docs:
        if not isinstance(d, dict) or not d.get("name"):
            raise UnreadableTopology(f"Get-HostFacts gave a cluster role that is not one: {d!r} (expected "
                                     "{name, state, owner_node, group_type, resources}; see docs/operations.md)")
    return tuple(Role(str(d.get("name")), str(d.get("state")), d.get("owner_node"), d.get("group_type"),
                      tuple(_resource(r) for r in d.get("resources") or ())) for d in docs)


@dataclass(frozen=True)
class Reading:
    """The topology the gate found: its name (one of TOPOLOGIES) or None with why, and what it is made of."""
    name: str | None
    why_none: str | None
    sso_group: str
    unknown: tuple[Resource, ...]  # resources of the SSO group of a type the suite does not know
    sql_roles: tuple[Role, ...]  # other roles holding a SQL Server (a failover cluster instance)
    sql_in_group: tuple[Resource, ...]  # SQL Server resources inside the SSO group
    clustered_hosts: tuple[Resource, ...]  # BTSSvc$ Generic Services of the SSO group
    iis: tuple[Resource, ...]  # W3SVC Generic Services of the SSO group
    dtc: tuple[Resource, ...]  # MSDTC in the SSO group
    other_roles: tuple[Role, ...]  # every other role (not the cluster's core groups)

    def describe(self) -> str:
        parts = [f"the SSO group {self.sso_group}"]
        if self.sql_in_group:
            parts.append("holds SQL Server (" + ", ".join(r.name for r in self.sql_in_group) + ")")
        if self.clustered_hosts:
            parts.append("holds clustered host instances (" + ", ".join(
                f"{r.name}: {r.service}" for r in self.clustered_hosts) + ")")
        if self.iis:
            parts.append("holds IIS (" + ", ".join(r.name for r in self.iis) + ")")
        if self.dtc:
            parts.append("holds MSDTC (" + ", ".join(r.name for r in self.dtc) + ")")
        if self.unknown:
            parts.append("holds " + ", ".join(f"{r.name} (type {r.type})" for r in self.unknown))
        roles = ", ".join(f"{r.name} on {r.owner_node}" + (f" (SQL Server {r.sql_name})" if r.sql_server() else "")
                          for r in self.other_roles)
        return "; ".join(parts) + (f"; other roles: {roles}" if roles else "; no other role")


def _known_service(r: Resource, entsso_resource: str) -> bool:
    s = r.service or ""
    return same_name(r.name, entsso_resource) or s.upper() in ("ENTSSO", IIS_SERVICE, "MSDTC") \
        or s.startswith(BTS_PREFIX)


def read(group: str, entsso_resource: str, resources: tuple[Resource, ...] | None,
         roles: tuple[Role, ...] | None) -> Reading | None:
    """Which topology the cluster's roles and the SSO group's resources make (None: they were not read)."""
    if resources is None or roles is None:
        return None
    unknown = tuple(r for r in resources if not (r.type in PLUMBING or r.type in SQL_TYPES or (
        r.type == "Generic Service" and _known_service(r, entsso_resource))))
    sql_in = tuple(r for r in resources if r.type == "SQL Server")
    hosts = tuple(r for r in resources if r.host_instance)
    iis = tuple(r for r in resources if (r.service or "").upper() == IIS_SERVICE)
    dtc = tuple(r for r in resources if r.type == "Distributed Transaction Coordinator"
                or (r.service or "").upper() == "MSDTC")
    others = tuple(ro for ro in roles if not same_name(ro.name, group) and (ro.group_type or "") not in CORE_GROUP_TYPES
                   and ro.name not in ("Cluster Group", "Available Storage"))
    sql_roles = tuple(ro for ro in others if ro.sql_server() is not None)
    name: str | None
    why = None
    if unknown:
        held = ", ".join(f"resource '{r.name}' of type '{r.type}'" for r in unknown)
        name, why = None, f"the SSO group holds {held}, which none of the documented topologies has"
    elif sql_in and (hosts or iis):
        name, why = None, "the SSO group holds SQL Server and BizTalk host instances together"
    elif sql_in:
        name = IN_SQL_ROLE
    elif hosts or iis:
        name = WITH_HOSTS
    elif sql_roles:
        name = ON_SQL_CLUSTER
    else:
        name = DEDICATED
    return Reading(name, why, group, unknown, sql_roles, sql_in, hosts, iis, dtc, others)
