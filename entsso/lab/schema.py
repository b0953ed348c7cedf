"""Every key and value a lab scenario may say, as pydantic models (extra keys forbidden).

A scenario that names a key or a value the lab does not model (a typo, a fault kind it cannot inject)
is refused at load time, naming the key, its place and the keys it knows there, so a scenario can
never claim a behaviour the lab silently ignores. The models only validate: the lab reads the
scenario's own mapping, and its defaults are documented in docs/lab.md (which lists every key here).
"""
from __future__ import annotations

import typing
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

Seconds = Annotated[float, Field(ge=0)]
NodeState = Literal["Up", "Paused", "Down", "Joining"]
ServiceState = Literal["Running", "Stopped"]



LoginRole = Literal["sysadmin", "SQLAgentOperatorRole", "SQLAgentReaderRole", "SQLAgentUserRole"]

class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _named(value: Any) -> Any:
    """`nodes: [NODE1]` is short for `nodes: [{name: NODE1}]`."""
    return {"name": value} if isinstance(value, str) else value


class NodeHostInstance(_Model):
    """A BizTalk host instance installed on a cluster node outside the cluster (its BTSSvc$ runs by the SCM)."""
    host: str
    state: ServiceState | None = None
    disabled: bool | None = None


class ClusterNode(_Model):
    name: str
    state: NodeState | None = None
    sso_version: str | None = None
    tools_server: str | None = None
    host_instances: list[NodeHostInstance] | None = None  # un-clustered host instances on the node


class ClusterResourceSpec(_Model):
    """A resource of the SSO group besides its network name and ENTSSO, or of another role (issue 26)."""
    name: str
    type: str  # ResourceType.Name, as the cluster names it (any: an unknown one is the gate's to refuse)
    service: str | None = None  # a Generic Service's ServiceName (BTSSvc$<host>, W3SVC, ...)
    dns_name: str | None = None  # a Network Name's DnsName; a SQL Server's VirtualServerName
    instance: str | None = None  # a SQL Server's InstanceName
    depends_on: list[str] | None = None
    state: Literal["Online", "Offline"] | None = None


class ClusterRole(_Model):
    """Another role (group) on the cluster's nodes: a SQL Server failover cluster instance, a clustered MSDTC."""
    name: str
    owner: str | None = None
    group_type: str | None = None
    resources: list[ClusterResourceSpec] | None = None


class ClusterSection(_Model):
    name: str | None = None
    group: str | None = None
    resource: str | None = None
    nodes: list[Annotated[ClusterNode, BeforeValidator(_named)]] | None = None
    owner: str | None = None
    group_state: Literal["Online", "Failed", "PartialOnline", "Offline"] | None = None
    move_sec: Seconds | None = None
    resource_online_sec: Seconds | None = None
    pending_timeout_sec: Seconds | None = None  # the ENTSSO resource's PendingTimeout (default 180 s)
    resource_offline_sec: Seconds | None = None
    restart_threshold: Annotated[int, Field(ge=0)] | None = None
    restart_period_sec: Seconds | None = None
    failover_threshold: Annotated[int, Field(ge=0)] | None = None
    possible_owners: list[str] | None = None
    preferred_owners: list[str] | None = None
    auto_failback: bool | None = None
    witness: Literal["Online", "Offline"] | None = None
    use_network_name: bool | None = None
    group_resources: list[ClusterResourceSpec] | None = None  # the SSO group's other resources (issue 26)
    roles: list[ClusterRole] | None = None  # the cluster's other roles
    sql_online_sec: Seconds | None = None  # SQL Server in a moved group: unavailable until online on the new node
    # the heartbeat (entsso.lab.network): SameSubnetDelay (ms, 250-2000) x SameSubnetThreshold (3-120)
    same_subnet_delay_ms: Annotated[int, Field(ge=250, le=2000)] | None = None
    same_subnet_threshold: Annotated[int, Field(ge=3, le=120)] | None = None


class SeededEvent(_Model):
    id: int
    hours_ago: Seconds | None = None  # estate hours before the lab's start; default 1
    message: str | None = None
    level: Literal["Error", "Warning", "Information"] | None = None  # default: Warning for 10536, else Error


