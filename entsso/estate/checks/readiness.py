"""The readiness gate: every check of what must hold before the MSS may be unclustered (runbook phase 0).

Each check is a function of a snapshot that returns a Finding (what it found and what it expected) or
None. tests_pre asserts them one subject at a time, so the report names each host, instance and job;
the phase fixtures run the same checks (`readiness`) before they act, so refusing does not depend on test
order.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import partial

from entsso.domain import change, sso
from entsso.domain.names import same_name
from entsso.domain.sso import ENTSSO, version_tuple
from entsso.estate.checks.clocks import clock_agrees, on_sql_clock, skews
from entsso.estate.checks.topology import offline_by_design, topology_known
from entsso.estate.checks.common import Finding, Plan, reach, utc
from entsso.estate.checks.field import (entsso_account, entsso_start_manual, job_healthy, msdtc_ready,
                                         no_entsso_alarm, sso_admin_group_known, sso_not_newer_than_mss)
from entsso.estate.snapshot import Snapshot

Check = Callable[[], "Finding | None"]


def host_reachable(s: Snapshot, host: str) -> Finding | None:
    return reach(s.hosts[host], "host_reachable")


def sql_down(s: Snapshot) -> str:
    """How SQL Server failed, in a finding's words: a refused login is not "not reachable" (issue 25)."""
    return ("SQL Server refused the login (login failed)" if s.sql.error_kind == "login failed"
            else f"SQL Server not answering ({s.sql.error_kind})" if s.sql.error_kind else "SQL Server not reachable")


def sql_reachable(s: Snapshot) -> Finding | None:
    if not s.sql.reachable:
        # the error names the server and its kind: "SQL Server SQL1 — permission denied: …"
        return Finding("sql_reachable", "SQL Server", s.sql.error or f"no answer ({s.sql.error_kind})",
                       "SQL Server to answer the suite's queries over ODBC")
    return None


def sql_grants(s: Snapshot, login: str | None = None) -> Finding | None:
    """The run's SQL login has every grant the change needs (HAS_PERMS_BY_NAME, before anything changes):
    without one, phase 1 or 2 would stop part-way with error 229."""
    lacking = s.sql.missing_grants
    if not lacking:  # None: not asked, SQL Server did not answer (sql_reachable says so)
        return None
    return Finding("sql_grants", f"SQL Server login {login}" if login else "SQL Server login",
                   "no " + ", no ".join(str(g) for g in lacking),
                   "every grant the run needs (docs/inventory.md, \"SQL Server login\"): have the DBA run "
                   + "; ".join(g.fix(login) for g in lacking) + " (or make the login sysadmin), then run the "
                   "gate again")


def node_up(s: Snapshot, node: str) -> Finding | None:
    view = s.cluster_view()
    if view is None:
        return Finding("node_up", node, "no cluster node answered", "the cluster to be readable from a node")
    n = view.node(node)
    if n is None:
        members = ", ".join(x.name for x in view.nodes)
        return Finding("node_up", node, f"not a member of the cluster (members: {members})",
                       "the inventory's node to be a cluster node")
    if n.state == "Paused":  # PauseClusterNode: no group moves to it, none comes online on it
        return Finding("node_up", node, "cluster node state Paused: the SSO group cannot be moved to it or brought "
                       "online on it, and phases 5 and 6 move the group to every node",
                       f"Up: once its maintenance is over, resume it (Resume-ClusterNode {node}), "
                       "then run the gate again")
    if not n.up:
        return Finding("node_up", node, f"cluster node state {n.state}", "Up")
    return None


def no_pending_restart(s: Snapshot, node: str) -> Finding | None:
    """No restart owed by Windows before the change: the upgrade's own restart (3010/1641) must be the only
    one, and an installer on a node with one pending may fail or ask for a restart the runbook did not plan."""
    h = s.hosts[node]
    if f := reach(h, "no_pending_restart"):
        return f
    if h.pending_restart:
        return Finding("no_pending_restart", node, "a restart is pending: " + "; ".join(h.pending_restart),
                       f"no pending restart before the change: restart {node} before the window (move the SSO "
                       "group off it first if it owns it), check it is back Up in the cluster, then run the gate "
                       "again")
    return None


