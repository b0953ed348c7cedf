"""One run of the suite: its id and directory, the inventory's estate as hosts and a SQL Server, the
logs that count every call, the journal, and the baseline — what ran before the change, which the end
of the change (and a resumed run) must put back exactly."""
from __future__ import annotations

import json
import re
import shlex
import threading
from dataclasses import dataclass, field, replace
from datetime import datetime, UTC
from pathlib import Path
from typing import Any

from entsso.domain import change, msdtc, ssoevents
from entsso.estate.baseline import Baseline as Baseline  # fixtures take it from here
from entsso.estate.checks import clocks as gate_clocks
from entsso.estate.snapshot import Snapshot, gather, on_hosts
from entsso.change.capture import Capture
from entsso.change.journal import Journal, PriorRun, runs_of
from entsso.domain.poll import Poller
from entsso.remote.sql import SqlServer, SqlSettings, StatementLog
from entsso.remote.sqlestate import DatabaseNames, SqlEstate, SqlInstance
from entsso.remote.winrm import CallLog, RetryPolicy, WindowsHost, WinRMSettings


def new_run_id(ticket: str | None, now: datetime | None = None) -> str:
    now = now or datetime.now(UTC)
    label = re.sub(r"[^A-Za-z0-9_.-]", "_", ticket) if ticket else "gate"
    return f"{now:%Y%m%dT%H%M%SZ}-{label}"


@dataclass
class Options:
    apply: bool = False
    change_ticket: str | None = None
    resume: str | None = None
    allow_reboot: bool = False
    allow_sql_failover: bool = False  # issue 26: the MSS inside SQL Server's role, its failovers accepted
    keep_silenced: bool = False
    backout: bool = False  # put the estate back in service from wherever the change stopped
    plan: bool = False  # --plan: read-only; what the change would do, its test and backout plans
    window_ends: datetime | None = None  # --window-ends: no phase starts that cannot finish, with a backout, by then