class SsoHost(_Model):
    version: str | None = None
    sso_version: str | None = None
    tools_server: str | None = None
    holds_secret: bool | None = None
    installed: bool | None = None
    service_account: str | None = None  # ENTSSO's logon account on that host
    start_type: Literal["Automatic", "Manual", "Disabled"] | None = None  # ENTSSO's start type on that host
    restore_cannot_decrypt: bool | None = None  # KB 3000847's defect: a restore there logs event 10536
    logon_failure: bool | None = None  # ENTSSO's account cannot log on there: every start fails with 1069
    start_sec: Seconds | None = None  # ENTSSO's start time there, through the SCM and the cluster alike
    backup_written_damaged: bool | None = None  # a secret backup written there is cut short (SSO says success)
    clock_skew_sec: float | None = None  # that host's clock minus SQL Server's (estate seconds, signed)
    backup_folder_read_only: bool | None = None  # the WinRM account may not write sso.backup_folder there
    events: list[SeededEvent] | None = None  # ENTSSO events in its Application log at the start


class SsoSection(_Model):
    version: str | None = None
    secret_server: str | None = None
    secret_on: list[str] | None = None
    service_start_sec: Seconds | None = None
    service_stop_sec: Seconds | None = None
    backup_folder: str | None = None
    displaydb_output: str | None = None
    extra_servers: list[str] | None = None  # SSO servers outside the scenario's hosts sharing SSODB
    service_account: str | None = None  # ENTSSO's logon account on every host
    admin_group: str | None = None  # SSOX_GlobalInfo.gi_SSOAdminGroup
    hosts: dict[str, SsoHost] | None = None


class HostInstance(_Model):
    host: str
    type: Literal["InProcess", "Isolated"] | None = None
    state: ServiceState | None = None
    disabled: bool | None = None
    stop_sec: Seconds | None = None


class BizTalkServer(_Model):
    name: str
    entsso: ServiceState | None = None
    rule_engine: ServiceState | None = None
    host_instances: list[HostInstance] | None = None
    sso_version: str | None = None
    tools_server: str | None = None


class AdapterHandler(_Model):
    kind: Literal["receive", "send"] | None = None
    adapter: str
    host: str | None = None
    properties: int | None = None
    in_sso: bool | None = None  # false: BizTalkMgmtDb lists the handler, SSO's config store lacks its configuration
    config_id: str | None = None  # its uidCustomCfgID (a GUID); default: one derived from kind, adapter and host


class BizTalkSection(_Model):
    servers: list[BizTalkServer] | None = None
    host_instance_start_sec: Seconds | None = None
    host_instance_stop_sec: Seconds | None = None
    adapter_handlers: list[AdapterHandler] | None = None
    admin_tools_on_nodes: bool | None = None
    group_sso_server: str | None = None  # MSBTS_GroupSetting.SSOServerName (adm_Group.SSOServerName)


class SecondInstance(_Model):
    server: str | None = None
    instance: str | None = None
    databases: list[str] | None = None  # of the group's databases; default [SSODB]


class DatabaseNames(_Model):  # the inventory's sql.databases keys (master and msdb keep their names)
    ssodb: str | None = None
    management: str | None = None


class FailedRun(_Model):
    step: str  # the step that failed (for the Backup BizTalk Server job, one of its four; the steps before succeeded)
    message: str


