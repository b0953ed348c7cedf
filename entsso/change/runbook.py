"""The runbook's seven phases and the backout, as sequences of journalled steps (entsso.change.steps). Each
step acts only when the estate is not already so and is verified by re-reading the facts; each phase ends
with the checks of entsso.estate.checks. Fixtures (fixtures/) call these in the runbook's order."""
from __future__ import annotations

import time
from datetime import datetime
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any, NoReturn

from entsso.change.leftout import bring_online_or_leave_out, move_or_leave_out
from entsso.change.record import recorded_backup_proof, refuse_a_lost_record
from entsso.change.run import Baseline, Run
from entsso.change.secretbackup import copy_off_node, expected_reminder, read_back
from entsso.change.steps import console, observe, require, step, stop
from entsso.domain import backup, biztalk, cluster, files, installer, restart, services, sqlagent, sso
from entsso.domain.biztalk import RULE_ENGINE
from entsso.domain.errors import DomainError
from entsso.domain.sso import ENTSSO
from entsso.estate import checks as gate
from entsso.estate.snapshot import HostFacts, Snapshot, on_hosts
from entsso.remote.winrm import RemoteError
from entsso.domain.names import same_name
from entsso.domain.outcome import Outcome
from entsso.change import ownership, stepnames as S, topology


class NodeSilent(DomainError):
    """A node stopped answering WinRM for longer than a reboot while its upgrade was awaited."""


# --- phase 1 ------------------------------------------------------------------------------------------
def silence(run: Run, baseline: Baseline) -> Snapshot:
    timeouts = run.inventory.timeouts

    def server(host: str) -> None:
        instances = [(name, "Stopped") for name in baseline.host_instances.get(host, {})]
        step(run, "silence", S.STOP_HOST_INSTANCES, host,
             lambda: biztalk.ensure_host_instances(run.hosts[host], instances, timeouts.service_stop),
             host_instances=[n for n, _ in instances])
        step(run, "silence", S.STOP_RULE_ENGINE_AND_ENTSSO, host,
             lambda: services.ensure_services(run.hosts[host], [(RULE_ENGINE, "Stopped"), (ENTSSO, "Stopped")],
                                              timeouts.service_stop))

    def disable(job: str) -> Outcome:
        return sqlagent.ensure_job_enabled(run.sql.job_instance(job), job, False)

    def jobs() -> None:
        for job in run.job_names:
            step(run, "silence", S.DISABLE_JOB, None, partial(disable, job), job=job)
        # disabling stops no run: stop what still runs (ManageRefCountLog never ends on its own), but let a
        # Backup BizTalk Server run from its schedule finish; then wait until none runs
        backup_job = run.inventory.sql.backup_job
        step(run, "silence", S.STOP_RUNNING_JOBS, None,
             lambda: sqlagent.ensure_jobs_idle_everywhere(run.sql, run.job_names, timeouts.backup_job, run.poller,
                                                          wait_for=[backup_job]), jobs=list(run.job_names))

    topology.silence_cluster(run, baseline)  # clustered host instances, and those on the nodes (issue 26)
    with ThreadPoolExecutor(max_workers=2) as pool:
        sql_work = pool.submit(jobs)
        on_hosts(run.biztalk_servers, server)
        sql_work.result()
    s = observe(run)
    require(run, "silence",
             [gate.host_instance_stopped(s, srv, name)
              for srv, inst in baseline.host_instances.items() for name in inst]
             + [gate.service_stopped(s, b, RULE_ENGINE) for b in run.biztalk_servers]
             + [gate.service_stopped(s, b, ENTSSO) for b in run.biztalk_servers]
             + [gate.job_disabled(s, j) for j in run.job_names])
    return s