def possible_owner(s: Snapshot, node: str, plan: Plan) -> Finding | None:
    """Every node may own the ENTSSO resource: phases 5 and 6 bring it online on each node in turn, and a
    node outside its possible owners would stop the run mid-recluster, the MSS half moved."""
    view = s.cluster_view()
    r = view.resource if view else None
    if r is None:
        return None  # resource_online names a missing resource
    if not r.possible_owners:
        return Finding("possible_owner", node, f"the possible owners of cluster resource {plan.resource} could not "
                       "be read (Get-ClusterOwnerNode gave none)", "a list of possible owners that names every node")
    if not any(same_name(node, o) for o in r.possible_owners):
        return Finding("possible_owner", node, f"not a possible owner of cluster resource {plan.resource} "
                       f"(possible owners: {', '.join(r.possible_owners)}): phases 5 and 6 bring it online on every "
                       "node", f"a possible owner: add it (Set-ClusterOwnerNode -Resource {plan.resource} -Owners "
                       f"{', '.join(plan.nodes)}), or check the inventory's nodes, then run the gate again")
    return None


def quorum_safe(s: Snapshot) -> Finding | None:
    """The witness is online: with it down, one more failure (a node restarting in phase 4, a node lost)
    leaves the cluster without quorum, and the cluster stops — network name, IP and the SSO role with it."""
    view = s.cluster_view()
    q = view.quorum if view else None
    if q is None:
        return Finding("quorum_safe", "cluster quorum", "not readable (Get-ClusterQuorum failed)",
                       "the quorum configuration readable from a node")
    if q.witness is not None and q.witness_state != "Online":
        return Finding("quorum_safe", f"cluster witness {q.witness}", f"state {q.witness_state}: one more failure "
                       "(a node restarting for its upgrade, a node lost) leaves the cluster without quorum and it "
                       "stops, the SSO role with it", "Online: bring the witness online (Failover Cluster Manager, "
                       "Cluster Core Resources; check the witness share or disk), then run the gate again")
    return None


def no_failback(s: Snapshot, plan: Plan) -> Finding | None:
    """The SSO group does not fail back on its own: with failback allowed, a preferred owner that comes back
    (from its upgrade's restart) pulls the group to itself mid-change, and a restore runs where the group
    is not."""
    view = s.cluster_view()
    g = view.group if view else None
    if g is None or not g.fails_back:
        return None
    return Finding("no_failback", f"cluster group {g.name}", f"failback allowed (AutoFailbackType 1) to its preferred "
                   f"owners {', '.join(g.preferred_owners)}: a node that comes back from a restart takes the group "
                   "back in the middle of the change", f"failback prevented for the change window: "
                   f"(Get-ClusterGroup {g.name}).AutoFailbackType = 0 (Failover Cluster Manager: the role's "
                   "Failover tab, Prevent failback), then run the gate again; set it back after the change")


def no_unlisted_sso_servers(s: Snapshot, plan: Plan) -> Finding | None:
    """Every SSO server that shares SSODB is in the inventory: one the runbook does not know keeps running
    through the change unsilenced, and cannot start while the MSS is down (phase 4) or unclustered."""
    if not s.sql.reachable:
        return None  # sql_reachable names it
    if s.sql.sso_servers is None:
        return Finding("no_unlisted_sso_servers", "SSODB server list", f"not readable ({s.sql.sso_servers_error})",
                       "SELECT on SSODB.dbo.SSOX_Servers for the suite's login, to find every SSO server of SSODB")
    known = list(s.hosts) + [plan.cluster_name]
    unlisted = sso.unlisted_servers(list(s.sql.sso_servers), known)
    if unlisted:
        return Finding("no_unlisted_sso_servers", "SSODB server list",
                       f"SSO servers the inventory does not list share SSODB: {', '.join(unlisted)} (registered in "
                       "SSOX_Servers within the last 10 days). The change would leave them running unsilenced, "
                       "and one that restarts while the master secret server is down or unclustered cannot start",
                       "every SSO server of SSODB in the inventory (biztalk_servers, so phase 1 stops their ENTSSO "
                       "and phase 7 starts it again), or their ENTSSO stopped for the change window by their "
                       "owners; then run the gate again")
    return None