class SqlSection(_Model):
    server: str | None = None
    instance: str | None = None
    username: str | None = None
    databases: list[str] | None = None
    backup_path: str | None = None
    jobs: dict[str, bool] | None = None
    job_run_sec: Seconds | None = None
    backup_sec_per_database: Seconds | None = None
    force_full_backup: bool | None = None
    full_backup_done: bool | None = None
    biztalk_schema: Literal[2010, 2006] | Literal["2010", "2006"] | None = None
    utc_offset_minutes: int | None = None
    last_full_minutes_ago: float | None = None
    agent_running: bool | None = None
    denied: list[str] | None = None  # objects (three-part names) the lab's login has no grant on
    # the suite's login's roles: sysadmin (server), SQLAgentOperatorRole / ReaderRole / UserRole (msdb);
    # default [SQLAgentOperatorRole]. Without sysadmin or the operator role, sp_update_job on a job another
    # login owns raises 14525, as msdb does
    login_roles: list[LoginRole] | None = None
    job_owner: str | None = None  # the login owning the BizTalk jobs (sysjobs.owner_sid); default sa
    # job -> the message its latest seeded run failed at step 1 with, or {step, message}: the step it failed at
    failed_jobs: dict[str, str | FailedRun] | None = None
    backup_schedule_minutes: Annotated[float, Field(gt=0)] | None = None  # the backup job's own schedule
    second_instance: SecondInstance | None = None  # another SQL instance holding some of the databases
    database_names: DatabaseNames | None = None  # the estate's names of SSODB and the management database
    # the TLS SQL Server speaks: its certificate's name (default the server's), "other" for a certificate from a
    # CA the inventory does not name, tds8: false for a SQL Server before 2022 (no strict encryption)
    certificate_name: str | None = None
    certificate_issuer: Literal["lab", "other"] | None = None
    tds8: bool | None = None
    # how the suite's inventory reaches it (the admin box's side): the ODBC driver and sql.encrypt
    driver: Literal["FreeTDS", "ODBC Driver 18 for SQL Server"] | None = None
    encrypt: bool | Literal["strict"] | None = None


class Package(_Model):
    path: str | None = None
    arguments: str | None = None
    exit_code: int | None = None
    present_on: list[str] | None = None


class NodeUpgrade(_Model):
    exit_code: int | None = None
    pending_reboot: bool | None = None
    mode: Literal["manual", "package"] | None = None
    target_version: str | None = None
    path: str | None = None
    package_path: str | None = None
    arguments: str | None = None


class UpgradeSection(_Model):
    target_version: str | None = None
    mode: Literal["manual", "package"] | None = None
    operator_delay_sec: Seconds | None = None
    setup_sec: Seconds | None = None
    reboot_sec: Seconds | None = None
    restart_delay_sec: Seconds | None = None
    package: Package | None = None
    nodes: dict[str, NodeUpgrade] | None = None


class WinrmSection(_Model):
    username: str | None = None
    transport: Literal["ntlm", "basic"] | None = None
    https: bool | None = None
    call_timeout: Seconds | None = None
    retry_window: Seconds | None = None  # written to the inventory (real seconds; the lab's default 3)
    shell_idle_timeout_sec: Seconds | None = None


class TimeoutsSection(_Model):
    service_start: Seconds | None = None
    service_stop: Seconds | None = None
    group_move: Seconds | None = None
    backup_job: Seconds | None = None
    upgrade: Seconds | None = None
    reboot: Seconds | None = None


FAULT_KINDS = ("unreachable", "fail", "hang", "wrong_output", "job_fails", "sql_unavailable", "installer_exit",
               "node_paused", "job_collision", "network_loss", "group_failover", "slow_start")


class Fault(_Model):
    """One fault (docs/lab.md, Faults reference). The fields are shared by the kinds: the fault matrix
    sends one shape for every kind, and a field a kind does not use is harmless; a field no kind knows
    is refused."""

    kind: Literal["unreachable", "fail", "hang", "wrong_output", "job_fails", "sql_unavailable", "installer_exit",
                  "node_paused", "job_collision", "network_loss", "group_failover", "slow_start"]
    host: str | None = None
    operation: str | None = None
    call: int | None = Field(default=None, ge=1)
    times: int | None = Field(default=None, ge=1)
    message: str | None = None
    exit_code: int | None = None
    seconds: Seconds | None = None
    output: str | None = None
    after_sec: Seconds | None = None
    job: str | None = None
    node: str | None = None  # node_paused: the cluster node paused (default: host)
    step: str | None = None  # job_fails: the step of the Backup BizTalk Server job that fails


class MsdtcSection(_Model):
    shared_cid: list[str] | None = None  # hosts whose MSDTC contact identifier is one (the first one's)
    network_access_off: list[str] | None = None  # hosts whose MSDTC Security values are 0
    sql_unreachable_from: list[str] | None = None  # hosts from which SQL Server's RPC endpoint mapper (135) is closed


