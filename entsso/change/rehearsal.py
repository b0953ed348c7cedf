"""The rehearsal: every operation the change will run, run once on the live estate before anything changes,
in a form that changes nothing — so no script, tool, permission or answer meets the estate for the first time
inside the change window, with BizTalk down.

Each state-changing operation is run for real with the estate's *current* state as its target: the real
script runs on the real host (PowerShell parses it, its modules load, its objects marshal, the tools answer)
and takes its own "already so" path. Reads run as the change runs them. What cannot be tried without changing
the estate is listed in UNREHEARSABLE, with why, for the report and summary.json.

All hosts at once, each host's operations in turn (one WinRM call at a time per host); SQL Server alongside.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from functools import partial
from datetime import UTC, datetime
from typing import Any

from entsso.change.lock import EstateLock, EstateLocked
from entsso.change.run import Run
from entsso.change.secretbackup import copy_off_node, read_back
from entsso.domain import backup, biztalk, cluster, files, permissions, services, sqlagent, sso
from entsso.domain.biztalk import RULE_ENGINE
from entsso.domain.errors import DomainError
from entsso.domain.names import same_name
from entsso.domain.outcome import Outcome
from entsso.domain.sso import ENTSSO
from entsso.estate.checks.topology import reading, unclustered_hosts_on_nodes
from entsso.estate.snapshot import Snapshot
from entsso.remote.errors import EstateError
from entsso.remote.fanout import on_hosts

# what the change does that no form of it leaves the estate as it was: named, with why, in the report
UNREHEARSABLE: dict[str, str] = {
    "Install-SsoUpdate": "it installs the update; there is no dry run of the package. The rehearsal reads that "
                         "the package is present and readable and that the installed version is older than the "
                         "target (the gate's package check)",
    "Restore-MasterSecret": "RestoreSecret writes the master secret on the node it runs on; the change restores only "
                            "the backup this change made and proved, in phase 5",
    "Restart-Node": "a restart is an outage of the node; the change restarts a node only when its installer asks "
                    "(--allow-reboot)",
    "sp_start_job": "it starts a Backup BizTalk Server run, a real backup of every BizTalk database",
    "sp_ForceFullBackup": "it sets the force-full flag that the next backup run consumes",
    "sp_stop_job": "it stops a running job (ManageRefCountLog runs continuously); the rehearsal proves the login "
                   "may change the jobs (sp_update_job) and reads their state instead",
}


@dataclass(frozen=True)
class Rehearsed:
    """One operation, run in its rehearsal form: on which host (None: SQL Server), what it proved or why not."""

    operation: str
    host: str | None
    what: str
    ok: bool
    detail: str
    seconds: float
    evidence: Any = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __str__(self) -> str:
        where = self.host or "SQL Server"
        return f"{self.operation} on {where} ({self.what}): {'ok' if self.ok else 'FAILED'} - {self.detail}"


def _attempt(out: list[Rehearsed], operation: str, host: str | None, what: str,
             action: Callable[[], Any], proves: Callable[[Any], str | None] | None = None) -> Any:
    """Run one rehearsal; a failure is recorded, not raised (every operation is tried)."""
    started = time.monotonic()
    try:
        evidence = action()
    except (EstateError, DomainError, EstateLocked) as exc:
        out.append(Rehearsed(operation, host, what, False, str(exc), round(time.monotonic() - started, 3)))
        return None
    except Exception as exc:  # noqa: BLE001 - a bug still fails the rehearsal, named as one
        out.append(Rehearsed(operation, host, what, False, f"unexpected error ({type(exc).__name__}: {exc}); report "
                             "this to the entsso-upgrade maintainers", round(time.monotonic() - started, 3)))
        return None
    seconds = round(time.monotonic() - started, 3)
    changed = isinstance(evidence, Outcome) and evidence.changed
    if isinstance(evidence, Outcome):
        evidence = evidence.evidence
    problem = proves(evidence) if proves else None
    if problem is None and changed:
        problem = "the operation reports that it changed the estate (a rehearsal must find it already so)"
    out.append(Rehearsed(operation, host, what, problem is None, problem or "ran; the estate was already so",
                         seconds, evidence))
    return evidence


def _biztalk_server(run: Run, s: Snapshot, host: str, out: list[Rehearsed]) -> None:
    h = s.hosts[host]
    t = run.inventory.timeouts
    current = [(i.host_name, i.state) for i in h.host_instances if i.in_process and i.state in ("Running", "Stopped")]
    _attempt(out, "Set-ServiceState", host, "host instances to their current states",
             lambda: biztalk.ensure_host_instances(run.hosts[host], current, t.service_stop))
    wanted: list[tuple[str, str]] = []
    for name in (RULE_ENGINE, ENTSSO):
        status = h.service(name).status
        if status in ("Running", "Stopped"):
            wanted.append((name, str(status)))
    _attempt(out, "Set-ServiceState", host, "Rule Engine Update and ENTSSO to their current states",
             lambda: services.ensure_services(run.hosts[host], wanted, t.service_stop))


def _node(run: Run, s: Snapshot, node: str, owner: str | None, out: list[Rehearsed]) -> None:
    h = s.hosts[node]
    host = run.hosts[node]
    t = run.inventory.timeouts
    status = h.service(ENTSSO).status
    if status in ("Running", "Stopped"):
        _attempt(out, "Set-ServiceState", node, f"ENTSSO to its current state ({status})",
                 lambda: services.ensure_services(host, [(ENTSSO, status)], t.service_start))
    tools = h.sso.tools_server if h.sso else None
    if tools:
        _attempt(out, "Set-SsoServer", node, f"the SSO tools to the server they use ({tools})",
                 lambda: sso.ensure_tools_server(host, tools))
    else:
        out.append(Rehearsed("Set-SsoServer", node, "the SSO tools to the server they use", False,
                             "cannot tell which SSO server its tools use (ssomanage -displaydb: "
                             f"{h.sso.displaydb_error if h.sso else 'Enterprise SSO not read'})", 0.0))
    # issue 26: the host instances installed on the node outside the cluster, through its SCM, as phase 1 stops them
    mine = set(unclustered_hosts_on_nodes(s, run).get(node, []))
    local = [(i.host_name, i.state) for i in h.host_instances
             if i.host_name in mine and i.state in ("Running", "Stopped")]
    if local:
        _attempt(out, "Set-ServiceState", node, "the host instances outside the cluster to their current states",
                 lambda: biztalk.ensure_host_instances(host, local, t.service_stop))
    if same_name(node, owner):
        _owner(run, s, node, out)
        r = reading(s, run)  # the group's clustered host instances and IIS, through the cluster, as phase 1 does
        for res in (r.clustered_hosts + r.iis) if r else ():
            if res.state in ("Online", "Offline"):
                _attempt(out, "Set-ClusterResourceState", node, f"cluster resource {res.name} to its current state "
                         f"({res.state})", partial(cluster.ensure_resource_state, host, res.name, res.state,
                                                   t.group_move))


def _owner(run: Run, s: Snapshot, node: str, out: list[Rehearsed]) -> None:
    """What only the group's owner runs: the cluster operations, the MSS's tools, the secret backup, the
    adapter handlers read through its ENTSSO, and the change record's file."""
    host = run.hosts[node]
    t = run.inventory.timeouts
    view = s.cluster_view()
    state = view.resource.state if view and view.resource else None
    if state in ("Online", "Offline"):
        _attempt(out, "Set-ClusterResourceState", node, f"the ENTSSO resource to its current state ({state})",
                 lambda: cluster.ensure_resource_state(host, run.resource, state, t.group_move))
    _attempt(out, "Move-ClusterGroup", node, f"the SSO group to its current owner ({node})",
             lambda: cluster.ensure_group_owner(host, run.group, node, t.group_move))
    _attempt(out, "Update-SsoDatabase", node, "SSODB's secret server to its current value",
             lambda: sso.rehearse_secret_server(host, run.sql))
    configs: tuple[biztalk.HandlerConfig, ...] = ()
    try:
        configs = biztalk.handler_configs(run.sql)
    except (EstateError, DomainError) as exc:
        out.append(Rehearsed("Get-AdapterHandlers", node, "every adapter handler read through this node's ENTSSO",
                             False, f"the handlers could not be listed from BizTalkMgmtDb: {exc}", 0.0))
    if configs:
        _attempt(out, "Get-AdapterHandlers", node,
                 f"{len(configs)} adapter handler(s) read through {node}'s ENTSSO, as phase 6 reads them",
                 lambda: [h.__dict__ for h in biztalk.adapter_handlers(host, configs)], biztalk.unreadable_in)
    folder = run.inventory.secret_backup.folder.rstrip("\\")
    label = run.change_label
    path = f"{folder}\\ENTSSO-{label}-rehearsal-{run.id}.bak"
    reminder = f"entsso-upgrade rehearsal {run.id} ({run.options.change_ticket or 'no ticket'})"
    # the backup file is the rehearsal's own artefact (its evidence, not a change of what the estate runs)
    backed_up = _attempt(out, "Backup-MasterSecret", node, f"a master secret backup to {path}",
                         lambda: sso.backup_secret(host, path, run.inventory.secrets.secret_password,
                                                   reminder).evidence,
                         lambda doc: None if int(doc.get("size") or 0) > 0 else "the backup file is empty")
    if backed_up is not None:
        copied = _attempt(out, "Read-File", node, "the rehearsal backup copied off the node",
                          lambda: copy_off_node(run, node, path))
        _attempt(out, "Read-SecretBackup", node, "the rehearsal backup read back through SSO (its password reminder "
                 "and SHA-256), as phase 2 proves its backup", lambda: read_back(
                     run, node, path, (copied or {}).get("sha256"), reminder), lambda doc: doc["unrestorable"])
    record = f"{folder}\\ENTSSO-{label}.rehearsal.txt"
    data = f"entsso-upgrade rehearsal {run.id} at {datetime.now(UTC).isoformat(timespec='seconds')}\r\n".encode()
    _attempt(out, "Write-File", node, f"a file written in the backup folder ({record})",
             lambda: {"size": files.write_file(host, record, data).size})
    _attempt(out, "Read-File", node, "the same file read back",
             lambda: {"size": len(files.read_file(host, record))},
             lambda doc: None if doc["size"] == len(data) else f"read back {doc['size']} bytes of {len(data)}")



