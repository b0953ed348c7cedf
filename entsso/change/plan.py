"""`--plan`: what the change would do, read from the live estate and changing nothing — the
implementation plan (every operation, phase by phase and host by host, as current state → target, and
the ones that would find the estate already so), the test plan (the checks that will prove it), the
backout plan (what `--backout` would do from a stop in each phase) and the longest each phase may take
(the inventory's timeouts: entsso.change.window). Written as plan.md and plan.html into the run directory.

The operations are named exactly as entsso.change.runbook journals them; selftest/e2e/test_plan.py compares a
plan with the journal of the change that follows it, so the two cannot drift apart unseen.
"""
from __future__ import annotations

import html
from dataclasses import dataclass, field

from entsso.domain import change, sso
from entsso.change import window
from entsso.domain.biztalk import RULE_ENGINE
from entsso.estate import checks
from entsso.estate.snapshot import Snapshot
from entsso.change.run import Baseline, Run
from entsso.domain.sso import ENTSSO
from entsso.domain.names import same_name
from entsso.change import stepnames as S, topology

TITLES = change.NUMBERED_TITLES


@dataclass(frozen=True)
class Operation:
    phase: str
    step: str  # as the journal names it
    host: str | None  # None: SQL Server
    change: str  # "current → target"
    already: bool = False  # the estate is already so: the step reads, finds it so, changes nothing
    job: str | None = None

    @property
    def key(self) -> tuple[str, str, str | None, str | None]:
        return (self.phase, self.step, self.host, self.job)


@dataclass
class Plan:
    ticket: str | None
    operations: list[Operation] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # whole steps that would not run, and why
    tests: dict[str, list[str]] = field(default_factory=dict)  # marker -> test ids
    backout: dict[str, list[str]] = field(default_factory=dict)  # stop in phase -> what --backout does
    estimates: dict[str, float] = field(default_factory=dict)
    checklist: list[str] = field(default_factory=list)  # what the operator does before phase 1
    left_behind: list[str] = field(default_factory=list)  # SSO servers older than the MSS's target afterwards

    def add(self, phase: str, step: str, host: str | None, change: str, *, already: bool = False,
            job: str | None = None) -> None:
        self.operations.append(Operation(phase, step, host, change, already, job))


def _state(s: Snapshot, host: str, service: str) -> str:
    h = s.hosts.get(host)
    return (h.service(service).status or "not installed") if h and h.reachable else "unknown (no answer)"


