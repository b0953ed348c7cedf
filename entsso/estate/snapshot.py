"""A typed snapshot of the whole estate: every host's facts in ONE Get-HostFacts call, all hosts asked at
once, SQL Server's facts in four statements alongside. Tests assert snapshots; fixtures take new ones
after each phase. A host or SQL Server that does not answer is recorded with its error, not raised."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol
from collections.abc import Iterable

from entsso.domain import backup, biztalk, change, cluster, permissions, restart, sqlagent, sso
from entsso.domain.msdtc import Msdtc, parse_msdtc
from entsso.domain.ssoevents import SsoEvent, parse_events
from entsso.remote import tsql
from entsso.domain.services import Service, parse_services
from entsso.remote import sqlestate
from entsso.remote.sql import SqlError, SqlUnreachable
from entsso.remote.fanout import MAX_HOSTS_AT_ONCE as MAX_HOSTS_AT_ONCE  # re-exported until its importers move
from entsso.remote.fanout import on_hosts
from entsso.remote.sqlestate import SqlEstate
from entsso.remote.winrm import RemoteError, WindowsHost


class Target(Protocol):
    """What a snapshot needs to know of the estate (entsso.change.run.Run provides it from the inventory)."""

    hosts: dict[str, WindowsHost]
    sql: SqlEstate  # (a SqlServer: an estate of one instance)
    nodes: list[str]
    biztalk_servers: list[str]
    job_names: list[str]

    def host_facts_params(self, host: str) -> dict[str, Any]: ...


@dataclass(frozen=True)
class HostFacts:
    name: str
    role: str  # node | biztalk
    reachable: bool
    error: str | None = None
    error_kind: str | None = None
    computer_name: str | None = None
    now_utc: datetime | None = None
    services: dict[str, Service] = field(default_factory=dict)
    sso: sso.SsoServer | None = None
    cluster: cluster.ClusterFacts | None = None
    host_instances: tuple[biztalk.HostInstance, ...] = ()
    package: dict[str, Any] | None = None
    backup_folder: dict[str, Any] | None = None
    secret_backup: backup.SecretBackupFile | None = None
    change_records: tuple[change.ChangeRecord, ...] = ()  # entsso-upgrade's own, from the backup folder
    change_record_problems: tuple[str, ...] = ()  # files of that name that are not change records
    last_boot_utc: datetime | None = None  # Win32_OperatingSystem.LastBootUpTime (entsso.domain.restart)
    pending_restart: tuple[str, ...] = ()  # why Windows owes it a restart (entsso.domain.restart), empty: none
    msdtc: Msdtc | None = None  # MSDTC's registry settings (None: not read)
    entsso_events: tuple[SsoEvent, ...] | None = None  # ENTSSO's alarming events (entsso.domain.ssoevents)
    entsso_events_error: str | None = None  # why they could not be read
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    def service(self, name: str) -> Service:
        return self.services.get(name) or Service(self.name, name, False, None, None)


@dataclass(frozen=True)
class SqlFacts:
    reachable: bool
    error: str | None = None
    error_kind: str | None = None  # the SqlError's kind: unreachable, login failed, permission denied, …
    now_utc: datetime | None = None
    secret_server: str | None = None
    jobs: dict[str, sqlagent.Job] = field(default_factory=dict)
    backups: backup.BackupState | None = None
    agent: str | None = None  # SQL Server Agent's state (Running, Stopped, …); None: unknown or no Agent
    agent_error: str | None = None  # why SQL Server did not say (e.g. no VIEW SERVER STATE)
    missing_grants: list[permissions.Grant] | None = None  # None: not asked (SQL Server not reachable)
    main_instance: str | None = None  # the management database's instance (sql.server)
    agent_instance: str | None = None  # the instance whose SQL Agent `agent` is (only with several instances)
    # the databases the Backup BizTalk Server job's view puts on another instance than the inventory does
    misplaced: list[sqlestate.Misplaced] = field(default_factory=list)
    sso_servers: tuple[str, ...] | None = None  # the SSO servers registered in SSODB; None: not read
    sso_servers_error: str | None = None  # why they could not be read
    group_sso_server: str | None = None  # the BizTalk group's SSO server name (adm_Group.SSOServerName)
    group_sso_server_error: str | None = None
    sso_admin_group: str | None = None  # SSOX_GlobalInfo.gi_SSOAdminGroup
    sso_admin_group_error: str | None = None  # why it could not be read


@dataclass(frozen=True)
class Snapshot:
    taken_at: datetime
    hosts: dict[str, HostFacts]
    sql: SqlFacts

    @property
    def nodes(self) -> list[HostFacts]:
        return [h for h in self.hosts.values() if h.role == "node"]

    @property
    def biztalk_servers(self) -> list[HostFacts]:
        return [h for h in self.hosts.values() if h.role == "biztalk"]

    def cluster_view(self) -> cluster.ClusterFacts | None:
        """The cluster as the first reachable node sees it."""
        return next((h.cluster for h in self.nodes if h.reachable and h.cluster), None)

    def change_records(self) -> list[change.ChangeRecord]:
        return [r for h in self.nodes if h.reachable for r in h.change_records]

    def host_instances(self) -> list[biztalk.HostInstance]:
        return [hi for h in self.biztalk_servers for hi in h.host_instances]



def _parse_time(value: Any) -> datetime | None:
    if not value:
        return None
    if isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def parse_host(name: str, role: str, doc: dict[str, Any]) -> HostFacts:
    records, problems = change.parse_records(name, doc)
    events, events_error = parse_events(name, doc)
    return HostFacts(
        name=name, role=role, reachable=True,
        computer_name=doc.get("computer_name"), now_utc=_parse_time(doc.get("now_utc")),
        services=parse_services(name, doc), sso=sso.parse_sso(name, doc),
        cluster=cluster.parse_cluster(name, doc), host_instances=biztalk.parse_host_instances(name, doc),
        package=doc.get("package"), backup_folder=doc.get("backup_folder"),
        secret_backup=backup.parse_secret_backup(name, doc),
        change_records=records, change_record_problems=problems,
        last_boot_utc=_parse_time(doc.get("last_boot_utc")),
        pending_restart=restart.pending_restart_reasons(doc), msdtc=parse_msdtc(name, doc),
        entsso_events=events, entsso_events_error=events_error, raw=doc)


def gather_hosts(target: Target, names: Iterable[str] | None = None) -> dict[str, HostFacts]:
    names = list(names) if names is not None else list(target.hosts)
    roles = {n: "node" for n in target.nodes} | {b: "biztalk" for b in target.biztalk_servers}

    def one(name: str) -> HostFacts:
        try:
            doc = target.hosts[name].invoke("Get-HostFacts", target.host_facts_params(name))
        except RemoteError as exc:
            return HostFacts(name=name, role=roles[name], reachable=False, error=str(exc), error_kind=exc.kind)
        return parse_host(name, roles[name], doc)

    return dict(zip(names, on_hosts(names, one), strict=True))  # on_hosts: one result a host, in order


def gather_sql(target: Target) -> SqlFacts:
    """SQL Server's facts, each read on the instance that holds it (entsso.remote.sqlestate): the clock and the
    backup state on the management database's instance, the secret server on SSODB's, each job and SQL
    Agent on the instance that runs it, the grants and the instance's own name on each."""
    estate = target.sql if isinstance(target.sql, SqlEstate) else sqlestate.single(target.sql)
    lacking: list[permissions.Grant] | None = None
    try:
        now = estate.main.execute(tsql.NOW).rows[0]
        # the grants first: a read the login may not do then fails below, and the gate still names them all
        running_jobs = [inst for inst, _ in estate.jobs_by_instance(target.job_names)] or [estate.main]
        lacking = [g for inst in estate.instances
                   for g in permissions.missing(permissions.grants(inst, estate.asks_grants(inst, target.job_names)))]
        agent, agent_error, agent_on = None, None, None
        for inst in running_jobs:
            try:
                agent, agent_on = sqlagent.agent_status(inst), inst.name
            except SqlError as exc:
                if isinstance(exc, SqlUnreachable):
                    raise
                agent, agent_error, agent_on = None, str(exc), inst.name
            if agent != "Running":
                break
        backups = backup.backup_state(estate.management)
        names = {inst.label: sqlestate.server_name(inst) for inst in estate.instances}
        misplaced = sqlestate.misplaced(estate, backups.databases, names)
        try:
            secret_server = sso.secret_server(estate)
        except SqlError as exc:
            if not misplaced or isinstance(exc, SqlUnreachable):
                raise
            secret_server = None  # SSODB is not where the inventory says: sql_instances_match names it
        servers, servers_error, group_server, group_error = None, None, None, None
        try:
            servers = tuple(sso.registered_servers(estate))
        except SqlError as exc:
            if isinstance(exc, SqlUnreachable):
                raise
            servers_error = str(exc)
        try:
            group_server = sso.group_sso_server(estate)
        except SqlError as exc:
            if isinstance(exc, SqlUnreachable):
                raise
            group_error = str(exc)
        admins, admins_error = None, None
        try:
            admins = sso.admin_group(estate)
        except SqlError as exc:
            if isinstance(exc, SqlUnreachable):
                raise
            admins_error = str(exc)
        return SqlFacts(reachable=True, now_utc=_parse_time(now.get("now_utc")),
                        sso_admin_group=admins, sso_admin_group_error=admins_error,
                        secret_server=secret_server, sso_servers=servers, sso_servers_error=servers_error,
                        group_sso_server=group_server, group_sso_server_error=group_error,
                        jobs=sqlagent.jobs_everywhere(estate, target.job_names),
                        backups=backups, agent=agent, agent_error=agent_error,
                        agent_instance=agent_on if len(estate.instances) > 1 else None,
                        main_instance=estate.main.label,
                        missing_grants=lacking,
                        misplaced=misplaced)
    except SqlError as exc:
        return SqlFacts(reachable=False, error=str(exc), error_kind=exc.kind, missing_grants=lacking)


def gather(target: Target, clock: Any = None) -> Snapshot:
    """The whole estate: hosts and SQL Server asked at the same time."""
    with ThreadPoolExecutor(max_workers=2) as pool:
        hosts_f = pool.submit(gather_hosts, target)
        sql_f = pool.submit(gather_sql, target)
        hosts, sql_facts = hosts_f.result(), sql_f.result()
    taken = sql_facts.now_utc or next((h.now_utc for h in hosts.values() if h.now_utc), None) or datetime.now()
    return Snapshot(taken_at=taken, hosts=hosts, sql=sql_facts)