# --- phase 2 ------------------------------------------------------------------------------------------
def back_up_secret(run: Run, s: Snapshot) -> Snapshot:
    mss = run.primary_node()
    path = run.secret_backup_file()
    existing = gate.secret_backed_up(s, mss, run.change_started, run.clock_skews)
    if existing is not None:  # not yet backed up in this change
        reminder = expected_reminder(run)
        step(run, "backup", S.BACK_UP_SECRET, mss,
             lambda: sso.backup_secret(run.hosts[mss], path, run.inventory.secrets.secret_password, reminder),
             file=path)
    copy = step(run, "backup", S.COPY_SECRET_OFF_NODE, mss, lambda: copy_off_node(run, mss, path),
                file=path)
    back = step(run, "backup", S.READ_BACK_SECRET_BACKUP, mss, lambda: read_back(run, mss, path, copy["sha256"]),
                file=path)
    if back["unrestorable"]:
        stop(run, "backup", f"{back['unrestorable']}. Nothing after phase 2 has run: the MSS is still clustered. "
             f"Back the change out ({run.backout_command()}), find why the backup folder keeps bad files, and "
             "start again under a new ticket.")
    console(run, f"  the backup's password reminder, read back from the file by SSO: {back['reminder']!r}"
                 " (keep the backup password with the change: without it the backup cannot be restored)")
    s = observe(run)
    require(run, "backup", [gate.secret_backed_up(s, mss, run.change_started, run.clock_skews)])
    on_node = s.hosts[mss].secret_backup
    if on_node and on_node.size != copy["size"]:
        stop(run, "backup", f"the off-node copy {copy['copy']} has {copy['size']} bytes but {path} on {mss} has "
             f"{on_node.size}; copy it by hand before going on")
    return s


def force_full_backup(run: Run, s: Snapshot) -> Snapshot:
    job = run.inventory.sql.backup_job  # the inventory checks it is one of sql.jobs
    names = run.inventory.sql.databases
    required = [names.ssodb, names.management]  # the change depends on them, listed by the job or not
    # the set an earlier run of this change proved: redone only if it no longer holds
    proven = recorded_backup_proof(run)
    proof = step(run, "backup", backup.FORCE_FULL_STEP, None,
                 lambda: backup.ensure_full_backup(run.sql.management, job, required,
                                                   run.inventory.timeouts.backup_job, run.poller, proven=proven,
                                                   job_sql=run.sql.job_instance(job)), job=job).evidence
    run.backup_proof = proof  # kept in the change record when phase 2 is recorded done
    s = observe(run)
    listed = [d.database for d in s.sql.backups.databases] if s.sql.backups else []
    dbs = required + [d for d in listed if d.lower() not in {r.lower() for r in required}]
    require(run, "backup", [gate.full_backup_complete(s, d, proof) for d in dbs]
             + [gate.force_flag_consumed(s, proof)])
    return s


# --- phase 3: uncluster ---------------------------------------------------------------------------------
def uncluster(run: Run, s: Snapshot) -> Snapshot:
    """Make the primary node the MSS outside the cluster. Order matters (docs/architecture.md): the
    `-updatedb` runs while the clustered ENTSSO still answers (ssomanage needs a running SSO server, and
    ENTSSO cannot start on the primary while SSODB names an offline cluster name as its MSS)."""
    t = run.inventory.timeouts
    primary, others = run.primary_node(), [n for n in run.nodes if n != run.primary_node()]
    host = run.hosts[primary]
    if not same_name(sso.secret_server(run.sql), primary):
        # ssomanage needs a running SSO server: the clustered one, while it still answers
        step(run, "uncluster", S.TOOLS_AT_CLUSTER_NAME, primary,
             lambda: sso.ensure_tools_server(host, run.cluster_name))
    step(run, "uncluster", S.move_secret_server_to(primary), primary,
         lambda: sso.ensure_secret_server(host, run.sql, primary), secret_server=primary)
    step(run, "uncluster", S.TAKE_CLUSTER_RESOURCE_OFFLINE, primary,
         lambda: cluster.ensure_resource_state(host, run.resource, "Offline", t.group_move))
    step(run, "uncluster", S.START_ENTSSO_ON_PRIMARY, primary,
         lambda: services.ensure_services(host, [(ENTSSO, "Running")], t.service_start))
    step(run, "uncluster", S.TOOLS_AT_ITSELF, primary,
         lambda: sso.ensure_tools_server(host, primary))

    def secondary(node: str) -> None:
        step(run, "uncluster", S.tools_at(primary), node,
             lambda: sso.ensure_tools_server(run.hosts[node], primary))
        step(run, "uncluster", S.START_ENTSSO, node,
             lambda: services.ensure_services(run.hosts[node], [(ENTSSO, "Running")], t.service_start))

    on_hosts(others, secondary)
    s = observe(run)
    require(run, "uncluster", gate.unclustered_findings(run, s))
    return s