def build(run: Run, s: Snapshot, tests: dict[str, list[str]] | None = None) -> Plan:
    b: Baseline = run.baseline()
    p = Plan(run.options.change_ticket, tests=tests or {}, estimates=window.estimates(run))
    primary = run.primary_node()
    others = [n for n in run.nodes if n != primary]
    rec = run.change_record_path()

    # 1. silence
    p.add("silence", S.RECORD_CHANGE, primary, f"{rec} written (the baseline)")
    topology.plan_silence(p, run, b)  # the cluster's host instances (issue 26)
    for server in run.biztalk_servers:
        h = s.hosts[server]
        now = {i.host_name: i.state for i in h.host_instances if i.in_process}
        names = list(b.host_instances.get(server, {}))
        p.add("silence", S.STOP_HOST_INSTANCES, server,
              ", ".join(f"BTSSvc${n} {now.get(n)} → Stopped" for n in names) or "none",
              already=all(now.get(n) == "Stopped" for n in names))
        p.add("silence", S.STOP_RULE_ENGINE_AND_ENTSSO, server,
              f"{RULE_ENGINE} {_state(s, server, RULE_ENGINE)} → Stopped, "
              f"{ENTSSO} {_state(s, server, ENTSSO)} → Stopped",
              already=all(_state(s, server, x) == "Stopped" for x in (RULE_ENGINE, ENTSSO)))
    for job in run.job_names:
        j = s.sql.jobs.get(job)
        p.add("silence", S.DISABLE_JOB, None, f"{'enabled' if j and j.enabled else 'disabled'} → disabled",
              already=bool(j and not j.enabled), job=job)
    running = [n for n in run.job_names if (j := s.sql.jobs.get(n)) is not None and j.running]
    p.add("silence", S.STOP_RUNNING_JOBS, None,
          ("sp_stop_job: " + ", ".join(running) + " → idle") if running else "every job idle already (checked)",
          already=not running)
    p.add("silence", S.record_phase_done(1), primary, "the change record: phase 1 done")

    # 2. backup
    path = run.secret_backup_file()
    p.add("backup", S.BACK_UP_SECRET, primary, f"ssoconfig -backupSecret → {path} on {primary} (new file)")
    p.add("backup", S.COPY_SECRET_OFF_NODE, primary, f"{path} → this admin box (mode 0600)")
    p.add("backup", S.READ_BACK_SECRET_BACKUP, primary, f"{path} read back: SSO's password reminder from the file "
          "and its SHA-256 on the node, against the copy (reads only)")
    p.add("backup", S.FORCE_FULL_BACKUP, None, "sp_ForceFullBackup, then the job run to completion",
          job=run.inventory.sql.backup_job)
    p.add("backup", S.record_phase_done(2), primary, "the change record: phase 2 done")

    # 3. uncluster
    ss = s.sql.secret_server
    if not same_name(ss, primary):
        p.add("uncluster", S.TOOLS_AT_CLUSTER_NAME, primary,
              f"SSO tools {_tools(s, primary)} → {run.cluster_name}",
              already=same_name(_tools(s, primary), run.cluster_name))
    p.add("uncluster", S.move_secret_server_to(primary), primary, f"SSODB secret server {ss} → {primary}")
    view = s.cluster_view()
    res = view.resource.state if view and view.resource else "unknown"
    p.add("uncluster", S.TAKE_CLUSTER_RESOURCE_OFFLINE, primary, f"{run.resource} {res} → Offline")
    p.add("uncluster", S.START_ENTSSO_ON_PRIMARY, primary, f"{ENTSSO} (SCM) → Running")
    p.add("uncluster", S.TOOLS_AT_ITSELF, primary, f"SSO tools → {primary}")
    for n in others:
        p.add("uncluster", S.tools_at(primary), n, f"SSO tools {_tools(s, n)} → {primary}")
        p.add("uncluster", S.START_ENTSSO, n, f"{ENTSSO} (SCM) → Running")
    p.add("uncluster", S.record_phase_done(3), primary, "the change record: phase 3 done")

    # 4. upgrade, the primary first
    for n in [primary, *others]:
        cfg = run.inventory.upgrade_for(n)
        h = s.hosts[n]
        v = h.sso.version if h.reachable and h.sso else None
        if v is not None and sso.version_tuple(v) >= sso.version_tuple(cfg.target_version):
            p.skipped.append(f"{n}: SSO {v} is already at (or past) {cfg.target_version}: not upgraded")
        elif cfg.mode == "manual":
            p.add("upgrade", S.WAIT_FOR_OPERATOR, n,
                  f"{n} SSO {v} → {cfg.target_version}, manual (the operator runs ESSO Setup; the suite waits)")
        else:
            p.add("upgrade", S.INSTALL_PACKAGE, n,
                  f"{n} SSO {v} → {cfg.target_version}, package {cfg.package_path}")
        p.add("upgrade", S.START_ENTSSO, n, f"{ENTSSO} (SCM) → Running")
    p.add("upgrade", S.record_phase_done(4), primary, "the change record: phase 4 done")

    # 5. recluster
    p.add("recluster", S.move_secret_server_back_to(run.cluster_name), primary,
          f"SSODB secret server {primary} → {run.cluster_name}")
    for n in run.nodes:  # the resource is offline after phase 3: no node runs ENTSSO under the cluster
        p.add("recluster", S.STOP_SCM_ENTSSO, n, f"{ENTSSO} (SCM) Running → Stopped")
    for n in [*others, primary]:
        p.add("recluster", S.move_group_to(n), primary, f"group {run.group} → owned by {n}")
        topology.plan_after_move(p, run, "recluster", n)
        p.add("recluster", S.TAKE_RESOURCE_OFFLINE, n, f"{run.resource} → Offline")
        p.add("recluster", S.BRING_RESOURCE_ONLINE, n, f"{run.resource} → Online on {n}")
        if n != primary:
            p.add("recluster", S.PUT_BACKUP_ON_NODE, n, f"{path} from {primary} → {n}")
        p.add("recluster", S.RESTORE_SECRET, n, f"ssoconfig -restoreSecret {path} on {n}")
    for n in run.nodes:
        p.add("recluster", S.tools_at(run.cluster_name), n, f"SSO tools → {run.cluster_name}")
    p.add("recluster", S.record_phase_done(5), primary, "the change record: phase 5 done")

    # 6. fail over, ending where the group was before the change
    start = b.group_owner or primary
    p.add("failover", S.LIST_HANDLERS, None,
          "the group's adapter handlers and their SSO configuration ids, read over ODBC")
    for n in [x for x in run.nodes if x != start] + [start]:
        p.add("failover", S.move_group_to(n), n, f"group {run.group} → owned by {n}")
        topology.plan_after_move(p, run, "failover", n)
        p.add("failover", S.READ_HANDLERS, n,
              f"each adapter handler's properties read through the SSO service on {n} (needs the master "
              "secret there)")
    p.add("failover", S.record_phase_done(6), primary, "the change record: phase 6 done")

    # 7. BizTalk back as the baseline
    if not run.options.keep_silenced:
        topology.plan_resume(p, run, b)
        for server in run.biztalk_servers:
            svcs = [x for x, st in ((ENTSSO, b.entsso.get(server)), (RULE_ENGINE, b.rule_engine.get(server)))
                    if st == "Running"]
            p.add("resume", S.START_SERVICES_AS_BEFORE, server,
                  ", ".join(f"{x} Stopped → Running" for x in svcs) or "nothing ran before the change")
            ran = [n for n, st in b.host_instances.get(server, {}).items() if st == "Running"]
            p.add("resume", S.START_HOST_INSTANCES, server,
                  ", ".join(f"BTSSvc${n} → Running" for n in ran) or "none ran before the change")
        for job, enabled in b.jobs_enabled.items():
            if enabled:
                p.add("resume", S.REENABLE_JOB, None, "disabled → enabled", job=job)
            else:
                p.skipped.append(f"job {job}: disabled before the change, stays disabled")
        p.add("resume", S.mark_change("completed"), primary, "the change record: completed")
    else:
        p.skipped.append("phase 7: --keep-silenced leaves BizTalk silenced")

    p.backout = backout_plan(run, b)
    p.checklist = topology.plan_notes(run) + operator_checklist(run) + checks.warnings(s)  # warnings: settle first
    p.left_behind = checks.left_behind(s, run)
    return p