def group_sso_server_is_cluster(s: Snapshot, plan: Plan) -> Finding | None:
    """The BizTalk group's SSO server (adapter configuration) is the cluster: one naming a BizTalk server
    stops answering when phase 1 stops its ENTSSO, and phase 6 reads the handlers through it."""
    if not s.sql.reachable:
        return None
    name = s.sql.group_sso_server
    if s.sql.group_sso_server_error is not None:
        return Finding("group_sso_server", "BizTalk group's SSO server",
                       f"not readable ({s.sql.group_sso_server_error})",
                       "SELECT on BizTalkMgmtDb.dbo.adm_Group for the suite's login")
    if name is None or (name.split(".")[0].lower() != plan.cluster_name.split(".")[0].lower()):
        return Finding("group_sso_server", "BizTalk group's SSO server",
                       f"{name!r} (MSBTS_GroupSetting.SSOServerName), "
                       f"not the cluster {plan.cluster_name}: the adapter handlers' properties are read through it, "
                       "and phase 1 stops ENTSSO on the BizTalk servers, so phase 6 could not read them",
                       f"{plan.cluster_name}: set the group's SSO Server name to it (BizTalk Administration console, "
                       "the group's Properties, General), as Microsoft's move of the MSS to a cluster asks, then "
                       "run the gate again")
    return None


def primary_owns_group(s: Snapshot, plan: Plan) -> Finding | None:
    """The primary owns the SSO group when the change starts. Phase 2 backs up the secret there (BackupSecret
    runs only on the master secret server, the owner's clustered ENTSSO) and phase 3 runs `ssomanage -updatedb`
    there through the cluster name; from another node that asks another machine's SSO server as the WinRM
    logon: a second hop the default NTLM transport cannot make."""
    view = s.cluster_view()
    owner = view.group.owner_node if view and view.group else None
    primary = plan.primary_node()
    if owner is None or same_name(owner, primary):
        return None
    return Finding("primary_owns_group", f"cluster group {plan.group}",
                   f"owned by {owner}, while cluster.primary is {primary}: phase 2 would back up the secret on "
                   f"{primary}, not the master secret server, and phase 3 would ask the cluster's SSO server on "
                   f"{owner} from {primary} (a second hop over NTLM)",
                   f"the primary to own it: Move-ClusterGroup {plan.group} -Node {primary} before the change, or "
                   f"set cluster.primary to {owner} (or remove it: the owner is then the primary)")


def group_online(s: Snapshot, plan: Plan) -> Finding | None:
    view = s.cluster_view()
    g = view.group if view else None
    if g is None:
        return Finding("group_online", f"cluster group {plan.group}", "no such group", "the SSO group to exist")
    if g.state != "Online" and not offline_by_design(s, plan):  # host instances stopped on purpose (issue 26)
        return Finding("group_online", f"cluster group {g.name}", f"state {g.state} on {g.owner_node}", "Online")
    return None


def resource_online(s: Snapshot, plan: Plan) -> Finding | None:
    view = s.cluster_view()
    r = view.resource if view else None
    subject = f"cluster resource {plan.resource}"
    if r is None:
        return Finding("resource_online", subject, "no such resource", "the ENTSSO Generic Service resource")
    if r.state != "Online":
        return Finding("resource_online", subject, f"state {r.state}", "Online")
    if (r.service_name or "").upper() != ENTSSO or r.use_network_name is False:
        return Finding("resource_online", subject,
                       f"service {r.service_name}, 'Use Network Name for computer name' {r.use_network_name}",
                       "a Generic Service resource for ENTSSO using the network name")
    return None