# --- phase 4: upgrade -----------------------------------------------------------------------------------
def upgrade(run: Run, s: Snapshot) -> Snapshot:
    """Each node on its own, the primary (now the MSS) first; a node is done before the next starts."""
    order = [run.primary_node()] + [n for n in run.nodes if n != run.primary_node()]
    for node in order:
        _upgrade_node(run, node)
    s = observe(run)
    require(run, "upgrade", [gate.version_is(s, n, run.target_version(n)) for n in run.nodes]
             + [gate.service_running(s, n, ENTSSO) for n in run.nodes])
    return s


def _node_version(run: Run, node: str) -> str | None:
    from entsso.estate.snapshot import gather_hosts

    h = gather_hosts(run, [node])[node]
    return h.sso.version if h.reachable and h.sso else None


def _node_facts(run: Run, node: str) -> HostFacts:
    from entsso.estate.snapshot import gather_hosts

    return gather_hosts(run, [node])[node]


def _wait_for_restart(run: Run, node: str, watch: restart.RestartWatch, timeout: float) -> dict[str, Any]:
    """Until the node has gone down and come back (entsso.domain.restart): never at the first answer of a node
    whose restart has not happened yet."""
    def back() -> dict[str, Any] | None:
        h = _node_facts(run, node)
        return watch.evidence(h) if watch.observe(h) else None

    return run.poller_slow.until(back, timeout, what=f"{node} to go down and come back from its restart",
                                 describe=lambda: watch.last)


