"""The cluster's topology (issue 26): which of the topologies Microsoft documents for a clustered master secret
server the gate found (entsso.domain.topology), refused by name when it is none of them or when the change
cannot be done on it safely, and what the operator must know about it (the MSS beside the MessageBox's SQL
Server). Readiness lists topology_known; the report and summary.json name the reading."""
from __future__ import annotations

from typing import Any

from entsso.domain import topology
from entsso.domain.names import same_name
from entsso.estate.checks.common import Finding, Plan
from entsso.estate.snapshot import Snapshot

SQL_FAILOVER_OPTION = "--allow-sql-failover"
MESSAGEBOX_SOURCE = ("Learn, \"Clustering the Master Secret Server\": \"we recommend that you do not put the master "
                     "secret server on the same active node as the MessageBox database\"")
UNCLUSTERED_SOURCE = ("Learn, \"How to Cluster SSO and a BizTalk Host in the Same Cluster Group\": \"if an "
                      "un-clustered instance of a BizTalk host is running on the same cluster node that a clustered "
                      "instance of the Enterprise SSO service is running then the clustered instance of the Enterprise "
                      "SSO service cannot be failed over unless the un-clustered instance of the BizTalk host is "
                      "stopped\"")


def reading(s: Snapshot, plan: Plan) -> topology.Reading | None:
    view = s.cluster_view()
    return view.topology(plan.resource) if view else None


def allows_sql_failover(plan: Plan) -> bool:
    return bool(getattr(getattr(plan, "options", None), "allow_sql_failover", False))


def topology_known(s: Snapshot, plan: Plan) -> Finding | None:
    """The cluster is one of the documented topologies, and one the change can be done on: the MSS inside SQL
    Server's own role only with --allow-sql-failover (each move of the MSS is then a move of SQL Server)."""
    view = s.cluster_view()
    if view is None:
        return None  # no node answered: host_reachable and node_up say so
    r = view.topology(plan.resource)
    if r is None:
        return Finding("topology_known", f"cluster {plan.cluster_name}", "its roles and resources unreadable "
                       "(Get-ClusterGroup / Get-ClusterResource gave nothing through WinRM)",
                       "every role of the cluster and every resource of the SSO group read, to know what a move of "
                       f"the group {plan.group} moves")
    if r.name is None:
        return Finding("topology_known", f"group {plan.group}", f"none of the documented topologies: {r.why_none} "
                       f"({r.describe()})", "a dedicated MSS cluster, the MSS role on the SQL cluster, the MSS inside "
                       "SQL Server's role or SSO with clustered BizTalk hosts; nothing was changed. Move the resource "
                       "out of the SSO group (or tell us what it is), then run the gate again")
    if r.name == topology.IN_SQL_ROLE and not allows_sql_failover(plan):
        sql = ", ".join(x.name for x in r.sql_in_group)
        return Finding("topology_known", f"group {plan.group}", f"the {r.name} ({sql} in the SSO group): phase 5 and "
                       "phase 6 move the group to each node, and every move takes SQL Server offline on one node and "
                       "online on the next, an outage of every BizTalk database", "the operator's consent: "
                       f"re-run with {SQL_FAILOVER_OPTION} to accept SQL Server's failovers while BizTalk is silenced "
                       "(the estate lock is re-taken after each; the run waits for SQL Server to answer), or move the "
                       "ENTSSO resource to a group of its own first")
    return None


def offline_by_design(s: Snapshot, plan: Plan) -> bool:
    """The SSO group is PartialOnline only because some of its clustered host instances or IIS are offline (an
    operator stopped them, or phase 1 did), with ENTSSO Online: the MSS serves, as a Microsoft-documented group."""
    view = s.cluster_view()
    r = reading(s, plan)
    if r is None or view is None or view.group is None or view.group.state != "PartialOnline":
        return False
    if view.resource is None or view.resource.state != "Online":
        return False
    allowed = {x.name for x in r.clustered_hosts + r.iis}
    down = [x for x in view.group_resources or () if x.state != "Online"]
    return bool(down) and all(x.name in allowed for x in down)


def unclustered_hosts_on_nodes(s: Snapshot, plan: Plan) -> dict[str, list[str]]:
    """Node -> the host instances installed on it outside the cluster (not a clustered Generic Service)."""
    r = reading(s, plan)
    clustered = {(x.host_instance or "").lower() for x in (r.clustered_hosts if r else ())}
    return {h.name: [i.host_name for i in h.host_instances if i.in_process and i.host_name.lower() not in clustered]
            for h in s.nodes if h.reachable}