def ssodb_names_cluster(s: Snapshot, plan: Plan) -> Finding | None:
    if not s.sql.reachable:
        return Finding("ssodb_names_cluster", "SSODB", sql_down(s), f"secret server {plan.cluster_name}")
    if not same_name(s.sql.secret_server, plan.cluster_name):
        return Finding("ssodb_names_cluster", "SSODB secret server", repr(s.sql.secret_server),
                       f"the cluster name {plan.cluster_name!r}")
    return None


def asks_another_machine(s: Snapshot, host: str, server: str | None, plan: Plan) -> bool:
    """Whether `server`, the SSO server `host`'s tools ask, is another machine: its own name is not, nor the
    cluster name while `host` owns the group (the clustered ENTSSO runs there). Such a call presents the
    WinRM logon to a third machine: a second hop the default NTLM transport cannot make."""
    if server is None or same_name(server, host):
        return False
    view = s.cluster_view()
    owner = view.group.owner_node if view and view.group else None
    return not (same_name(server, plan.cluster_name) and same_name(owner, host))


SECOND_HOP_FIX = ("with winrm.transport ntlm that call is a second hop (the SSO server sees an anonymous caller); "
                  "the suite reads the secret server from SSODB instead, so only where the tools point is judged")


def sso_server_uses_cluster(s: Snapshot, host: str, plan: Plan) -> Finding | None:
    """The SSO server this host's tools use names the cluster as secret server. A host whose tools ask another
    machine (a BizTalk server, a node not owning the group) is judged by where its tools point: asking that
    server as the WinRM logon would be a second hop, and what it would answer is SSODB's secret server, which
    ssodb_names_cluster reads over SQL."""
    h = s.hosts[host]
    if f := reach(h, "sso_server_uses_cluster"):
        return f
    if not h.sso or not h.sso.installed:
        return Finding("sso_server_uses_cluster", host, "Enterprise SSO not installed", "an SSO server")
    if h.sso.secret_server is None and asks_another_machine(s, host, h.sso.tools_server, plan):
        if same_name(h.sso.tools_server, plan.cluster_name):
            return None
        return Finding("sso_server_uses_cluster", host, f"its SSO tools use {h.sso.tools_server!r} "
                       f"(ssomanage -displaydb: {h.sso.displaydb_error})",
                       f"its tools to use the cluster name {plan.cluster_name} (ssomanage -serverall "
                       f"{plan.cluster_name} on {host}); {SECOND_HOP_FIX}")
    if h.sso.secret_server is None:
        return Finding("sso_server_uses_cluster", host, f"ssomanage -displaydb failed: {h.sso.displaydb_error}",
                       f"its SSO to name {plan.cluster_name} as secret server")
    if not same_name(h.sso.secret_server, plan.cluster_name):
        return Finding("sso_server_uses_cluster", host, f"secret server {h.sso.secret_server!r}",
                       f"{plan.cluster_name!r}")
    return None


def no_stale_secret_backup(s: Snapshot, plan: Plan) -> Finding | None:
    """No file of this change's secret backup name on the primary (the MSS before phase 1) that this change
    did not write: Backup-MasterSecret never overwrites a file, so phase 2 would stop on it after phase 1
    silenced BizTalk. (A read-only run dates the change from that file, the preparation done by hand, so
    only a run that acts, or a change already recorded, can find it stale.)"""
    node = plan.primary_node()
    h = s.hosts.get(node)
    b = h.secret_backup if h is not None and h.reachable else None
    if b is None or not b.exists or b.last_write_utc is None:
        return None
    started = plan.change_started
    # on SQL Server's clock, which dates the change: the node's may be minutes off (entsso.estate.checks.clocks)
    if on_sql_clock(b.last_write_utc, node, getattr(plan, "clock_skews", None) or skews(s)) >= utc(started):
        return None
    return Finding("no_stale_secret_backup", f"{b.path} on {node}",
                   f"a file of this change's backup name, written {utc(b.last_write_utc):%Y-%m-%d %H:%M:%S} UTC "
                   f"({b.size} bytes), before this change began ({utc(started):%Y-%m-%d %H:%M:%S} UTC)",
                   "no such file: the master secret backup never overwrites one, so phase 2 would stop on it "
                   f"after BizTalk was silenced. Move it out of the backup folder on {node} (keep it safe: it "
                   "may be the only copy of an earlier master secret backup), then run the gate again")