def _upgrade_node(run: Run, node: str) -> None:
    cfg = run.inventory.upgrade_for(node)
    target, t = cfg.target_version, run.inventory.timeouts
    before = _node_facts(run, node)
    installed = before.sso.version if before.reachable and before.sso else None
    if sso.version_tuple(installed) >= sso.version_tuple(target):
        run.journal.result("upgrade", S.ALREADY_UPGRADED, node, "unchanged", version=target)
    elif cfg.mode == "manual":
        media = cfg.package_path or r"<BizTalk media>\Platform\SSO64\Setup.exe"
        text = (f"\n>>> OPERATOR: on {node}, run ESSO Setup from the BizTalk media "
                f"({media}), choose Upgrade, and finish it.\n"
                f">>> The suite waits up to {t.upgrade:.0f} s for {node} to report Enterprise SSO {target}; "
                "nothing else changes meanwhile.")
        run.journal.write("operator_instruction", phase="upgrade", step="tell the operator to upgrade SSO",
                          host=node, message=text.strip(), target=target)
        run.operator.instruct(node, text, target)

        silent_since: list[float] = []
        waited_from = time.monotonic()
        seen: list[tuple[object, float]] = [(object(), -15.0)]  # the last version told, and when
        reported: list[str | None] = []  # each version the node reported, in order, once per change

        def done() -> str | None:
            v = _node_version(run, node)
            if not reported or reported[-1] != v:
                reported.append(v)
            if v is None:  # Setup may restart the node; longer than a reboot is not that
                silent_since[:1] = silent_since[:1] or [time.monotonic()]
                if time.monotonic() - silent_since[0] > t.reboot:
                    raise NodeSilent(f"{node} has not answered WinRM for {t.reboot:.0f} s while its SSO "
                                       "upgrade was awaited; check the node's console and Setup's log")
            else:
                silent_since.clear()
            if sso.version_tuple(v) >= sso.version_tuple(target):
                run.operator.tell(f"    {node} reports SSO {v}: upgraded")
                return v
            elapsed = time.monotonic() - waited_from
            told, told_at = seen[0]
            if v != told or elapsed - told_at >= 15:  # a change, or every 15 s: not the same line each second
                seen[0] = (v, elapsed)
                run.operator.tell(f"    … {node} reports SSO {v or '(no answer)'}, waiting for {target} "
                                  f"({elapsed:.0f} s of at most {t.upgrade:.0f} s)")
            return None

        step(run, "upgrade", S.WAIT_FOR_OPERATOR, node,
             lambda: {"version": run.poller_slow.until(done, t.upgrade, what=f"{node} to report SSO {target}",
                                                       seen=lambda: sso.versions_seen(reported))})
    else:
        log = cfg.log_path or r"C:\Windows\Temp\entsso-update.log"
        result = step(run, "upgrade", S.INSTALL_PACKAGE, node,
                      lambda: installer.install_update(run.hosts[node], cfg.package_path, cfg.arguments or "", log,
                                                       t.upgrade, since=before.now_utc if before.reachable else None),
                      package=cfg.package_path).evidence
        code = int(result.get("exit_code", -1))
        exit = installer.parse_installer_exit("", "", code)
        action = installer.next_action(exit, run.options.allow_reboot)
        if action is installer.Next.STOP_RESTARTING:
            # the installer itself has begun the restart: nothing to ask of the node, only to wait for it
            stop(run, "upgrade", f"{node}: the update installed and the installer is restarting {node} itself "
                 f"(exit code {code}: {installer.meaning(code)}); no restart was asked of it. Wait until {node} is "
                 "back and answers WinRM, then resume (or resume with --allow-reboot, and the run waits for it).")
        if action is installer.Next.STOP_REBOOT_REQUIRED:
            stop(run, "upgrade", f"{node}: the update installed but needs a reboot (exit code {code}: "
                 f"{installer.meaning(code)}). Reboot {node} yourself and resume, or resume with --allow-reboot.")
        if action in (installer.Next.RESTART, installer.Next.AWAIT_RESTART):
            # the boot time from before the install: a 1641 restart may already be under way
            watch = restart.RestartWatch(node, before.last_boot_utc if before.reachable else None)
            if action is installer.Next.RESTART:
                step(run, "upgrade", S.RESTART_NODE, node, lambda: restart.restart_node(run.hosts[node]))
            step(run, "upgrade", S.WAIT_FOR_RESTART, node,
                 lambda: _wait_for_restart(run, node, watch, t.reboot))
        elif action is installer.Next.FAILED:
            stop(run, "upgrade", installer.installer_failure(node, code, log, result.get("version_after"),
                                                             cfg.package_path))
    step(run, "upgrade", S.START_ENTSSO, node,
         lambda: services.ensure_services(run.hosts[node], [(ENTSSO, "Running")], t.service_start))