def _sql(run: Run, s: Snapshot, out: list[Rehearsed]) -> None:
    instances: dict[str, tuple[Any, list[str]]] = {}
    for job in run.job_names:
        inst = run.sql.job_instance(job)
        instances.setdefault(inst.name, (inst, []))[1].append(job)
        _attempt(out, "sp_update_job", None, f"job {job!r}: @enabled at its current value",
                 partial(sqlagent.rehearse_job_enabled, inst, job))
    for inst, jobs in instances.values():
        _attempt(out, "IS_SRVROLEMEMBER / IS_ROLEMEMBER", None,
                 f"the login may enable and disable the {len(jobs)} BizTalk job(s) on {inst.name}",
                 partial(permissions.job_control, inst), partial(_job_control_problem, jobs=jobs))
    backup_job = run.inventory.sql.backup_job  # phase 2 judges its own run of it by these rows
    _attempt(out, "msdb.dbo.sysjobhistory", None, f"the step history of {backup_job!r}, read as phase 2 reads its run",
             lambda: {"step_rows": len(sqlagent.run_steps(run.sql.job_instance(backup_job), backup_job, None,
                                                          2**31 - 1))})
    names = run.inventory.sql.databases
    _attempt(out, "admv_BackupDatabases", None, "SSODB and the management database in the backup job's set",
             lambda: backup.databases_in_backup_set(run.sql.management, [names.ssodb, names.management]),
             backup.missing_from_backup_set)
    _attempt(out, "sp_getapplock / sp_releaseapplock", None, "the estate lock taken and released",
             lambda: _lock_round_trip(run))