def node_holds_secret(s: Snapshot, node: str) -> Finding | None:
    h = s.hosts[node]
    if f := reach(h, "node_holds_secret"):
        return f
    if not (h.sso and h.sso.holds_secret):
        return Finding("node_holds_secret", node, "no master secret (no SSOSS key)",
                       "the secret restored on every cluster node (How to Cluster the Master Secret Server)")
    return None


def package_ready(s: Snapshot, node: str, plan: Plan) -> Finding | None:
    h = s.hosts[node]
    if f := reach(h, "package_ready"):
        return f
    p = h.package or {}
    if not p.get("exists"):
        return Finding("package_ready", node, f"no update package at {p.get('path')!r}",
                       "the SSO update (or ESSO Setup) in place on the node")
    installed = h.sso.version if h.sso else None
    target = plan.target_version(node)
    if version_tuple(target) <= version_tuple(installed):
        return Finding("package_ready", node, f"installed {installed}, target {target}",
                       "a target version newer than the installed one")
    if plan.upgrade_mode(node) == "package" and p.get("file_version") and \
            version_tuple(p.get("file_version")) != version_tuple(target):
        return Finding("package_ready", node, f"package file version {p.get('file_version')}",
                       f"the target version {target}")
    return None


def backup_folder_writable(s: Snapshot, node: str) -> Finding | None:
    h = s.hosts[node]
    if f := reach(h, "backup_folder_writable"):
        return f
    b = h.backup_folder or {}
    if b.get("exists") and not b.get("writable"):
        # Get-HostFacts' probe (an empty file created and deleted there) was refused: phase 2 writes the secret
        # backup there on the primary, phase 5 copies it there on every other node, both after BizTalk stopped
        return Finding("backup_folder_writable", node, f"folder {b.get('path')!r} exists but the account the suite "
                       "connects as cannot write in it (a probe file was refused: Access is denied)",
                       f"a folder it can write: grant that account Modify on {b.get('path')} on {node} (phase 2 "
                       "writes the master secret backup there, phase 5 copies it there), or set "
                       "secret_backup.folder to one it can write on every node, then run the gate again")
    if not (b.get("exists") and b.get("writable")):
        return Finding("backup_folder_writable", node, f"folder {b.get('path')!r} exists={b.get('exists')} "
                       f"writable={b.get('writable')}", "the master secret backup folder to exist and be writable")
    return None


def not_half_done(s: Snapshot, node: str, plan: Plan) -> Finding | None:
    """No node left unclustered by an earlier attempt: ENTSSO runs only under the cluster, on the owner."""
    h = s.hosts[node]
    if f := reach(h, "not_half_done"):
        return f
    view = s.cluster_view()
    owner = view.group.owner_node if view and view.group else None
    svc = h.service(ENTSSO)
    if svc.running and not same_name(owner, node):
        return Finding("not_half_done", node, "ENTSSO running outside the cluster's control",
                       f"ENTSSO to run only on the group's owner ({owner}) under the cluster")
    if h.sso and h.sso.tools_server and not same_name(h.sso.tools_server, plan.cluster_name):
        return Finding("not_half_done", node, f"SSO tools point at {h.sso.tools_server!r}",
                       f"{plan.cluster_name!r} (ssomanage -serverall)")
    return None


def force_full_flag_found(s: Snapshot) -> Finding | None:
    """The Backup BizTalk Server job's force-full flag exists where this BizTalk version keeps it."""
    st = s.sql.backups
    if not s.sql.reachable or st is None:
        return Finding("force_full_flag_found", "BizTalkMgmtDb", sql_down(s),
                       "the force-full flag readable")
    if st.flag_table is None:
        return Finding("force_full_flag_found", "BizTalkMgmtDb", "neither adm_BackupSettings.ForceFull "
                       "(BizTalk 2010 and later) nor adm_ForceFullBackup (older BizTalk)",
                       "the Backup BizTalk Server job's force-full flag (sp_ForceFullBackup sets it): check that "
                       "sql.databases.management names the BizTalk management database")
    return None