def warnings(s: Snapshot, plan: Plan) -> list[str]:
    """What the operator must know about this topology, which does not stop the change."""
    r = reading(s, plan)
    if r is None or r.name is None:
        return []
    out = []
    view = s.cluster_view()
    owner = view.group.owner_node if view and view.group else None
    box = messagebox_instance(plan)
    for role in r.sql_roles:
        if role.sql_name and same_name(role.sql_name.split("\\")[0], box.split("\\")[0]) and same_name(role.owner_node,
                                                                                                      owner):
            out.append(f"the master secret server ({plan.group}, on {owner}) shares the active node of the MessageBox "
                       f"database's SQL Server ({role.name}, {role.sql_name}): Microsoft recommends another node. "
                       f"Source: {MESSAGEBOX_SOURCE}")
    for node, names in unclustered_hosts_on_nodes(s, plan).items():
        if names:
            out.append(f"{node} has host instances outside the cluster ({', '.join(names)}): the suite stops them "
                       "(SCM) before any move of the group and restores them as before. Source: " + UNCLUSTERED_SOURCE)
    return out


def messagebox_instance(plan: Plan) -> str:
    """The SQL Server (as the inventory names it) that holds the MessageBox: sql.server, unless one of
    sql.instances lists a MessageBox database."""
    sql: Any = plan.inventory.sql
    for inst in sql.instances or []:
        if any("msgbox" in d.lower() or "messagebox" in d.lower() for d in inst.databases):
            return str(inst.label())
    return str(sql.server) + (f"\\{sql.instance}" if sql.instance else "")


def active_sql_nodes(s: Snapshot, plan: Plan) -> dict[str, list[str]]:
    """Node -> the SQL Server roles active on it (other roles than the SSO group), for the plan."""
    r = reading(s, plan)
    out: dict[str, list[str]] = {}
    for role in r.sql_roles if r else ():
        if role.owner_node:
            out.setdefault(role.owner_node.upper(), []).append(f"{role.name} ({role.sql_name})")
    return out


def summary(s: Snapshot, plan: Plan) -> dict[str, Any] | None:
    """The topology as the report and summary.json give it."""
    r = reading(s, plan)
    if r is None:
        return None
    return {"name": r.name, "refused_because": r.why_none, "seen": r.describe(),
            "sql_roles": [{"role": x.name, "sql_server": x.sql_name, "owner_node": x.owner_node} for x in r.sql_roles],
            "sql_in_sso_group": [x.name for x in r.sql_in_group],
            "clustered_host_instances": [{"resource": x.name, "service": x.service} for x in r.clustered_hosts],
            "iis": [x.name for x in r.iis], "msdtc": [x.name for x in r.dtc],
            "unknown_resources": [{"name": x.name, "type": x.type} for x in r.unknown],
            "unclustered_host_instances": unclustered_hosts_on_nodes(s, plan),
            "warnings": warnings(s, plan),
            "sql_failover_allowed": allows_sql_failover(plan)}


def topology_as_before(s: Snapshot, baseline: Any) -> list[Finding]:
    """The SSO group's clustered host instances and IIS in the state they had before the change, and the host
    instances on the nodes outside the cluster too (entsso.estate.baseline.Baseline, issue 26)."""
    out = []
    view = s.cluster_view()
    now = {r.name: r.state for r in (view.group_resources or ()) } if view else {}
    for name, before in (baseline.clustered_resources or {}).items():
        want = "Online" if before == "Online" else "Offline"
        if now.get(name) != want:
            out.append(Finding("matches_baseline", f"cluster resource {name}", str(now.get(name)),
                               f"{want} (as before the change)"))
    for node, instances in (baseline.node_host_instances or {}).items():
        h = s.hosts.get(node)
        if h is None or not h.reachable:
            out.append(Finding("matches_baseline", node, "no answer", "the node to answer"))
            continue
        seen = {i.host_name: i.state for i in h.host_instances if i.in_process}
        for name, before in instances.items():
            want = "Running" if before == "Running" else "Stopped"
            if seen.get(name) != want:
                out.append(Finding("matches_baseline", f"host instance {name} on {node} (outside the cluster)",
                                   str(seen.get(name)), f"{want} (as before the change)"))
    return out