class Scenario(_Model):
    name: str | None = None
    extends: str | None = None
    speed: Annotated[float, Field(gt=0)] | None = None
    latency_sec: Seconds | None = None
    max_receive_wait_sec: Seconds | None = None
    environment: str | None = None
    prepared_for_change: str | None = None
    prepared_secret_password_env: str | None = None
    cluster: ClusterSection | None = None
    sso: SsoSection | None = None
    biztalk: BizTalkSection | None = None
    sql: SqlSection | None = None
    upgrade: UpgradeSection | None = None
    winrm: WinrmSection | None = None
    faults: list[Fault] | None = None
    timeouts: TimeoutsSection | None = None
    msdtc: MsdtcSection | None = None


# fields a fault kind cannot do without (the lab would raise KeyError mid-run otherwise)
_FAULT_NEEDS = {"job_fails": ("job",), "job_collision": ("job",), "installer_exit": ("host", "exit_code"),
                "node_paused": ("host",), "network_loss": ("host", "seconds"), "slow_start": ("seconds",)}


def _model_of(annotation: Any) -> type[BaseModel] | None:
    """The model inside Optional[...], list[...], dict[str, ...] or Annotated[...], if any."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _model_of(arg)
        if found is not None:
            return found
    return None


def _model_at(root: type[BaseModel], loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The model that holds the last part of `loc` (list indexes and mapping keys skipped)."""
    current: type[BaseModel] | None = root
    for part in loc[:-1]:
        if current is None:
            return None
        if isinstance(part, str) and part in current.model_fields:
            current = _model_of(current.model_fields[part].annotation)
        # else: a list index or a mapping key (NODE2 under upgrade.nodes): the same model goes on
    return current


def place(loc: tuple[Any, ...]) -> str:
    """`("cluster", "nodes", 1, "stat")` -> `cluster.nodes[1].stat`."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif isinstance(part, str) and ("[" in part or part.startswith("function-")):
            continue  # pydantic's validator tags
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


def keys(model: type[BaseModel] | None = None, prefix: str = "") -> list[str]:
    """Every key a scenario may hold, dotted (`cluster.nodes[].state`, `upgrade.nodes.<NODE>.exit_code`)."""
    model = model or Scenario
    out: list[str] = []
    for name, f in model.model_fields.items():
        here = f"{prefix}{name}"
        out.append(here)
        inner = _model_of(f.annotation)
        if inner is not None and inner is not model:
            origin_args = repr(f.annotation)
            if "list[" in origin_args:
                out += keys(inner, f"{here}[].")
            elif "dict[" in origin_args:
                out += keys(inner, f"{here}.<{name.rstrip('s').upper() or 'KEY'}>.")
            else:
                out += keys(inner, f"{here}.")
    return out


def problems(doc: Any) -> list[str]:
    """What in `doc` the lab does not understand, one sentence each (empty: the scenario is valid)."""
    try:
        Scenario.model_validate(doc)
    except ValidationError as exc:
        out = []
        for e in exc.errors():
            loc = tuple(e["loc"])
            where = place(loc)
            if e["type"] == "extra_forbidden":
                holder = _model_at(Scenario, loc)
                known = ", ".join(holder.model_fields) if holder else "none"
                out.append(f"{where}: unknown key {loc[-1]!r}; the lab knows here: {known}")
            elif e["type"] == "literal_error":
                out.append(f"{where}: unknown value {e.get('input')!r}; use one of "
                           f"{e.get('ctx', {}).get('expected', '?')}")
            else:
                out.append(f"{where}: {e['msg']} (given {e.get('input')!r})")
        return out
    out = []
    for i, fault in enumerate(doc.get("faults") or []):
        for need in _FAULT_NEEDS.get(fault.get("kind"), ()):
            if fault.get(need) is None:
                out.append(f"faults[{i}]: a {fault['kind']} fault needs {need!r}")
    return out


def fault_problems(fault: Any) -> list[str]:
    """The same check for one fault posted to the control endpoint (`POST /faults`)."""
    return [p.replace("faults[0]", "fault", 1) for p in problems({"faults": [fault]})]