def sql_agent_running(s: Snapshot) -> Finding | None:
    """SQL Server Agent runs: phase 1 stops the BizTalk jobs through it, phase 2 runs the backup job."""
    if not s.sql.reachable:
        return Finding("sql_agent_running", "SQL Server Agent", sql_down(s), "Running")
    if s.sql.agent is None:
        found = (f"state unreadable ({s.sql.agent_error})" if s.sql.agent_error else
                 "no SQL Server Agent service in sys.dm_server_services")
        return Finding("sql_agent_running", "SQL Server Agent", found,
                       "Running (the login needs VIEW SERVER STATE to read sys.dm_server_services)")
    if s.sql.agent != "Running":
        where = f"SQL Server Agent on {s.sql.agent_instance}" if s.sql.agent_instance else "SQL Server Agent"
        return Finding("sql_agent_running", where, f"state {s.sql.agent}",
                       "Running: start the SQL Server Agent service, then run the gate again (phase 1 stops the "
                       "BizTalk jobs and phase 2 runs the Backup BizTalk Server job through it)")
    return None


def sql_instances_match(s: Snapshot) -> Finding | None:
    """Each database the run reads is on the instance the inventory puts it on, as the Backup BizTalk Server
    job's view (admv_BackupDatabases.ServerName) says: otherwise the run would read SSODB, or run a job,
    on the wrong instance."""
    if not s.sql.reachable or not s.sql.misplaced:
        return None
    m = s.sql.misplaced
    fix = "; ".join(f"list {x.database} under sql.instances with `server: {x.view_server.split(chr(92))[0]}`"
                    + (f" and `instance: {x.view_server.split(chr(92))[1]}`" if "\\" in x.view_server else "")
                    if x.inventory_instance == s.sql.main_instance else
                    f"move {x.database} to the sql.instances entry (or sql.server) of {x.view_server}" for x in m)
    return Finding("sql_instances_match", ", ".join(x.database for x in m), "; ".join(str(x) for x in m),
                   f"each database on the instance BizTalk names: {fix} (docs/inventory.md, sql.instances); "
                   "if that is another name of the same instance (a client alias), set the inventory's server "
                   "to that name")


def job_idle(s: Snapshot, job: str, expected_running: Iterable[str] = (),
             let_finish: str | None = None) -> Finding | None:
    """No BizTalk job running before the change, but those SQL Agent keeps running on its own
    (`expected_running`: the inventory's sql.continuous_jobs), which run on a healthy estate, and the Backup
    BizTalk Server job (`let_finish`): its schedule runs it every 15 minutes by default, and phases 1 and 2 let
    a run going finish (never stop it), bounded by timeouts.backup_job (docs/domain-notes.md, issue 27)."""
    j = s.sql.jobs.get(job)
    if j is None or not j.exists:
        return Finding("job_idle", job, "no such SQL Agent job", "the BizTalk job named in the inventory")
    if j.running and let_finish is not None and job.lower() == let_finish.lower():
        return None
    if j.running and job.lower() not in {n.lower() for n in expected_running}:
        return Finding("job_idle", job, "running now", "no BizTalk job running before the change (but the "
                       "continuously running ones of sql.continuous_jobs); wait for this run to end, then run the "
                       "gate again")
    return None