def _job_control_problem(jc: permissions.JobControl, jobs: list[str]) -> str | None:
    return jc.problem(jobs)


def _lock_round_trip(run: Run) -> dict[str, Any]:
    held = getattr(run, "estate_lock", None)
    if held is not None:  # an --apply run holds it already: that is the proof
        held.verify()
        return {"held_by_this_run": True}
    lock = EstateLock(run.sql.ssodb.settings, run.sql._password, run.cluster_name, run.sql.names.ssodb)
    lock.acquire(run.dir.parent)
    lock.release()
    return {"taken_and_released": lock.resource}


def rehearse(run: Run, s: Snapshot) -> list[Rehearsed]:
    """Every rehearsable operation of the change once, on every host at once and SQL Server alongside."""
    view = s.cluster_view()
    owner = view.group.owner_node if view and view.group else None
    per_host: dict[str, list[Rehearsed]] = {h: [] for h in s.hosts}
    sql_out: list[Rehearsed] = []

    def host_work(name: str) -> None:
        if not s.hosts[name].reachable:
            per_host[name].append(Rehearsed("WinRM", name, "the host answers", False,
                                            f"no answer: {s.hosts[name].error}", 0.0))
            return
        if name in run.biztalk_servers:
            _biztalk_server(run, s, name, per_host[name])
        if name in run.nodes:
            _node(run, s, name, owner, per_host[name])

    with ThreadPoolExecutor(max_workers=1) as pool:
        sql_work = pool.submit(_sql, run, s, sql_out)
        on_hosts(list(s.hosts), host_work)
        sql_work.result()
    return [r for h in s.hosts for r in per_host[h]] + sql_out


def once(run: Run) -> list[Rehearsed]:
    """The run's rehearsal, run the first time it is asked for (the tests and the gate before phase 1 share
    it) on the estate as first observed, and journalled with what cannot be rehearsed."""
    if run.rehearsal is None:
        run.journal.write("rehearsal_started")
        started = time.monotonic()
        done = rehearse(run, run.snapshot())
        run.rehearsal = done
        run.journal.write("rehearsal", seconds=round(time.monotonic() - started, 3),
                          passed=all(r.ok for r in done), operations=[r.to_dict() for r in done],
                          unrehearsable=UNREHEARSABLE)
    return run.rehearsal