# --- phase 5: recluster ---------------------------------------------------------------------------------
def recluster(run: Run, s: Snapshot, phase_name: str = "recluster") -> Snapshot:
    t = run.inventory.timeouts
    primary = run.primary_node()
    host = run.hosts[primary]
    step(run, phase_name, S.move_secret_server_back_to(run.cluster_name), primary,
         lambda: sso.ensure_secret_server(host, run.sql, run.cluster_name), secret_server=run.cluster_name)
    # ENTSSO started through the SCM must stop before the cluster runs it again; the instance the cluster
    # itself runs or is starting (a resumed run may find the resource online on a node) is left to the
    # cluster: an SCM stop of it would trip the resource's restart policy (restarts, then a failover)
    before = observe(run)
    clustered_on = cluster.cluster_runs_entsso_on(before.cluster_view())
    # ENTSSO's events are judged from each node's own clock as this phase (re)started: an event an earlier,
    # stopped attempt left is not this restore's
    started = {n: before.hosts[n].now_utc for n in run.nodes}
    on_hosts([n for n in run.nodes if not same_name(n, clustered_on)],
             lambda n: step(run, phase_name, S.STOP_SCM_ENTSSO, n,
                            lambda: services.ensure_services(run.hosts[n], [(ENTSSO, "Stopped")], t.service_stop)))
    # Microsoft's procedure for a clustered MSS: on each node in turn, own the group, cycle the resource
    # offline→online, restore the master secret there. The primary last, so the group ends on it.
    password = run.inventory.secrets.secret_password
    path = run.secret_backup_file()

    def restore(node: str) -> Outcome:
        return sso.restore_secret(run.hosts[node], path, password)

    for node in [n for n in run.nodes if n != primary] + [primary]:
        if (phase_name, "restore the master secret", node) in run.done_steps():
            continue
        to_node = partial(_move_group, run, primary, node)
        if not move_or_leave_out(run, phase_name, node, primary, t.group_move, to_node):
            continue  # the backout: the resource failed on that node as the group arrived
        step(run, phase_name, S.TAKE_RESOURCE_OFFLINE, node,
             lambda: cluster.ensure_resource_state(host, run.resource, "Offline", t.group_move))
        if not bring_online_or_leave_out(run, phase_name, node, primary, t.group_move,
                                         partial(_move_group, run, primary, primary)):
            continue  # the backout: that node's ENTSSO cannot run the resource; the group goes home to the primary
        if node != primary:
            step(run, phase_name, S.PUT_BACKUP_ON_NODE, node,
                 partial(_copy_backup_to, run, primary, node, path))
        step(run, phase_name, S.RESTORE_SECRET, node, partial(restore, node), file=path)
        # the primary, restored last, held the secret as the MSS through phases 3-4: the group goes back there
        _stop_on_entsso_alarm(run, phase_name, node, started.get(node), "after the master secret was restored on it",
                              safe=primary if node != primary else None)
    on_hosts(run.nodes, lambda n: step(run, phase_name, S.tools_at(run.cluster_name), n,
                                       lambda: sso.ensure_tools_server(run.hosts[n], run.cluster_name)))
    s = observe(run)
    require(run, phase_name, gate.reclustered_findings(run, s))
    return s


def _stop_on_entsso_alarm(run: Run, phase: str, node: str, since: datetime | None, after: str,
                          safe: str | None = None) -> None:
    """Read the node's ENTSSO events (Get-HostFacts) and stop the change at this step on one that says SSO
    cannot use the master secret there (issue 28: KB 3000847's restore defect, a changed account). With
    `safe` (a node whose SSO this change has shown to work), the group is moved back there first: a late
    failure never leaves the group on the one node shown not to work (issue 24)."""
    if since is None:
        return
    f = gate.entsso_alarm(_node_facts(run, node), since, after)
    if f:
        _stop_in_safe_state(run, phase, node, str(f), safe)


def _stop_in_safe_state(run: Run, phase: str, node: str, what: str, safe: str | None) -> NoReturn:
    """Stop the phase on a failure of SSO on `node`, first moving the group to `safe` (when there is one and
    the group is not there), and say where the group is."""
    if safe is None or same_name(safe, node):
        stop(run, phase, f"{what}. The group stays on {node}: no other node's SSO was shown to work in this change "
             f"yet. Check ENTSSO on {node} and the master secret there, then resume.")
    step(run, phase, S.move_group_back_to(safe), safe, partial(_move_group, run, safe, safe))
    stop(run, phase, f"{what}. The group was moved back to {safe}, whose SSO this change has shown to work: "
         f"BizTalk's SSO is served from a node shown to work. Check ENTSSO on {node} and the master secret there "
         "(an SSO that cannot decrypt after a restore: KB 3000847, event 10536), then resume.")