@dataclass
class Run:
    """The run's context; fixtures and the plugin share it (config.stash)."""

    id: str
    dir: Path
    options: Options
    inventory: Any  # entsso.inventory.Inventory
    hosts: dict[str, WindowsHost]
    sql: SqlEstate  # every SQL instance, with the inventory's database names
    nodes: list[str]
    biztalk_servers: list[str]
    cluster_name: str
    group: str
    resource: str
    primary: str | None
    job_names: list[str]
    journal: Journal  # every run has one from build_run on (reports/<run>/journal.jsonl)
    calls: CallLog = field(default_factory=CallLog)
    statements: StatementLog = field(default_factory=StatementLog)
    started: datetime = field(default_factory=lambda: datetime.now(UTC))
    prior: PriorRun | None = None
    lab: Any = None  # entsso.lab.launcher.LabProcess for --lab
    failed_tests: list[str] = field(default_factory=list)  # node ids of tests that failed so far
    stopped: tuple[str, str] | None = None  # (phase, message) when a phase stopped the run
    poller: Poller = field(default_factory=Poller)  # SQL and short waits
    # WinRM polls: each look costs a host a PowerShell process, but the change must be seen within a second
    poller_slow: Poller = field(default_factory=lambda: Poller(first=1.0, factor=1.5, cap=1.0))
    operator: Any = None  # entsso.change.operator.Operator
    current_phase: str = "gate"
    call_trace: list[dict[str, Any]] = field(default_factory=list)  # every WinRM call with its phase
    phase_listeners: list[Any] = field(default_factory=list)  # called after each phase (the report rewrites)
    phase_logs: dict[str, list[str]] = field(default_factory=dict)  # phase -> its log lines (the report)
    estate_lock: Any = None  # entsso.change.lock.EstateLock while an --apply run holds it
    phase_stats: dict[str, dict[str, Any]] = field(default_factory=dict)  # phase -> seconds, calls, outcome
    interrupted: str | None = None  # the signal (SIGINT, SIGTERM, SIGHUP) that interrupted the run
    reading_at_end: bool = False  # the verdict's last read of the estate: a further Ctrl-C cuts it short
    in_flight: dict[tuple[str, str, str | None], str] = field(default_factory=dict)  # step -> intent time
    change_record: change.ChangeRecord | None = None  # the estate's record as this run last wrote it
    final_snapshot: Snapshot | None = None  # the estate when an unfinished run ended (the report's outage)
    backup_proof: dict[str, Any] | None = None  # phase 2's forced full set in this run (entsso.domain.backup)
    rehearsal: list[Any] | None = None  # this run's rehearsal (entsso.change.rehearsal.Rehearsed), once run
    topology: dict[str, Any] | None = None  # the cluster's topology as the gate read it (issue 26)
    left_out: dict[str, str] = field(default_factory=dict)  # node -> why the backout left it out (leftout.py)
    _history: change.History | None = None
    _snapshot: Snapshot | None = None
    _baseline: Baseline | None = None
    _change_started: datetime | None = None
    _clock_skews: dict[str, float] | None = None
    _lock: threading.RLock = field(default_factory=threading.RLock)
    step_gate: threading.Lock = field(default_factory=threading.Lock)  # phases.step / phases.stop

    # --- Plan (entsso.estate.checks.Plan) -----------------------------------------------------------------
    def target_version(self, node: str) -> str:
        return self.inventory.upgrade_for(node).target_version

    def upgrade_mode(self, node: str) -> str:
        return self.inventory.upgrade_for(node).mode

    def primary_node(self) -> str:
        """The primary: the inventory's, else the node that owned the SSO group when the change began."""
        return self.primary or self.baseline().group_owner or self.nodes[0]

    @property
    def change_label(self) -> str:
        return re.sub(r"[^A-Za-z0-9_.-]", "_", self.options.change_ticket or "no-ticket")

    def secret_backup_file(self) -> str:
        folder = self.inventory.secret_backup.folder.rstrip("\\")
        return f"{folder}\\ENTSSO-{self.change_label}.bak"

    # --- estate.Target ----------------------------------------------------------------------------
    def host_facts_params(self, host: str) -> dict[str, Any]:
        is_node = host in self.nodes
        params: dict[str, Any] = {
            "cluster": {"network_name": self.cluster_name, "group": self.group, "resource": self.resource}
            if is_node else None,
            "services": ["ENTSSO"] + ([] if is_node else ["RuleEngineUpdateService"]),
            "biztalk": True,  # on nodes too: host instances installed there (issue 26)
            "package": None,
            "backup_folder": None,
            "secret_backup_file": None,
        }
        if is_node:
            upgrade = self.inventory.upgrade_for(host)
            params["package"] = {"path": upgrade.package_path} if upgrade.package_path else None
            params["backup_folder"] = self.inventory.secret_backup.folder
            params["secret_backup_file"] = self.secret_backup_file()
            params["change_records_folder"] = self.inventory.secret_backup.folder
            params["entsso_events"] = ssoevents.request()  # judged against the change's start (issue 28)
            params["entsso_warnings"] = ssoevents.warnings_request()  # the secret's age (issue 28, item 8)
            params["dtc_probe"] = msdtc.probe_request(self.inventory.sql.server)  # SQL Server reachable for DTC
        return params

    def change_record_path(self) -> str:
        return change.record_path(self.inventory.secret_backup.folder, self.options.change_ticket or "no-ticket")

    # --- snapshots --------------------------------------------------------------------------------
    def snapshot(self, *, fresh: bool = False) -> Snapshot:
        """The estate now; the first one is kept (the gate asks each host once)."""
        with self._lock:
            if fresh or self._snapshot is None:
                self._snapshot = gather(self)
            return self._snapshot

    def history(self) -> change.History:
        """This change as the estate and this admin box know it (the first snapshot's change records)."""
        with self._lock:
            if self._history is None:
                snap = self.snapshot()
                ticket = self.options.change_ticket
                records = snap.change_records()
                unreadable = [f"{h.name} (no answer)" for h in snap.nodes if not h.reachable]
                unreadable += [p for h in snap.nodes for p in h.change_record_problems]
                local = runs_of(self.dir.parent, ticket, exclude=self.dir) if ticket else []
                self._history = change.find(ticket, records, unreadable, local)
                h = self._history
                self.journal.write("change_found", ticket=ticket, began=h.began, completed=h.completed,
                                   record=h.record.path if h.record else None,
                                   record_on=h.record.kept_on if h.record else None,
                                   phases_finished=sorted(h.finished_phases), runs=list(h.runs),
                                   others_open=[r.describe() for r in h.others_open],
                                   unreadable=list(h.unreadable))
            return self._history

    def baseline(self) -> Baseline:
        """The change's baseline: the one its first acting run recorded (on the estate, or in this admin
        box's journal of that run), else the first snapshot of this run."""
        with self._lock:
            if self._baseline is None:
                recorded = self.history().baseline
                if recorded is not None:
                    self._baseline = Baseline.from_dict(recorded)
                else:
                    self._baseline = Baseline.from_snapshot(self.snapshot())
                    self.journal.write("baseline", baseline=self._baseline.to_dict())
                (self.dir / "baseline.json").write_text(json.dumps(self._baseline.to_dict(), indent=2))
            return self._baseline

    @property
    def change_started(self) -> datetime:
        """When this change began (backups must be newer). Found once, journalled with its source: the
        change record (on the estate, or this admin box's journal of the run that wrote it); else, for a
        read-only run, the write time of this change's master secret backup (the change's first durable
        artefact, when the preparation was done by hand); else now (the first snapshot)."""
        with self._lock:
            if self._change_started is None:
                at, source = self._find_change_start()
                self._change_started = at if at.tzinfo else at.replace(tzinfo=UTC)
                self.journal.write("change_started", change_started=self._change_started.isoformat(),
                                   source=source)
            return self._change_started

    @property
    def clock_skews(self) -> dict[str, float]:
        """Each host's clock minus SQL Server's (s), measured once from the first snapshot and journalled: a node's
        file times are judged on SQL Server's clock with these same values all run long (checks.clocks)."""
        with self._lock:
            if self._clock_skews is None:
                self._clock_skews = gate_clocks.skews(self.snapshot())
                self.journal.write("clock_skews", skews=self._clock_skews)
            return self._clock_skews

    def _find_change_start(self) -> tuple[datetime, str]:
        h = self.history()
        if h.change_started:
            where = f"{h.record.path} on {h.record.kept_on}" if h.record else "this admin box's journal"
            return datetime.fromisoformat(h.change_started), f"the change record of {h.ticket} ({where})"
        ticket = self.options.change_ticket
        snap = self.snapshot()
        if not self.options.apply and ticket:
            view = snap.cluster_view()
            group = view.group if view else None
            primary = self.primary or (group.owner_node if group else None)
            host = snap.hosts.get(primary or "")
            b = host.secret_backup if host else None
            if b is not None and b.exists and b.last_write_utc is not None:  # on SQL Server's clock
                return (gate_clocks.on_sql_clock(b.last_write_utc, primary or "", self.clock_skews),
                        f"the write time of {b.path}")
        return snap.taken_at, "the first observation of this run"

    def resume_command(self) -> str:
        """What the operator types to continue this change once the cause is fixed: the change's own
        command again (the change, not the run, is the unit: any later run of the ticket continues it)."""
        if self.lab is not None:
            return ("pytest --inventory=<a lab started by hand> --apply --change-ticket "
                    f"{shlex.quote(self.options.change_ticket or '')}"
                    "  (a --lab run's estate ends with the run: continue against a lab started with "
                    "python -m entsso.lab serve)")
        return change_command(getattr(self.inventory, "path", None), self.options.change_ticket,
                              backout=self.options.backout)

    def backout_command(self) -> str:
        """What backs this change out instead of continuing it."""
        if self.lab is not None:
            return (f"pytest --inventory=<a lab started by hand> --backout --change-ticket "
                    f"{shlex.quote(self.options.change_ticket or '')}")
        return change_command(getattr(self.inventory, "path", None), self.options.change_ticket, backout=True)

    def _inventory_arg(self) -> str:
        return "<a lab started by hand>" if self.lab is not None else shlex.quote(
            str(getattr(self.inventory, "path", None) or "<the inventory>"))

    def rehearsal_command(self) -> str:
        """What rehearses the change again once a refusal's cause is fixed (changes nothing)."""
        return f"pytest --inventory={self._inventory_arg()} tests_pre -m rehearsal"

    def gate_command(self) -> str:
        """The gate and the rehearsal again, as typed (changes nothing)."""
        return f"pytest --inventory={self._inventory_arg()} tests_pre"

    def inventory_command(self, ticket: str) -> str:
        """The command that continues change `ticket` on this estate."""
        if self.lab is not None:
            return f"pytest --inventory=<a lab started by hand> --apply --change-ticket {shlex.quote(ticket)}"
        return change_command(getattr(self.inventory, "path", None), ticket)

    def done_steps(self) -> frozenset[tuple[str, str, str | None]]:
        """Steps this change's earlier runs on this admin box finished (those that cannot be read back)."""
        return self.history().done_steps if self.options.change_ticket else frozenset()

    def close_hosts(self) -> None:
        """Delete the shells kept on every host, all hosts at once (each is a request to that host)."""
        on_hosts(self.hosts, lambda name: self.hosts[name].close())

    def close(self) -> None:
        self.close_hosts()
        self.sql.close()
        self.journal.close()


