"""The field's hard lessons (issue 28): what an SSO expert checks before touching the MSS — ENTSSO's account and
start type, the SSO servers' versions against the MSS's target, the jobs' health, MSDTC, the ENTSSO event log.
Each is a readiness check (entsso.estate.checks.readiness lists them) with its source."""
from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from entsso.domain import services, sqlagent, ssobuilds, ssoevents
from entsso.domain.msdtc import shared_cids as msdtc_shared
from entsso.domain.msdtc import sql_unreachable as msdtc_unreachable
from entsso.domain.names import same_name
from entsso.domain.sso import ENTSSO, version_tuple
from entsso.estate.checks.common import Finding, Plan, reach, utc
from entsso.estate.snapshot import HostFacts, Snapshot


# --- The field's hard lessons (issue 28): what an SSO expert checks before touching the MSS -------------

ACCOUNT_SOURCE = ("Learn, \"Troubleshooting Enterprise Single Sign-On\": the master secret is protected with a key "
                  "tied to the ENTSSO service account (a changed account gives events 10520/10565/10521), and "
                  "\"if the ENTSSO service is not running under a valid SSO Administrator account, it will fail to "
                  "start\"")


def entsso_account(s: Snapshot, node: str, plan: Plan) -> Finding | None:
    """ENTSSO logs on as one domain account on every node (Win32_Service.StartName), the owner's: the
    clustered ENTSSO runs under the account of whichever node owns the group, the secret each node restores is
    protected for that account, and ENTSSO starts only under an account in the SSO Administrators group SSODB
    names (SSOX_GlobalInfo.gi_SSOAdminGroup). The membership itself is not read (that would ask the domain
    from the node: a second hop): what the gate confirms is one domain account on every node, and, with the
    clustered ENTSSO running under it on the owner (resource_online), that it was an SSO administrator when
    ENTSSO last started there."""
    h = s.hosts[node]
    if f := reach(h, "entsso_account"):
        return f
    svc = h.service(ENTSSO)
    if not svc.exists:
        return None  # not_half_done / node_holds_secret name a node without SSO
    group = s.sql.sso_admin_group
    where = f" (SSODB's SSO administrators group: {group})" if group else ""
    if svc.logon_account is None:
        return Finding("entsso_account", node, "ENTSSO's logon account unreadable (Win32_Service.StartName gave "
                       "none)", "the account ENTSSO logs on as, readable through CIM by the run's WinRM account")
    why = services.not_a_domain_account(svc.logon_account, node)
    if why:
        return Finding("entsso_account", node, f"ENTSSO logs on as {svc.logon_account}, {why}: a different identity "
                       "on each node, which no domain SSO administrators group can hold for the cluster" + where,
                       "one domain account, a member of the SSO administrators group, on every node (services.msc, "
                       "Enterprise Single Sign-On Service, Log On), then run the gate again. Source: "
                       + ACCOUNT_SOURCE)
    view = s.cluster_view()
    owner = view.group.owner_node if view and view.group else plan.primary_node()
    o = s.hosts.get(owner) if owner else None
    theirs = o.service(ENTSSO).logon_account if o and o.reachable else None
    if theirs and not same_name(owner, node) and \
            services.account_key(theirs) != services.account_key(svc.logon_account):
        return Finding("entsso_account", node, f"ENTSSO logs on as {svc.logon_account}, while on {owner}, which owns "
                       f"the SSO group, it logs on as {theirs}: when phase 5 or 6 brings the resource online here, "
                       "ENTSSO runs as another account, which may not be an SSO administrator and cannot read a "
                       "secret protected for the other" + where,
                       f"ENTSSO's logon account on {node} set to {theirs} (services.msc, Enterprise Single Sign-On "
                       "Service, Log On; the cluster starts it with the SCM's account), then run the gate again. "
                       "Source: " + ACCOUNT_SOURCE)
    return None