def _move_group(run: Run, via: str, node: str) -> Outcome:
    """Move the SSO group to `node` through `via`; a refused move says why when the cluster shows it (a
    node paused or lost since the gate) and what to do. Nothing moved: the group stays where it was."""
    try:
        topology.before_group_move(run, node)  # journals SQL Server's outage when it moves with the group
        moved = cluster.ensure_group_owner(run.hosts[via], run.group, node, run.inventory.timeouts.group_move)
        topology.after_group_moved(run, run.current_phase, node)  # SQL Server moved with it: wait, re-lock
        return moved
    except RemoteError as exc:
        try:
            why = cluster.why_cannot_own(_node_facts(run, via).cluster, node)
        except Exception:  # noqa: BLE001 - the move's own error is what to report then
            why = None
        if why is None:
            raise
        raise cluster.MoveRefused(f"{why}. (The move was refused: {exc})") from exc


def _copy_backup_to(run: Run, source: str, node: str, path: str) -> dict[str, Any]:
    written = files.copy_file(run.hosts[source], run.hosts[node], path)
    return {"path": written.path, "size": written.size}


# --- phase 6: fail over -----------------------------------------------------------------------------------
def fail_over(run: Run, s: Snapshot) -> dict[str, Any]:
    """Own the group on every node in turn; on each owner read the adapter handlers' properties through
    that node's own SSO service (the clustered ENTSSO, the master secret server then); end on the node that
    owned the group when the change began. The handlers are listed once from BizTalkMgmtDb, from the admin
    box; each read is local to the owner (ISSOConfigStore in run-time mode): no BizTalk on the nodes, no
    second hop (docs/inventory.md).

    The group's current owner is read first, where it is: SSO is proven there before the group leaves it, and
    when another node's SSO then cannot read (it cannot decrypt after the restore, KB 3000847, say), the group
    is moved back to that proven node before the phase stops — never left on the one node shown not to work."""
    start_owner = run.baseline().group_owner or run.primary_node()
    view = s.cluster_view()
    owner_now = next((n for n in run.nodes if view and view.group and same_name(n, view.group.owner_node)), None)
    first = owner_now or start_owner
    seen: dict[str, Any] = {}
    configs = step(run, "failover", S.LIST_HANDLERS, None,
                   lambda: [c.__dict__ for c in biztalk.handler_configs(run.sql)])
    wanted = tuple(biztalk.HandlerConfig(**c) for c in configs)
    proven: list[str] = []

    def read_handlers(node: str) -> list[dict[str, Any]]:
        return [h.__dict__ for h in biztalk.adapter_handlers(run.hosts[node], wanted)]

    def read_on(node: str) -> None:
        handlers = step(run, "failover", S.READ_HANDLERS, node,
                        partial(read_handlers, node))
        seen.setdefault(node, {})["handlers"] = handlers
        unreadable = [h for h in handlers if not h["readable"]]
        if not unreadable:
            # and its event log says nothing against SSO since the phase began (issue 28: event 10536, …)
            _stop_on_entsso_alarm(run, "failover", node, s.hosts[node].now_utc if node in s.hosts else None,
                                  "since the failover phase began, with the group on it",
                                  safe=proven[-1] if proven else None)
            proven.append(node)
            return
        h = unreadable[0]
        what = (f"with the group on {node}, {len(unreadable)} adapter handler(s) could not be read through SSO on "
                f"{node} (e.g. {h['kind']} {h['adapter']}: {h['error_code']} {h['error']})")
        ownership.stop_if_moved(run, "failover", node, what)  # the cluster moved it on its own: named
        if not proven:
            stop(run, "failover", f"{what}. The group stays on {node}: no node's SSO was proven in this phase yet. "
                 f"Check ENTSSO on {node} and the master secret there (restore it from this change's backup), "
                 "then resume.")
        back = proven[-1]
        try:
            step(run, "failover", S.move_group_back_to(back), back, partial(_move_group, run, back, back))
        except BaseException:
            run.journal.write("safe_state_failed", phase="failover", node=back)
            raise
        stop(run, "failover", f"{what}. The group was moved back to {back}, whose SSO read every handler in this "
             f"phase: BizTalk's SSO is served from a node shown to work. Check ENTSSO on {node} and the master "
             f"secret there (an SSO that cannot decrypt after a restore: KB 3000847, event 10536), then resume.")

    seen[first] = {"group": {"name": run.group, "owner_node": first,
                             "state": view.group.state if view and view.group else None}}
    read_on(first)  # where the group is: proven before it leaves
    others = [n for n in run.nodes if n != first]
    for node in others:
        moved = step(run, "failover", S.move_group_to(node), node, partial(_move_group, run, node, node))
        seen.setdefault(node, {})["group"] = moved.evidence
        read_on(node)
    if not same_name(others[-1] if others else first, start_owner):  # end where the change began
        moved = step(run, "failover", S.move_group_to(start_owner), start_owner,
                     partial(_move_group, run, start_owner, start_owner))
        seen.setdefault(start_owner, {})["group"] = moved.evidence
    return {"snapshot": observe(run), "per_node": seen, "start_owner": start_owner,
            "silenced_in_group": bool(run.baseline().clustered_resources)}