LEFT_BEHIND = ("The master secret server goes to SSO {target}; these SSO servers stay older. \"It is not necessary to "
               "update the other SSO servers\" (Learn, \"Upgrading from a Previous Version of SSO\"), but the current "
               "guide asks \"Upgrade all the servers in a BizTalk group to the same release\" (Learn, \"Upgrade to "
               "BizTalk Server 2020\"): upgrade them after this change, one at a time.")


def operator_checklist(run: Run) -> list[str]:
    """What the operator does before phase 1 that the suite cannot check: the monitoring tools that would
    restart services or artifacts behind the change's back (issue 28, item 7)."""
    nodes, servers = ", ".join(run.nodes), ", ".join(run.biztalk_servers)
    return [f"Put SCOM (the BizTalk Server management pack) in maintenance mode for {nodes}, {servers} and the "
            "BizTalk group for the whole window: while SSO is down it reports ports and locations wrongly (BizTalk "
            "docs, \"Known Issues\" of the management pack), and its recovery tasks start services.",
            "Pause BizTalk360's monitoring and auto-healing (or whatever else monitors the estate) for the window: "
            "auto-healing brings host instances, ports and locations back to their expected state on its own "
            "(BizTalk360 blog, \"Automating BizTalk administration tasks: auto healing\"), undoing phase 1.",
            f"Make sure no tool starts the local ENTSSO service on {nodes}: a local ENTSSO started outside the cluster "
            "leaves the master secret server's RPC endpoint unregistered after a failover (0xC0002A0F / RPC "
            "0x800706D9; Microsoft APAC BizTalk blog, 2013)."]


def _tools(s: Snapshot, host: str) -> str | None:
    h = s.hosts.get(host)
    return h.sso.tools_server if h and h.reachable and h.sso else None


def backout_plan(run: Run, b: Baseline) -> dict[str, list[str]]:
    """What `--backout` does after a stop in each phase (entsso.change.runbook.back_out)."""
    back = [f"move the SSO group back to {b.group_owner or run.primary_node()} (its owner before the change)"]
    started = [f"{n} on {srv}" for srv, inst in b.host_instances.items() for n, st in inst.items() if st == "Running"]
    back.append("start what ran before the change: " + (", ".join(started) or "no host instance")
                + "; ENTSSO and Rule Engine Update where they ran; re-enable "
                + f"{sum(1 for e in b.jobs_enabled.values() if e)} job(s) that were enabled")
    recluster = [f"move the master secret server back to {run.cluster_name}",
                 "stop ENTSSO started through the SCM on the nodes",
                 "on each node in turn (the primary last): own the group, cycle the ENTSSO resource, restore the "
                 "master secret from this change's backup", f"point every node's SSO tools at {run.cluster_name}"]
    out = {}
    for ph in change.PHASES[:-1]:
        steps = (recluster if change.PHASES.index(ph) >= change.PHASES.index("uncluster") else []) + back
        out[ph] = steps + ["verify: SSODB names the cluster, the resource Online, the secret on every node, BizTalk "
                           "as before; upgraded nodes stay upgraded"]
    return out