def change_command(inventory: Any, ticket: str | None, *, backout: bool = False) -> str:
    """The command that starts, continues or resumes the change `ticket` (the same one every time), or
    backs it out."""
    inv = shlex.quote(str(inventory)) if inventory else "<the inventory>"
    action = "--backout" if backout else "--apply"
    return f"pytest --inventory={inv} {action} --change-ticket {shlex.quote(ticket or '<ticket>')}"


def sql_estate(inventory: Any, main: SqlSettings, statements: StatementLog) -> SqlEstate:
    """Every SQL instance the inventory names (sql.server first), with its database names."""
    s, lab = inventory.sql, getattr(inventory, "lab", None)
    names = DatabaseNames(ssodb=s.databases.ssodb, management=s.databases.management, msdb=s.databases.msdb)
    password = inventory.secrets.sql_password
    placed = {d.lower() for o in s.instances for d in o.databases}
    main_dbs = [d for d in (names.ssodb, names.management) if d.lower() not in placed]
    first = SqlServer(main, password, statements)
    instances = [SqlInstance(first.name, first, names, main_dbs)]
    jobs: dict[str, str] = {}
    for i, o in enumerate(s.instances):
        endpoint = lab.instances[i] if lab else None
        settings = replace(main, server=o.server, instance=o.instance, port=o.port, host_name_in_certificate=None,
                           server_spn=None, lab_address=endpoint.sql_address if endpoint else None,
                           lab_port=endpoint.sql_port if endpoint else None)
        server = SqlServer(settings, password, statements)
        instances.append(SqlInstance(server.name, server, names, o.databases))
        jobs.update({j.lower(): server.name for j in o.jobs})
    return SqlEstate(names, instances, jobs)