def readiness(s: Snapshot, plan: Plan) -> list[Finding]:
    checks: list[Check] = [lambda: topology_known(s, plan)]
    checks += [lambda: sql_reachable(s), lambda: group_online(s, plan), lambda: resource_online(s, plan),
                           lambda: ssodb_names_cluster(s, plan), lambda: force_full_flag_found(s),
                           lambda: no_stale_secret_backup(s, plan), lambda: quorum_safe(s),
                           lambda: no_failback(s, plan), lambda: no_unlisted_sso_servers(s, plan),
                           lambda: group_sso_server_is_cluster(s, plan), lambda: primary_owns_group(s, plan)]
    for h in s.hosts:
        checks += [partial(host_reachable, s, h), partial(sso_server_uses_cluster, s, h, plan),
                   partial(clock_agrees, s, h)]
    for n in plan.nodes:
        checks += [partial(node_up, s, n), partial(possible_owner, s, n, plan),
                   partial(no_pending_restart, s, n),
                   partial(node_holds_secret, s, n),
                   partial(package_ready, s, n, plan), partial(backup_folder_writable, s, n),
                   partial(not_half_done, s, n, plan)]
    checks += [lambda: sql_agent_running(s), lambda: sql_instances_match(s)]
    checks += [lambda: sso_admin_group_known(s)]
    for n in plan.nodes:  # the field's hard lessons (issue 28)
        checks += [partial(entsso_account, s, n, plan), partial(entsso_start_manual, s, n),
                   partial(msdtc_ready, s, n, plan), partial(no_entsso_alarm, s, n, plan)]
    checks += [partial(sso_not_newer_than_mss, s, b, plan) for b in plan.biztalk_servers]
    checks += [lambda: sql_grants(s, plan.inventory.sql.username)]
    continuous = plan.inventory.sql.continuous_jobs
    checks += [partial(job_idle, s, j, continuous, plan.inventory.sql.backup_job) for j in plan.job_names]
    checks += [partial(job_healthy, s, j, continuous) for j in plan.job_names]  # issue 28 item 3
    return [f for f in (c() for c in checks) if f]


def no_unfinished_change(s: Snapshot, ticket: str | None, command: Callable[[str], str]) -> list[Finding]:
    """No other ticket's change is unfinished on the estate (its record in a node's backup folder), and
    every such record could be read: one change at a time, and never a new baseline taken from an estate
    that another change left silenced or unclustered."""
    out = []
    for r in s.change_records():
        if r.open and (ticket is None or change.label(r.ticket) != change.label(ticket)):
            out.append(Finding("no_unfinished_change", f"change {r.ticket}", f"unfinished: {r.describe()}",
                               f"no other change in progress — continue it with `{command(r.ticket)}`, or back it "
                               f"out with `{command(r.ticket).replace(' --apply ', ' --backout ')}`"))
    for h in s.nodes:
        for problem in h.change_record_problems:
            out.append(Finding("no_unfinished_change", h.name, f"an unreadable change record: {problem}",
                               "every ENTSSO-*.change.json in the backup folder to be entsso-upgrade's own record"))
    return out


def half_done(s: Snapshot, plan: Plan) -> str | None:
    """What of the estate looks like a change stopped part-way (for a gate that refuses), or None. Only with
    positive evidence of a change: an open change record on a node (issue 25: a mistyped name is not one)."""
    if not any(r.status == "open" for r in s.change_records()):
        return None
    seen = []
    if s.sql.reachable and s.sql.secret_server and not same_name(s.sql.secret_server, plan.cluster_name):
        seen.append(f"SSODB names {s.sql.secret_server} as the master secret server, not the cluster name "
                    f"{plan.cluster_name} (phase 3 moves it to the primary)")
    view = s.cluster_view()
    if view and view.resource and view.resource.state == "Offline" and view.group and view.group.state != "Offline":
        # phase 3 takes the resource offline and leaves the group up (PartialOnline); a whole group offline
        # is the estate's own fault, not a change's leftover
        seen.append(f"the ENTSSO cluster resource {view.resource.name} is Offline while its group is "
                    f"{view.group.state} (phase 3 takes it offline)")
    instances = [i for h in s.biztalk_servers if h.reachable for i in h.host_instances if i.in_process]
    jobs = [j for j in s.sql.jobs.values() if j.exists]
    if instances and all(i.state == "Stopped" for i in instances) and jobs and not any(j.enabled for j in jobs):
        seen.append("BizTalk is silenced: every host instance stopped and every BizTalk job disabled (phase 1)")
    return "; ".join(seen) or None