def sso_admin_group_known(s: Snapshot) -> Finding | None:
    """SSODB names its SSO administrators group (SSOX_GlobalInfo.gi_SSOAdminGroup): the group ENTSSO's account
    must belong to, which entsso_account names."""
    if not s.sql.reachable:
        return None  # sql_reachable names it
    if s.sql.sso_admin_group_error is not None or not s.sql.sso_admin_group:
        return Finding("sso_admin_group_known", "SSODB's SSO administrators group",
                       f"not readable ({s.sql.sso_admin_group_error or 'SSOX_GlobalInfo.gi_SSOAdminGroup is empty'})",
                       "SELECT on SSODB.dbo.SSOX_GlobalInfo for the suite's login, and the group SSO was configured "
                       "with in gi_SSOAdminGroup")
    return None


START_TYPE_SOURCE = ("Microsoft APAC BizTalk blog, \"0x800706D9 when contact a SSO master secret cluster\" (2013): "
                     "a local ENTSSO started on the cluster nodes outside the cluster leaves the secret server's RPC "
                     "endpoint unregistered after a failover (0xC0002A0F / RPC 0x800706D9)")


def entsso_start_manual(s: Snapshot, node: str) -> Finding | None:
    """ENTSSO's start type is Manual on every node: the cluster starts it (a Generic Service resource) where
    the group is. Automatic, the SCM starts a local ENTSSO at boot (phase 4 restarts nodes) beside or instead
    of the cluster's; Disabled, the cluster cannot start it at all when phases 5 and 6 bring it online there."""
    h = s.hosts[node]
    if f := reach(h, "entsso_start_manual"):
        return f
    svc = h.service(ENTSSO)
    if not svc.exists or svc.start_type in (None, "Manual"):
        return None
    harm = ("the cluster cannot start it when phases 5 and 6 bring the ENTSSO resource online here"
            if svc.start_type == "Disabled" else
            "the SCM starts a local ENTSSO when the node boots (phase 4 restarts it), outside the cluster, and a "
            "failover then finds the master secret server's RPC endpoint unregistered")
    return Finding("entsso_start_manual", node, f"ENTSSO's start type {svc.start_type}: {harm}",
                   f"Manual, the cluster starting it: Set-Service -Name ENTSSO -StartupType Manual on {node}, then "
                   "run the gate again; and keep monitoring tools (SCOM, BizTalk360's auto-healing) from starting "
                   "services in the window. Source: " + START_TYPE_SOURCE)


VERSION_SOURCE = ("Learn, \"Upgrade to BizTalk Server 2020\": \"Upgrade all the servers in a BizTalk group to the same "
                  "release. This requirement also applies to a standalone master secret server\", the master "
                  "secret server first; support article \"Upgrading or not upgrading Enterprise SSO\" (KB 2908466): "
                  "a server newer than its master secret server fails with \"Please upgrade your master secret "
                  "server\"; KB 2954101: an HIS SSO beside a BizTalk SSO needs the master secret server to run the "
                  "newer one")


def mss_target(plan: Plan) -> str | None:
    """The version the master secret server runs after the change: the lowest of the nodes' targets (the
    group may come online on any node)."""
    targets = [plan.target_version(n) for n in plan.nodes]
    return min(targets, key=version_tuple) if targets else None


def sso_not_newer_than_mss(s: Snapshot, host: str, plan: Plan) -> Finding | None:
    """An SSO server of the group (a BizTalk server the inventory lists; one registered in SSODB and not
    listed is refused by no_unlisted_sso_servers, its version unreadable) runs no newer SSO than the master
    secret server's target: the master secret server must be at least as new as every SSO server."""
    h = s.hosts[host]
    if f := reach(h, "sso_not_newer_than_mss"):
        return f
    if not h.sso or not h.sso.installed:
        return None  # sso_server_uses_cluster names it
    target = mss_target(plan)
    if not h.sso.version:
        return Finding("sso_not_newer_than_mss", host, "an SSO version that could not be read (ENTSSO.exe's file "
                       "version)", f"a version at most the master secret server's target {target}")
    if target and version_tuple(h.sso.version) > version_tuple(target):
        return Finding("sso_not_newer_than_mss", host, f"SSO {h.sso.version}, newer than {target}, the version the "
                       "master secret server's nodes are upgraded to: this server would ask a master secret server "
                       "older than itself (\"Please upgrade your master secret server\")",
                       f"upgrade.target_version (or the nodes' own) at least {h.sso.version}, the Setup media of that "
                       "release on the nodes, then run the gate again. Source: " + VERSION_SOURCE)
    return None