# --- phase 7: put BizTalk back ------------------------------------------------------------------------------
def resume_biztalk(run: Run, baseline: Baseline, phase_name: str = "resume") -> Snapshot:
    t = run.inventory.timeouts

    def server(host: str) -> None:
        wanted_services = [(ENTSSO, "Running")] if baseline.entsso.get(host) == "Running" else []
        if baseline.rule_engine.get(host) == "Running":
            wanted_services.append((RULE_ENGINE, "Running"))
        step(run, phase_name, S.START_SERVICES_AS_BEFORE, host,
             lambda: services.ensure_services(run.hosts[host], wanted_services, t.service_start))
        instances = [(n, "Running") for n, st in baseline.host_instances.get(host, {}).items() if st == "Running"]
        step(run, phase_name, S.START_HOST_INSTANCES, host,
             lambda: biztalk.ensure_host_instances(run.hosts[host], instances, t.service_start))

    def enable(job: str) -> Outcome:
        return sqlagent.ensure_job_enabled(run.sql.job_instance(job), job, True)

    def jobs() -> None:
        for job, enabled in baseline.jobs_enabled.items():
            if enabled:
                step(run, phase_name, S.REENABLE_JOB, None, partial(enable, job), job=job)

    topology.restore_cluster(run, baseline, phase_name)  # the group is home: its host instances (issue 26)
    with ThreadPoolExecutor(max_workers=2) as pool:
        sql_work = pool.submit(jobs)
        on_hosts(run.biztalk_servers, server)
        sql_work.result()
    s = observe(run)
    require(run, phase_name, gate.matches_baseline(s, baseline))
    return s


# --- backout: the estate back in service from any stop of the change -----------------------------------
def back_out(run: Run, baseline: Baseline) -> Snapshot:
    """From wherever the change stopped: the MSS clustered on the cluster name with the master secret
    restored on every node (this change's backup), the SSO tools pointed back, the group on the node that
    owned it before, BizTalk exactly as the baseline. Nodes already upgraded stay upgraded (ESSO is not
    downgraded: docs/recovery.md). Every step reads first, so a second backout changes nothing."""
    h = run.history()
    refuse_a_lost_record(run, "back out")
    if not h.began:
        stop(run, "backout", f"no change {run.options.change_ticket} on this estate to back out (no change record "
             "on the nodes and no run of it on this admin box); nothing was changed")
    if h.completed and not h.backed_out:
        stop(run, "backout", f"change {run.options.change_ticket} is complete (phase 7 verified BizTalk as before); "
             "there is nothing to back out, and ESSO is not downgraded")
    s = observe(run)
    if not gate.clustered_as_before(run, s):
        mss = run.primary_node()
        # the secret to restore
        require(run, "backout", [gate.secret_backed_up(s, mss, run.change_started, run.clock_skews)])
        s = recluster(run, s, "backout")
    owner = baseline.group_owner or run.primary_node()
    step(run, "backout", S.move_group_back_to(owner), owner, partial(_move_group, run, owner, owner))
    s = resume_biztalk(run, baseline, "backout")
    s = observe(run)
    require(run, "backout", gate.backed_out_findings(run, s, baseline))
    return s