def to_markdown(p: Plan, run: Run) -> str:
    lines = [f"# Plan for change {p.ticket or '(no ticket)'} on {run.inventory.environment}", "",
             f"Read from the live estate at {run.snapshot().taken_at.isoformat(timespec='seconds')}; nothing was "
             "changed. Durations are the longest each phase may take (the inventory's timeouts).", "",
             "## Before phase 1: what you do", ""] + [f"- [ ] {x}" for x in p.checklist] + [
             "", "## Implementation plan", ""]
    for ph, title in TITLES.items():
        ops = [o for o in p.operations if o.phase == ph]
        if not ops:
            continue
        lines.append(f"### {title} (at most {p.estimates.get(ph, 0) / 60:.0f} min)")
        for o in ops:
            where = o.host or "SQL Server"
            what = o.step + (f" ({o.job})" if o.job else "")
            lines.append(f"- {where}: {what}: {o.change}" + (" — already so, no change" if o.already else ""))
        lines.append("")
    if p.skipped:
        lines += ["## Skipped because the estate is already so", ""] + [f"- {x}" for x in p.skipped] + [""]
    if p.left_behind:
        lines += ["## SSO servers this change leaves behind", "", LEFT_BEHIND.format(
            target=checks.mss_target(run)), ""] + [f"- {x}" for x in p.left_behind] + [""]
    lines += ["## Test plan", ""]
    for marker, ids in p.tests.items():
        lines.append(f"- {marker}: {len(ids)} checks — " + ", ".join(ids))
    lines += ["", "## Backout plan (`--backout --change-ticket " + (p.ticket or "<ticket>") + "`)", ""]
    for ph, steps in p.backout.items():
        lines.append(f"- after a stop in {TITLES[ph]}: " + "; ".join(steps))
    return "\n".join(lines) + "\n"


def to_html(p: Plan, run: Run) -> str:
    e = html.escape
    body = [f"<h1>Plan for change {e(p.ticket or '(no ticket)')}</h1>",
            f"<p>Read from the live estate ({e(run.inventory.environment)}) at "
            f"{e(run.snapshot().taken_at.isoformat(timespec='seconds'))}; nothing was changed. Durations are the "
            "longest each phase may take (the inventory's timeouts).</p><h2>Before phase 1: what you do</h2><ul>"
            + "".join(f"<li>&#9744; {e(x)}</li>" for x in p.checklist) + "</ul><h2>Implementation plan</h2>"]
    for ph, title in TITLES.items():
        ops = [o for o in p.operations if o.phase == ph]
        if not ops:
            continue
        rows = "".join(f"<tr class='{'already' if o.already else 'change'}'><td>{e(o.host or 'SQL Server')}</td>"
                       f"<td>{e(o.step + (f' ({o.job})' if o.job else ''))}</td><td>{e(o.change)}</td>"
                       f"<td>{'already so' if o.already else 'changes'}</td></tr>" for o in ops)
        body.append(f"<h3>{e(title)} <small>(at most {p.estimates.get(ph, 0) / 60:.0f} min)</small></h3>"
                    f"<table class='entsso-plan'><tr><th>Host</th><th>Operation</th><th>Current → target</th>"
                    f"<th></th></tr>{rows}</table>")
    if p.skipped:
        body.append("<h2>Skipped because the estate is already so</h2><ul>"
                    + "".join(f"<li>{e(x)}</li>" for x in p.skipped) + "</ul>")
    if p.left_behind:
        body.append("<h2>SSO servers this change leaves behind</h2><p>"
                    + e(LEFT_BEHIND.format(target=checks.mss_target(run))) + "</p><ul>"
                    + "".join(f"<li>{e(x)}</li>" for x in p.left_behind) + "</ul>")
    body.append("<h2>Test plan</h2><ul>" + "".join(
        f"<li><b>{e(m)}</b>: {len(ids)} checks<br><small>{e(', '.join(ids))}</small></li>"
        for m, ids in p.tests.items()) + "</ul>")
    body.append("<h2>Backout plan</h2><ul>" + "".join(
        f"<li>After a stop in {e(TITLES[ph])}: {e('; '.join(steps))}</li>"
        for ph, steps in p.backout.items()) + "</ul>")
    style = ("body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;margin-bottom:1em}"
             "td,th{border:1px solid #999;padding:3px 6px;text-align:left}tr.already td{color:#777}"
             "@media print{h3{break-after:avoid}}")
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>Plan {e(p.ticket or '')}</title>"
            f"<style>{style}</style></head><body>{''.join(body)}</body></html>")


def brief(markdown: str) -> str:
    """The plan for the console: the implementation plan and what is skipped (the test and backout plans
    are in plan.md and plan.html)."""
    head = markdown.split("## Test plan", 1)[0]
    return head.rstrip() + "\n\n(The test plan and the backout plan per phase: plan.md and plan.html.)"