def left_behind(s: Snapshot, plan: Plan) -> list[str]:
    """The SSO servers (the inventory's BizTalk servers) that stay older than the master secret server's
    target after the change: for the plan, which says so (they must be upgraded after it)."""
    target = mss_target(plan)
    out = []
    for h in s.biztalk_servers:
        v = h.sso.version if h.reachable and h.sso and h.sso.installed else None
        if target and v and version_tuple(v) < version_tuple(target):
            out.append(f"{h.name} (SSO {v})")
    return out


def job_healthy(s: Snapshot, job: str, expected_running: Iterable[str] = ()) -> Finding | None:
    """Each BizTalk job as KB 952555 expects it before the change: its last run succeeded (all but the
    continuously running ManageRefCountLog), MessageBox_Message_Cleanup not enabled. A Backup BizTalk Server
    job that already fails would otherwise be found in phase 2, after BizTalk is silenced."""
    j = s.sql.jobs.get(job)
    if j is None or not j.exists:
        return None  # job_idle names a missing job
    wrong = sqlagent.job_health(j, expected_running)
    if wrong is None:
        return None
    fix = (f"disable it (EXEC msdb.dbo.sp_update_job @job_name = N'{job}', @enabled = 0): it is not meant to run "
           "on its own" if job.startswith(sqlagent.CLEANUP_PREFIX) else
           "the cause fixed and a successful run (SQL Server Agent, the job's View History names the step), then "
           "the gate run again")
    return Finding("job_healthy", job, wrong, f"{fix}. Source: {sqlagent.KB_952555}")


MSDTC_SOURCE = ("Learn, \"Troubleshooting Problems with MSDTC\" (SSO among the components \"commonly affected when "
                "MSDTC transaction support is not configured correctly\"; \"Ensure that MSDTC is assigned a unique CID "
                "value\": check the entries under HKEY_CLASSES_ROOT\\CID on both computers); biztalknotes, \"Moving "
                "the ENTSSO service to a new cluster\" (2013): make the nodes' MSDTC CIDs unique first")


def msdtc_ready(s: Snapshot, node: str, plan: Plan) -> Finding | None:
    """MSDTC on the node allows network transactions (Network DTC Access, transactions, inbound and outbound)
    and has its own contact identifier, not another node's (a cloned image): the clustered ENTSSO runs on
    each node in turn in phases 5 and 6."""
    h = s.hosts[node]
    if f := reach(h, "msdtc_ready"):
        return f
    m = h.msdtc
    if m is None:
        return None  # not read (an estate whose Get-HostFacts predates it)
    if m.security is None:
        return Finding("msdtc_ready", node, f"MSDTC's settings unreadable ({m.error or 'no Security key'})",
                       "HKLM\\SOFTWARE\\Microsoft\\MSDTC\\Security readable by the run's WinRM account")
    off = m.not_set()
    if off:
        return Finding("msdtc_ready", node, "MSDTC's " + ", ".join(f"{n} {m.security.get(n)}" for n in off)
                       + " (HKLM\\SOFTWARE\\Microsoft\\MSDTC\\Security): network DTC transactions are not allowed",
                       "Network DTC Access with Allow Inbound and Allow Outbound (Component Services, Local DTC, "
                       "Properties, Security; or Set-DtcNetworkSetting -DtcName Local -InboundTransactionsEnabled "
                       "$true -OutboundTransactionsEnabled $true), then run the gate again. Source: " + MSDTC_SOURCE)
    if m.cid is None:
        return Finding("msdtc_ready", node, "no MSDTC contact identifier under HKEY_CLASSES_ROOT\\CID (none described "
                       "MSDTC)", "MSDTC installed on the node (msdtc -install). Source: " + MSDTC_SOURCE)
    unreachable = msdtc_unreachable(h.raw or {})
    if unreachable:
        return Finding("msdtc_ready", node, f"SQL Server's host not reachable for MSDTC from {node}: {unreachable}",
                       "the firewall between the node and SQL Server open for MSDTC (TCP 135 and the RPC dynamic "
                       "ports; Windows Firewall's \"Distributed Transaction Coordinator\" rules on both), then run the "
                       "gate again. Source: " + MSDTC_SOURCE)
    others = [x.msdtc for x in s.nodes if x.reachable and x.msdtc and x.name in plan.nodes]
    shared = msdtc_shared(m, [o for o in others if o is not None])
    if shared:
        return Finding("msdtc_ready", node, f"MSDTC's CID {{{m.cid}}} (HKEY_CLASSES_ROOT\\CID) is also "
                       f"{', '.join(shared)}'s: the nodes were cloned from one image and MSDTC cannot tell them apart",
                       f"a CID of its own: on {node}, msdtc -uninstall then msdtc -install (a restart may follow), "
                       "outside the change window, then run the gate again. Source: " + MSDTC_SOURCE)
    return None