def build_run(run_id: str, run_dir: Path, options: Options, inventory: Any, prior: PriorRun | None = None) -> Run:
    """The Run for an inventory (entsso.inventory.Inventory): hosts, SQL Server, plan."""
    calls, statements = CallLog(), StatementLog()
    capture = Capture(run_dir / "capture")  # every answer kept as test data (entsso.change.capture)
    calls.listeners.append(capture)
    statements.listeners.append(capture.statement)
    capture.inventory(inventory)
    w = inventory.winrm
    settings = WinRMSettings(transport=w.transport, https=w.https, port=w.port,
                             cert_validation=w.server_cert_validation == "validate",
                             ca_trust_path=w.ca_trust_path, connect_timeout=w.connect_timeout,
                             read_timeout=w.read_timeout, operation_timeout=w.operation_timeout,
                             call_timeout=w.call_timeout, proxy=w.proxy, retry=RetryPolicy(window=w.retry_window))
    password = inventory.secrets.winrm_password
    hosts = {h.name: WindowsHost(h.name, h.address or h.name, w.username, password, settings, calls)
             for h in inventory.hosts()}
    s = inventory.sql
    lab = getattr(inventory, "lab", None)
    sql_settings = SqlSettings(server=s.server, instance=s.instance, port=s.port, driver=s.driver,
                               encrypt=s.encrypt, trust_server_certificate=s.trust_server_certificate,
                               ca_file=s.ca_file, auth=s.auth, username=s.username,
                               host_name_in_certificate=s.host_name_in_certificate, server_spn=s.server_spn,
                               lab_address=lab.sql_address if lab else None, lab_port=lab.sql_port if lab else None,
                               retry_window=w.retry_window)  # one window for a lost answer, WinRM's or SQL's
    sql = sql_estate(inventory, sql_settings, statements)
    c = inventory.cluster
    journal = Journal(run_dir / "journal.jsonl", run_id)
    # each repeat of a call after a transient error (entsso.remote.retry) is in the journal
    calls.retry_listeners.append(lambda r: journal.write(
        "retry", host=r.host, operation=r.operation, attempt=r.attempt, error_kind=r.error_kind, error=r.error,
        wait_sec=round(r.wait, 1), since_first_sec=round(r.since_first, 1)))
    # each repeat of a statement safe to repeat whose connection broke (a SQL Server failover)
    statements.retry_listeners.append(lambda server, what, attempt, error, wait: journal.write(
        "sql_retry", server=server, statement=what, attempt=attempt, error=error, wait_sec=round(wait, 2)))
    return Run(id=run_id, dir=run_dir, options=options, inventory=inventory, hosts=hosts, sql=sql,
               nodes=[n.name for n in c.nodes], biztalk_servers=[b.name for b in inventory.biztalk_servers],
               cluster_name=c.network_name, group=c.group, resource=c.resource, primary=c.primary,
               job_names=list(inventory.sql.jobs), journal=journal,
               calls=calls, statements=statements, prior=prior)
