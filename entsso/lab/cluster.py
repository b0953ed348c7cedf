"""The lab's model of what else a cluster of master secret server nodes holds (issue 26): the SSO group's
resources besides the ENTSSO Generic Service (SQL Server when the MSS sits inside SQL Server's own role, the
clustered BizTalk host instances and IIS when SSO and BizTalk hosts share a group), the other roles on the
nodes (a SQL Server failover cluster instance, a clustered MSDTC), and BizTalk host instances installed on
the nodes themselves outside the cluster.

It behaves as a failover cluster does (docs/domain-notes.md, "Cluster topologies"):
- a group moves with all its resources: each goes offline on the old owner and comes back on the new one in
  dependency order, in the state it had; SQL Server in a moved group is unavailable (every session dropped,
  so its application locks are lost) from the move until it is online on the new node (`sql_online_sec`);
- a clustered service stopped through the SCM is noticed (the Generic Service's health check is a query of
  the SCM) and answered by the resource's restart policy: restarts, then a failover of the whole group;
- a service on the owner outside the cluster that depends on ENTSSO (an un-clustered host instance's
  BTSSvc$) keeps ENTSSO from stopping, so the ENTSSO resource cannot go offline and the group cannot move
  ("the clustered instance of the Enterprise SSO service cannot be failed over unless the un-clustered
  instance of the BizTalk host is stopped", How to Cluster SSO and a BizTalk Host in the Same Cluster Group).

model.py calls the hooks below under the estate's lock; this module never sleeps.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# model.py's Estate and Host (this module is model.py's helper; importing it back would be a cycle)
Estate = Any
Host = Any

SQL_ONLINE_SEC = 30.0  # SQL Server's recovery on the new node before it takes connections (lab default)
BTS_PREFIX = "BTSSvc$"


@dataclass
class Resource:
    name: str
    type: str  # ResourceType.Name: Generic Service, SQL Server, SQL Server Agent, Network Name, ...
    group: str
    state: str = "Online"  # Online, Offline, Failed, Pending
    service: str | None = None  # a Generic Service's ServiceName
    dns_name: str | None = None  # a Network Name's DnsName
    instance: str | None = None  # a SQL Server's InstanceName
    virtual_server: str | None = None  # a SQL Server's VirtualServerName
    depends_on: list[str] = field(default_factory=list)
    gen: int = 0
    starting: bool = False  # its online is under way (settle does not start it again)
    restarts: list[float] = field(default_factory=list)


@dataclass
class Role:
    name: str
    owner: str
    group_type: str
    resources: list[Resource]


def _resource(doc: dict[str, Any], group: str, default_sql: str) -> Resource:
    r = Resource(str(doc["name"]), str(doc["type"]), group, str(doc.get("state", "Online")),
                 service=doc.get("service"), dns_name=doc.get("dns_name"), instance=doc.get("instance"),
                 depends_on=[str(x) for x in doc.get("depends_on") or []])
    if r.type == "SQL Server":
        r.instance = r.instance or "MSSQLSERVER"
        r.virtual_server = doc.get("dns_name") or default_sql
        r.dns_name = None
    return r


class Topology:
    """The SSO group's other resources, the cluster's other roles, the services they run on the nodes."""

    def __init__(self, estate: Estate, cfg: dict[str, Any]) -> None:
        self.estate = estate
        self.cfg = cfg
        sql_name = str(getattr(estate.sql, "server", "SQL1"))
        group = str(cfg.get("group", "SSO"))
        self.resources: list[Resource] = [_resource(d, group, sql_name) for d in cfg.get("group_resources") or []]
        for r in self.resources:
            if r.type == "Generic Service" and r.service and r.service.startswith(BTS_PREFIX) and not r.depends_on:
                r.depends_on = [str(cfg.get("resource", "ENTSSO"))]  # a host instance needs its SSO
        nodes = list(estate.nodes)
        self.roles: list[Role] = [
            Role("Cluster Group", nodes[0] if nodes else "", "Cluster",
                 [Resource("Cluster Name", "Network Name", "Cluster Group", dns_name=str(cfg.get("core_name",
                                                                                            "SSOCLUSTERCORE"))),
                  Resource("File Share Witness", "File Share Witness", "Cluster Group",
                           state=str(cfg.get("witness", "Online")))])]
        for d in cfg.get("roles") or []:
            name = str(d["name"])
            self.roles.append(Role(name, str(d.get("owner") or (nodes[0] if nodes else "")),
                                   str(d.get("group_type", "Unknown")),
                                   [_resource(x, name, sql_name) for x in d.get("resources") or []]))
        self.sql_outages: list[dict[str, Any]] = []
        self.moves: list[dict[str, Any]] = []
        self.blocked: list[dict[str, Any]] = []

    # --- set-up -------------------------------------------------------------------------------------
    def install_services(self, Service: Any, HostInstance: Any) -> None:  # noqa: N803 - model.py's classes
        """Every node gets the services the SSO group's Generic Services run (Manual: the cluster starts them
        on the owner), with host instances for BTSSvc$ ones, and its own un-clustered host instances."""
        e = self.estate
        for n in e.nodes:
            h = e._h[n.upper()]
            for r in self.resources:
                if r.type == "Generic Service" and r.service:
                    h.services.setdefault(r.service, Service(r.service, "Stopped", "Manual"))
                    if r.service.startswith(BTS_PREFIX):
                        h.host_instances.append(HostInstance(r.service[len(BTS_PREFIX):], "InProcess", "Stopped",
                                                             False))
        for d in self.cfg.get("nodes") or []:
            if not isinstance(d, dict):
                continue
            h = e._h[str(d["name"]).upper()]
            for hi in d.get("host_instances") or []:
                inst = HostInstance(hi["host"], "InProcess", hi.get("state", "Running"),
                                    bool(hi.get("disabled", False)))
                h.host_instances.append(inst)
                h.services[BTS_PREFIX + inst.host_name] = Service(
                    BTS_PREFIX + inst.host_name, "Stopped", "Disabled" if inst.disabled else "Automatic")

    def start(self) -> None:
        """At the lab's start: the owner runs the online resources' services; un-clustered host instances
        run where ENTSSO runs (they need it)."""
        e = self.estate
        owner = e._host(e.cluster.owner)
        for r in self.resources:
            if r.state == "Online" and r.service and owner is not None:
                owner.services[r.service].status = "Running"
        for d in self.cfg.get("nodes") or []:
            if not isinstance(d, dict):
                continue
            h = e._h[str(d["name"]).upper()]
            for hi in d.get("host_instances") or []:
                if hi.get("state", "Running") == "Running" and h.services["ENTSSO"].status == "Running":
                    h.services[BTS_PREFIX + hi["host"]].status = "Running"

    # --- reading ------------------------------------------------------------------------------------
    def find(self, name: str | None) -> Resource | None:
        return next((r for r in self.resources if (r.name or "").lower() == (name or "").lower()), None)

    def clustered_service(self, service: str) -> Resource | None:
        return next((r for r in self.resources if r.service and r.service.lower() == service.lower()), None)

    def all_online(self) -> bool:
        return all(r.state == "Online" for r in self.resources)

    def any_pending(self) -> bool:
        return any(r.state == "Pending" for r in self.resources)

    def holds_sql(self) -> bool:
        return any(r.type == "SQL Server" for r in self.resources)

    def unclustered_dependents(self, h: Host) -> list[str]:
        """Services on h outside the cluster that depend on ENTSSO and are not Stopped."""
        clustered = {r.service.lower() for r in self.resources if r.service}
        return sorted(n for n, s in h.services.items()
                      if n.startswith(BTS_PREFIX) and n.lower() not in clustered and s.status != "Stopped")

    def refuse_entsso_offline(self, owner: Host, what: str) -> str | None:
        """Why the cluster cannot take ENTSSO offline on `owner` now (the SCM refuses to stop a service
        whose dependents run: 1051), or None."""
        running = self.unclustered_dependents(owner)
        if not running:
            return None
        self.blocked.append({"time": self.estate._now_iso(), "node": owner.name, "what": what, "services": running})
        self.estate._change(owner.name, f"cluster: {what} blocked by un-clustered {', '.join(running)}")
        return (f"The resource '{self.estate.cluster.resource}' could not be taken offline on {owner.name}: the "
                f"service ENTSSO has dependent services running outside the cluster ({', '.join(running)}; the "
                "SCM answers 1051, ERROR_DEPENDENT_SERVICES_RUNNING). Stop them, then retry.")

    def cluster_doc(self) -> dict[str, Any]:
        """The SSO group's resources and every role, as Get-HostFacts returns them (raw, per resource)."""
        e = self.estate
        c = e.cluster
        own: list[dict[str, Any]]
        own = [{"name": c.name, "resource_type": "Network Name", "state": "Online" if c.base_online else "Offline",
                "owner_group": c.group, "owner_node": c.owner, "dependency_expression": "",
                "possible_owners": list(c.nodes), "parameters": {"DnsName": c.name}},
               {"name": c.resource, "resource_type": "Generic Service", "state": c.resource_state,
                "owner_group": c.group, "owner_node": c.owner, "dependency_expression": f"([{c.name}])",
                "possible_owners": e._possible_owners(), "parameters": {"ServiceName": "ENTSSO"}}]
        if self.holds_sql():  # the network name is SQL Server's own: no second one
            own = own[1:]
        group_resources = own + [self._resource_doc(r, c.owner) for r in self.resources]
        roles: list[dict[str, Any]]
        roles = [{"name": ro.name, "state": self._role_state(ro), "owner_node": ro.owner, "group_type": ro.group_type,
                  "resources": [self._resource_doc(r, ro.owner) for r in ro.resources]} for ro in self.roles]
        roles.insert(1, {"name": c.group, "state": e._group_state(), "owner_node": c.owner,
                         "group_type": "GenericService", "resources": group_resources})
        return {"roles": roles}

    def _resource_doc(self, r: Resource, owner: str) -> dict[str, Any]:
        params: dict[str, Any] = {}
        if r.service:
            params["ServiceName"] = r.service
        if r.dns_name:
            params["DnsName"] = r.dns_name
        if r.type == "SQL Server":
            params["InstanceName"], params["VirtualServerName"] = r.instance, r.virtual_server
        return {"name": r.name, "resource_type": r.type, "state": r.state, "owner_group": r.group,
                "owner_node": owner, "dependency_expression": " and ".join(f"([{d}])" for d in r.depends_on),
                "possible_owners": list(self.estate.cluster.nodes), "parameters": params}

    @staticmethod
    def _role_state(ro: Role) -> str:
        states = {r.state for r in ro.resources}
        return "Online" if states <= {"Online"} else ("Failed" if "Failed" in states else "PartialOnline")

    # --- a group move -------------------------------------------------------------------------------
    def leave(self, old: Host, why: str) -> list[str]:
        """The group leaves `old`: every resource goes offline there (dependents first). Returns the names
        of those that were online, to bring back on the new owner."""
        e = self.estate
        # what the cluster brings back on the new owner: what was up or coming up, and a failed resource (the
        # cluster tries it again there)
        was = [r.name for r in self.resources if r.state in ("Online", "Pending", "Failed")]
        for r in self.resources:
            r.gen += 1
            r.starting = False
            if r.service and old.services.get(r.service) is not None:
                old.services[r.service].status = "Stopped"
            r.state = "Offline"
        if self.holds_sql() and was:
            self._sql_down(f"{why}: SQL Server goes offline on {old.name}")
        self.moves.append({"time": e._now_iso(), "group": e.cluster.group, "from": old.name, "why": why,
                           "holds_sql": self.holds_sql(), "resources": was})
        return was

    def arrive(self, new: Host, was_online: list[str]) -> None:
        """The group is on `new`: its resources come online in dependency order (SQL Server first)."""
        e = self.estate
        if self.moves:
            self.moves[-1]["to"] = new.name
        for r in self.resources:
            if r.name in was_online:
                r.state = "Pending"
        if self.holds_sql() and any(self.find(n) and self.find(n).type == "SQL Server" for n in was_online):  # type: ignore[union-attr]
            secs = float(self.cfg.get("sql_online_sec", SQL_ONLINE_SEC))
            e._schedule(secs, f"SQL Server online on {new.name}", lambda: self._sql_up(new))
        self.settle(new)

    def settle(self, owner: Host) -> None:
        """Bring each Pending resource online once what it depends on is online (ENTSSO's own resource
        included); one whose provider failed fails."""
        e = self.estate
        c = e.cluster
        waiting = False
        for r in self.resources:
            if r.state != "Pending" or r.type == "SQL Server" or r.starting:
                continue
            deps = [c.resource_state if d.lower() == c.resource.lower() else
                    (self.find(d).state if self.find(d) else "Online") for d in r.depends_on]  # type: ignore[union-attr]
            if "Failed" in deps:
                r.state = "Failed"
                e._change(owner.name, f"resource {r.name} Failed: a resource it depends on failed")
            elif all(d == "Online" for d in deps) and (not r.service or self._can_run(owner, r)):
                self._online(owner, r)
            elif c.resource_state == "Offline" and c.pending_to is None and \
                    any(d.lower() == c.resource.lower() for d in r.depends_on):
                r.state = "Offline"  # its provider was taken offline: it stays offline
            else:
                waiting = True
        if waiting:
            e._schedule(1.0, f"cluster settles group {c.group} on {owner.name}", lambda: self.settle(owner))

    def _can_run(self, owner: Host, r: Resource) -> bool:
        return not (r.service or "").startswith(BTS_PREFIX) or owner.services["ENTSSO"].status == "Running"

    def _online(self, owner: Host, r: Resource) -> None:
        e = self.estate
        r.gen += 1
        gen = r.gen
        r.starting = True
        svc = owner.services.get(r.service) if r.service else None
        if svc is not None:
            svc.status = "StartPending"
        delay = float(e.bt_cfg.get("host_instance_start_sec", 10))

        def done() -> None:
            if r.gen != gen:
                return
            r.state, r.starting = "Online", False
            if svc is not None:
                svc.status = "Running"
            e._change(owner.name, f"resource {r.name} Online")

        e._schedule(delay, f"resource {r.name} online on {owner.name}", done)

    def _sql_engines(self) -> list[Any]:
        engines = getattr(self.estate, "sql_engines", None) or [self.estate.sql]
        wanted = {(r.virtual_server or "").upper() for r in self.resources if r.type == "SQL Server"}
        named = [x for x in engines if str(getattr(x, "server", "")).upper() in wanted]
        return named or engines[:1]

    def _sql_down(self, why: str) -> None:
        self.sql_outages.append({"start": self.estate._now_iso(), "end": None, "why": why})
        for engine in self._sql_engines():
            engine.set_unavailable(True)  # the endpoint drops every session: their applocks go with them
        self.estate._change(None, f"SQL Server unavailable ({why})")

    def _sql_up(self, node: Host) -> None:
        r = next((x for x in self.resources if x.type == "SQL Server"), None)
        if r is None or not self.estate.cluster.owner or self.estate.cluster.owner.upper() != node.name.upper():
            return
        for engine in self._sql_engines():
            engine.set_unavailable(False)
        for x in self.resources:
            if x.type == "SQL Server" and x.state == "Pending":
                x.state = "Online"
        if self.sql_outages and self.sql_outages[-1]["end"] is None:
            self.sql_outages[-1]["end"] = self.estate._now_iso()
        self.estate._change(node.name, f"SQL Server online on {node.name}")
        self.settle(node)

    # --- Set-ClusterResourceState of one of them ----------------------------------------------------
    def set_state(self, owner: Host, r: Resource, want: str) -> bool:
        """Stop-/Start-ClusterResource of a resource of the group (not ENTSSO's): True if it acted."""
        e = self.estate
        if want == "Offline":
            if r.state == "Offline":
                return False
            r.gen += 1
            r.starting = False
            if r.service and owner.services.get(r.service) is not None:
                owner.services[r.service].status = "Stopped"
            r.state = "Offline"
            e._change(owner.name, f"Stop-ClusterResource {r.name}")
            return True
        if r.state in ("Online", "Pending"):
            return False
        r.state = "Pending"
        e._change(owner.name, f"Start-ClusterResource {r.name}")
        self.settle(owner)
        return True

    def entsso_offline(self, owner: Host) -> None:
        """The ENTSSO resource goes offline: the cluster takes its dependents offline first."""
        for r in self.resources:
            if any(d.lower() == self.estate.cluster.resource.lower() for d in r.depends_on) and r.state != "Offline":
                self.set_state(owner, r, "Offline")

    # --- the SCM behind the cluster's back ----------------------------------------------------------
    def scm_stopped(self, h: Host, service: str) -> None:
        """A clustered service was stopped through the SCM on its owner: the cluster notices and its restart
        policy answers (restart on the node up to the threshold, then a failover of the group)."""
        e = self.estate
        r = self.clustered_service(service)
        c = e.cluster
        if r is None or r.state != "Online" or c.owner.upper() != h.name.upper():
            return
        gen = r.gen

        def notice() -> None:
            if r.gen != gen or c.owner.upper() != h.name.upper():
                return
            r.state = "Failed"
            e._change(h.name, f"cluster: resource {r.name} Failed ({service} stopped outside the cluster)")
            now = e.clock.elapsed()
            threshold = int(e.cl_cfg.get("restart_threshold", e.RESTART_THRESHOLD))
            r.restarts = [t for t in r.restarts if now - t < float(e.cl_cfg.get("restart_period_sec",
                                                                                  e.RESTART_PERIOD_SEC))]
            if len(r.restarts) < threshold:
                r.restarts.append(now)
                e._policy(h.name, f"restart {len(r.restarts)} of {threshold} of {r.name} on {h.name} "
                                  f"({service} stopped outside the cluster)")

                def restart() -> None:
                    if r.state == "Failed" and c.owner.upper() == h.name.upper():
                        r.state = "Pending"
                        self.settle(h)

                e._schedule(e.CLUSTER_RESTART_SEC, f"cluster restarts {r.name} on {h.name}", restart)
                return
            e._policy(h.name, f"restart threshold {threshold} of {r.name} passed on {h.name}: group {c.group} "
                              "fails over")
            e._fail_over_from(h, keep_node_up=True)

        e._schedule(e.CLUSTER_NOTICE_SEC, f"cluster notices {service} stopped on {h.name}", notice)

    def dump(self) -> dict[str, Any]:
        return {"group_resources": [{"name": r.name, "type": r.type, "state": r.state, "service": r.service}
                                    for r in self.resources],
                "roles": [{"name": ro.name, "owner": ro.owner,
                           "resources": [{"name": r.name, "type": r.type, "state": r.state} for r in ro.resources]}
                          for ro in self.roles],
                "group_moves": list(self.moves), "sql_outages": list(self.sql_outages),
                "moves_blocked": list(self.blocked)}