ALARM_FIX = ("no such event: for 10536 install KB 3062831 (it supersedes KB 3000847) on every node and restore the "
             "master secret again; for 10520/10565/10521 give ENTSSO back the account the secret was restored under; "
             "for 11047 run regasm SSOSQL.dll; then continue the change. Sources: KB 3000847; Learn, "
             "\"Troubleshooting Enterprise Single Sign-On\"; Learn, SSO event 11047")


def entsso_alarm(h: HostFacts, since: datetime, after: str) -> Finding | None:
    """ENTSSO's alarming events on one node (entsso.domain.ssoevents) at or after `since` (the estate's own
    time), `after` saying when that is; None: none, or not read (a BizTalk server is not asked)."""
    if f := reach(h, "no_entsso_alarm"):
        return f
    if h.entsso_events is None:
        return None
    if h.entsso_events_error:
        return Finding("no_entsso_alarm", h.name, f"ENTSSO's events unreadable ({h.entsso_events_error})",
                       "the Application log readable by the run's WinRM account (Event Log Readers)")
    seen = ssoevents.since(h.entsso_events, utc(since))
    if not seen:
        return None
    return Finding("no_entsso_alarm", h.name, f"ENTSSO logged {after}: " + "; ".join(e.describe() for e in seen[:3])
                   + (f" (and {len(seen) - 3} more)" if len(seen) > 3 else ""), ALARM_FIX)


def no_entsso_alarm(s: Snapshot, node: str, plan: Plan) -> Finding | None:
    """No ENTSSO event on the node from a day before the change began that says SSO cannot use the master
    secret (10536, KB 3000847's restore defect), runs under the wrong account (10520/10565/10521), lost SSOSQL
    (11047) or 10783: SSO already failing is not an estate to change. During the change the runbook reads them
    again after each restore (phase 5) and each failover (phase 6) and stops at that step (entsso_alarm)."""
    since = utc(plan.change_started) - timedelta(days=1)
    return entsso_alarm(s.hosts[node], since, f"since {since.isoformat(timespec='seconds')} (a day before this "
                        "change began)")


SECRET_AGE_SOURCE = ("biztalknotes, 2016-11-22, \"ESSO master secret has exceeded one year\": a warning, \"strictly "
                     "enforced\" from BizTalk 2016 on (you will be forced to change the secret)")


def warnings(s: Snapshot) -> list[str]:
    """What the operator must know before the change and the gate does not refuse on (issue 28, items 1 and 8):
    an SSO build in KB 3000847's scope whose fix the suite cannot see, a build the table does not know, and
    ENTSSO's warning that the master secret is older than a year."""
    out = []
    for h in s.nodes:
        if not h.reachable:
            continue
        note = ssobuilds.hotfix_note(h.name, h.sso.version if h.sso else None)
        if note:
            out.append(note)
        aged = ssoevents.secret_age_warning(h.name, h.raw or {})
        if aged is not None:
            out.append(f"{h.name}: ENTSSO warned at {aged.time_utc.isoformat(timespec='seconds')} that the master "
                       f"secret is older than a year (\"{aged.message[:160]}\"): plan to generate a new one after "
                       f"this change, with its backup first. Source: {SECRET_AGE_SOURCE}")
    return out
