"""The proofs each phase ends with (phases 1-7 and the backout) and the post-state's checks: what the change
did, read back from a fresh snapshot. Each returns a Finding, or None when the estate is as the phase left it."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol

from entsso.domain.biztalk import RULE_ENGINE
from entsso.domain.names import same_name
from entsso.domain.sso import ENTSSO, version_tuple
from entsso.estate.baseline import Baseline
from entsso.estate.checks.clocks import on_sql_clock, skews
from entsso.estate.checks.common import Finding, Plan, reach, utc
from entsso.estate.checks.topology import offline_by_design, topology_as_before
from entsso.estate.checks.readiness import (
    node_holds_secret,
    resource_online,
    sso_server_uses_cluster,
    ssodb_names_cluster,
)
from entsso.estate.snapshot import Snapshot


def host_instance_stopped(s: Snapshot, server: str, host_name: str) -> Finding | None:
    h = s.hosts[server]
    if f := reach(h, "host_instance_stopped"):
        return f
    hi = next((i for i in h.host_instances if i.host_name == host_name), None)
    if hi is None:
        return Finding("host_instance_stopped", f"{host_name} on {server}", "no such host instance", "stopped")
    if hi.in_process and hi.state != "Stopped":
        return Finding("host_instance_stopped", f"{host_name} on {server}", hi.state, "Stopped")
    return None


def service_stopped(s: Snapshot, host: str, service: str) -> Finding | None:
    h = s.hosts[host]
    if f := reach(h, "service_stopped"):
        return f
    svc = h.service(service)
    if not svc.stopped:
        return Finding("service_stopped", f"{service} on {host}", svc.status or "unknown", "Stopped")
    return None


def job_disabled(s: Snapshot, job: str) -> Finding | None:
    j = s.sql.jobs.get(job)
    if j is None or not j.exists:
        return Finding("job_disabled", job, "no such SQL Agent job", "disabled")
    if j.enabled:
        return Finding("job_disabled", job, "enabled", "disabled for the change")
    if j.running:
        return Finding("job_disabled", job, "disabled but still running", "not running")
    return None


def secret_backed_up(s: Snapshot, node: str, change_started: datetime,
                     clock_skews: Mapping[str, float] | None = None) -> Finding | None:
    """The change's master secret backup on `node`, written in this change: its write time (the node's clock) put
    on SQL Server's clock, which dates the change's start, with the run's measured skews (else this snapshot's)."""
    h = s.hosts[node]
    if f := reach(h, "secret_backed_up"):
        return f
    b = h.secret_backup
    if b is None:
        return Finding("secret_backed_up", node, "no backup file named for this change", "a master secret backup")
    if not b.exists or b.size <= 0:
        return Finding("secret_backed_up", node, f"{b.path} exists={b.exists} size={b.size}",
                       "a non-empty master secret backup file")
    measured = skews(s) if clock_skews is None else clock_skews
    if b.last_write_utc is None or on_sql_clock(b.last_write_utc, node, measured) < utc(change_started):
        off = measured.get(node, 0.0)
        way = "ahead of" if off > 0 else "behind"
        clock = f" by {node}'s clock, {abs(off):.0f} s {way} SQL Server's" if off else ""
        return Finding("secret_backed_up", node, f"{b.path} written {b.last_write_utc}{clock}",
                       f"written in this change (after {change_started.isoformat()}, SQL Server's clock)")
    return None


def full_backup_complete(s: Snapshot, database: str, proof: Mapping[str, Any] | None) -> Finding | None:
    """`database` has a row in this change's forced full set, proven by the Backup BizTalk Server job's own
    set ids (phase 2's journalled evidence, `proof`) and still complete in adm_BackupHistory. Never by
    backup times: SQL Server records them in its local time."""
    st = s.sql.backups
    if st is None:
        return Finding("full_backup_complete", database, "backup state unreadable", "a full backup")
    if not proof or proof.get("set_id") is None:
        return Finding("full_backup_complete", database, "no forced full set recorded for this change",
                       "phase 2's forced full backup, proven by its set id (pytest tests_pre --apply "
                       "--change-ticket … records it)")
    set_id, before = int(proof["set_id"]), proof.get("before_set_id")
    if before is not None and set_id <= int(before):
        return Finding("full_backup_complete", database, f"full set {set_id}, not newer than set {before}",
                       "a full set newer than the newest one before the forced run")
    if database.lower() not in {d.lower() for d in proof.get("databases") or {}}:
        listed = any(d.database.lower() == database.lower() for d in st.databases)
        return Finding("full_backup_complete", database, f"no row in the forced full set {set_id}"
                       + ("" if listed else " (not in admv_BackupDatabases)"),
                       "a full backup of it in that set" + ("" if listed else
                       ": add it to BizTalkMgmtDb.dbo.adm_OtherBackupDatabases, then force the backup again"))
    # re-read now: the job's history still has a complete full set of it at least as new as the proven one
    row = next((d for d in st.databases if d.database.lower() == database.lower()), None)
    newest = row.last_full_set if row is not None else st.last_full_set
    if newest is None or newest < set_id:
        return Finding("full_backup_complete", database, f"full set {set_id} no longer complete in adm_BackupHistory "
                       f"(newest complete full set of it: {newest})", f"the forced full set {set_id}")
    return None


def force_flag_consumed(s: Snapshot, proof: Mapping[str, Any] | None) -> Finding | None:
    """The card's "adm_ForceFullBackup set": read as set after sp_ForceFullBackup in this change (the
    proof), then consumed by the new full set (read now)."""
    st = s.sql.backups
    where = (f"{st.flag_table}.ForceFull" if st and st.flag_table == "adm_BackupSettings" else
             st.flag_table if st and st.flag_table else "the force-full flag")
    if st is None or st.force_full is not False:
        return Finding("force_flag_consumed", where, "flag still set" if st and st.force_full else "unreadable",
                       "the flag consumed by a completed Backup BizTalk Server run")
    if not proof or not proof.get("flag_set_by_sp_ForceFullBackup"):
        return Finding("force_flag_consumed", where, "no record that sp_ForceFullBackup set it in this change",
                       "the flag set by sp_ForceFullBackup in phase 2, then consumed by the forced full set")
    return None


# --- later phases' proofs ----------------------------------------------------------------------------
def service_running(s: Snapshot, host: str, service: str) -> Finding | None:
    h = s.hosts[host]
    if f := reach(h, "service_running"):
        return f
    svc = h.service(service)
    if not svc.running:
        return Finding("service_running", f"{service} on {host}", svc.status or "not installed", "Running")
    return None


def version_is(s: Snapshot, host: str, version: str) -> Finding | None:
    h = s.hosts[host]
    if f := reach(h, "version_is"):
        return f
    found = h.sso.version if h.sso else None
    if version_tuple(found) != version_tuple(version):
        return Finding("version_is", f"Enterprise SSO on {host}", f"version {found}", f"version {version}")
    return None


def matches_baseline(s: Snapshot, baseline: Baseline) -> list[Finding]:
    """BizTalk as it was before the change: what ran runs, what was enabled is enabled, nothing more."""
    out: list[Finding] = []
    for server, instances in baseline.host_instances.items():
        h = s.hosts.get(server)
        if h is None or not h.reachable:
            out.append(Finding("matches_baseline", server, "no answer", "the BizTalk server to answer"))
            continue
        now = {i.host_name: i.state for i in h.host_instances if i.in_process}
        for name, before in instances.items():
            want = "Running" if before == "Running" else "Stopped"
            if now.get(name) != want:
                out.append(Finding("matches_baseline", f"host instance {name} on {server}", str(now.get(name)),
                                   f"{want} (as before the change)"))
        for svc, was in ((RULE_ENGINE, baseline.rule_engine.get(server)), (ENTSSO, baseline.entsso.get(server))):
            want = "Running" if was == "Running" else "Stopped"
            got = h.service(svc)
            if (want == "Running") != got.running:
                out.append(Finding("matches_baseline", f"{svc} on {server}", str(got.status),
                                   f"{want} (as before the change)"))
    for job, was_enabled in baseline.jobs_enabled.items():
        j = s.sql.jobs.get(job)
        if j is None or j.enabled != was_enabled:
            out.append(Finding("matches_baseline", f"job {job}", "enabled" if j and j.enabled else "disabled",
                               f"{'enabled' if was_enabled else 'disabled'} (as before the change)"))
    return out + topology_as_before(s, baseline)  # the cluster's host instances (issue 26)


# --- the runbook's phase verifications ---------------------------------------------------------------
def unclustered_findings(plan: Plan, s: Snapshot) -> list[Finding | None]:
    primary = plan.primary_node()
    out: list[Finding | None] = []
    if not same_name(s.sql.secret_server, primary):
        out.append(Finding("unclustered", "SSODB secret server", repr(s.sql.secret_server), repr(primary)))
    view = s.cluster_view()
    if view and view.resource and view.resource.state != "Offline":
        out.append(Finding("unclustered", f"cluster resource {plan.resource}", view.resource.state, "Offline"))
    for n in plan.nodes:
        h = s.hosts[n]
        out.append(service_running(s, n, ENTSSO))
        if h.reachable and h.sso and h.sso.secret_server is None and n != primary \
                and same_name(h.sso.tools_server, primary):
            continue  # its tools ask the primary: a second hop to read back; SSODB's row is checked above
        if h.reachable and h.sso and not same_name(h.sso.secret_server, primary):
            out.append(Finding("unclustered", f"SSO on {n}", f"secret server {h.sso.secret_server!r} "
                                    f"({h.sso.displaydb_error or 'answered'})", repr(primary)))
    primary_sso = s.hosts[primary].sso
    if primary_sso and not primary_sso.holds_secret:
        out.append(Finding("unclustered", primary, "no master secret", "the MSS to hold the secret"))
    return out


def reclustered_findings(plan: Plan, s: Snapshot) -> list[Finding | None]:
    primary = plan.primary_node()
    view = s.cluster_view()
    out: list[Finding | None] = [ssodb_names_cluster(s, plan), resource_online(s, plan)]
    if view and view.group and not same_name(view.group.owner_node, primary):
        out.append(Finding("reclustered", f"cluster group {plan.group}", f"owned by {view.group.owner_node}",
                                f"owned by the primary {primary}"))
    for h in s.hosts:
        if h in plan.nodes:
            out.append(sso_server_uses_cluster(s, h, plan))
            out.append(node_holds_secret(s, h))
    return out


def clustered_as_before(plan: Plan, s: Snapshot) -> bool:
    """SSODB names the cluster, the resource is Online and no node runs ENTSSO outside the cluster."""
    view = s.cluster_view()
    if not same_name(s.sql.secret_server, plan.cluster_name):
        return False
    if not (view and view.resource and view.resource.state == "Online"):
        return False
    owner = view.resource.owner_node
    return not any(s.hosts[n].service(ENTSSO).running for n in plan.nodes if not same_name(n, owner)) and all(
        sso_server_uses_cluster(s, n, plan) is None for n in plan.nodes)


def backed_out_findings(plan: Plan, s: Snapshot, baseline: Baseline) -> list[Finding | None]:
    out: list[Finding | None] = [ssodb_names_cluster(s, plan), resource_online(s, plan)]
    for n in plan.nodes:
        out.append(sso_server_uses_cluster(s, n, plan))
        out.append(node_holds_secret(s, n))
    view = s.cluster_view()
    owner = baseline.group_owner
    if owner and view and view.group and not same_name(view.group.owner_node, owner):
        out.append(Finding("backed_out", f"cluster group {plan.group}", f"owned by {view.group.owner_node}",
                                f"owned by {owner}, as before the change"))
    return out + list(matches_baseline(s, baseline))


# --- the post-state (tests_post) -----------------------------------------------------------------------
def group_came_online_on(per_node: Mapping[str, Any], node: str, silenced: bool = False) -> Finding | None:
    """Phase 6 owned the group on `node` and it came Online there (the move's answer, or where it was read);
    `silenced`: the group holds host instances phase 1 took offline, so PartialOnline is as it should be."""
    seen = per_node.get(node)
    if seen is None or "group" not in seen:
        return Finding("failover", node, "the group was not moved to it in this run", "owned in turn")
    group = seen["group"] or {}
    states = ("Online", "PartialOnline") if silenced else ("Online",)
    if group.get("state") not in states or not same_name(group.get("owner_node"), node):
        return Finding("failover", node, f"group {group}", " or ".join(states) + " on this node")
    return None


def adapters_readable_through(per_node: Mapping[str, Any], node: str) -> Finding | None:
    """Every adapter handler's configuration read through `node`'s own SSO while it owned the group."""
    seen = per_node.get(node) or {}
    handlers = seen.get("handlers") or []
    bad = [h for h in handlers if not h["readable"]]
    if not handlers:
        return Finding("adapters", node, "no adapter handler read through it", "every handler readable")
    if bad:
        return Finding("adapters", node, f"{len(bad)} unreadable, e.g. {bad[0]['adapter']}: "
                       f"{bad[0]['error_code']} {bad[0]['error']}", "every handler readable")
    return None


def group_back_home(s: Snapshot, baseline: Baseline, plan: Plan) -> Finding | None:
    """The SSO group Online on the node that owned it before the change."""
    view = s.cluster_view()
    group = view.group if view else None
    owner = group.owner_node if group else None
    if group is not None and same_name(owner, baseline.group_owner) and (
            group.state == "Online" or offline_by_design(s, plan)):  # its host instances as before (issue 26)
        return None
    return Finding("failover", f"cluster group {plan.group}", f"{group.state if group else '?'} on {owner}",
                   f"Online on {baseline.group_owner} (its owner before the change)")


class Tried(Protocol):
    """One operation of the rehearsal as the check reads it (entsso.change.rehearsal.Rehearsed meets it)."""

    @property
    def operation(self) -> str: ...
    @property
    def ok(self) -> bool: ...
    @property
    def detail(self) -> str: ...


def rehearsed(items: Sequence[Tried], where: str) -> Finding | None:
    """Every operation the change will run on `where` ran in its rehearsal form and found the estate so."""
    bad = [r for r in items if not r.ok]
    if not bad:
        return None
    return Finding("rehearsal", f"{bad[0].operation} on {where}", bad[0].detail,
                   "the operation to run and find the estate already so")

