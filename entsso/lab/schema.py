"""Every key and value a lab scenario may say, as pydantic models (extra keys forbidden).

A scenario that names a key or a value the lab does not model (a typo, a fault kind it cannot inject)
is refused at load time, naming the key, its place and the keys it knows there, so a scenario can
never claim a behaviour the lab silently ignores. The models only validate: the lab reads the
scenario's own mapping, and its defaults are documented in docs/lab.md (which lists every key here).
"""
from __future__ import annotations

import typing
from typing import Union, Annotated, Any, Literal, Optional

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

Seconds = Annotated[float, Field(ge=0)]
NodeState = Literal["Up", "Paused", "Down", "Joining"]
ServiceState = Literal["Running", "Stopped"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _named(value: Any) -> Any:
    """`nodes: [NODE1]` is short for `nodes: [{name: NODE1}]`."""
    return {"name": value} if isinstance(value, str) else value


class ClusterNode(_Model):
    name: str
    state: Optional[NodeState] = None
    sso_version: Optional[str] = None
    tools_server: Optional[str] = None


class ClusterSection(_Model):
    name: Optional[str] = None
    group: Optional[str] = None
    resource: Optional[str] = None
    nodes: Optional[list[Annotated[ClusterNode, BeforeValidator(_named)]]] = None
    owner: Optional[str] = None
    group_state: Optional[Literal["Online", "Failed", "PartialOnline", "Offline"]] = None
    move_sec: Optional[Seconds] = None
    resource_online_sec: Optional[Seconds] = None
    resource_offline_sec: Optional[Seconds] = None
    restart_threshold: Optional[Annotated[int, Field(ge=0)]] = None
    restart_period_sec: Optional[Seconds] = None
    failover_threshold: Optional[Annotated[int, Field(ge=0)]] = None
    possible_owners: Optional[list[str]] = None
    preferred_owners: Optional[list[str]] = None
    auto_failback: Optional[bool] = None
    witness: Optional[Literal["Online", "Offline"]] = None
    use_network_name: Optional[bool] = None


class SsoHost(_Model):
    version: Optional[str] = None
    sso_version: Optional[str] = None
    tools_server: Optional[str] = None
    holds_secret: Optional[bool] = None
    installed: Optional[bool] = None


class SsoSection(_Model):
    version: Optional[str] = None
    secret_server: Optional[str] = None
    secret_on: Optional[list[str]] = None
    service_start_sec: Optional[Seconds] = None
    service_stop_sec: Optional[Seconds] = None
    backup_folder: Optional[str] = None
    displaydb_output: Optional[str] = None
    extra_servers: Optional[list[str]] = None  # SSO servers outside the scenario's hosts sharing SSODB
    hosts: Optional[dict[str, SsoHost]] = None


class HostInstance(_Model):
    host: str
    type: Optional[Literal["InProcess", "Isolated"]] = None
    state: Optional[ServiceState] = None
    disabled: Optional[bool] = None
    stop_sec: Optional[Seconds] = None


class BizTalkServer(_Model):
    name: str
    entsso: Optional[ServiceState] = None
    rule_engine: Optional[ServiceState] = None
    host_instances: Optional[list[HostInstance]] = None
    sso_version: Optional[str] = None
    tools_server: Optional[str] = None


class AdapterHandler(_Model):
    kind: Optional[Literal["receive", "send"]] = None
    adapter: str
    host: Optional[str] = None
    properties: Optional[int] = None


class BizTalkSection(_Model):
    servers: Optional[list[BizTalkServer]] = None
    host_instance_start_sec: Optional[Seconds] = None
    host_instance_stop_sec: Optional[Seconds] = None
    adapter_handlers: Optional[list[AdapterHandler]] = None
    admin_tools_on_nodes: Optional[bool] = None
    group_sso_server: Optional[str] = None  # MSBTS_GroupSetting.SSOServerName (adm_Group.SSOServerName)


class SecondInstance(_Model):
    server: Optional[str] = None
    instance: Optional[str] = None
    databases: Optional[list[str]] = None  # of the group's databases; default [SSODB]


class DatabaseNames(_Model):  # the inventory's sql.databases keys (master and msdb keep their names)
    ssodb: Optional[str] = None
    management: Optional[str] = None


class SqlSection(_Model):
    server: Optional[str] = None
    instance: Optional[str] = None
    username: Optional[str] = None
    databases: Optional[list[str]] = None
    backup_path: Optional[str] = None
    jobs: Optional[dict[str, bool]] = None
    job_run_sec: Optional[Seconds] = None
    backup_sec_per_database: Optional[Seconds] = None
    force_full_backup: Optional[bool] = None
    full_backup_done: Optional[bool] = None
    biztalk_schema: Optional[Union[Literal[2010, 2006], Literal["2010", "2006"]]] = None
    utc_offset_minutes: Optional[int] = None
    last_full_minutes_ago: Optional[float] = None
    agent_running: Optional[bool] = None
    denied: Optional[list[str]] = None  # objects (three-part names) the lab's login has no grant on
    second_instance: Optional[SecondInstance] = None  # another SQL instance holding some of the databases
    database_names: Optional[DatabaseNames] = None  # the estate's names of SSODB and the management database


class Package(_Model):
    path: Optional[str] = None
    arguments: Optional[str] = None
    exit_code: Optional[int] = None
    present_on: Optional[list[str]] = None


class NodeUpgrade(_Model):
    exit_code: Optional[int] = None
    pending_reboot: Optional[bool] = None
    mode: Optional[Literal["manual", "package"]] = None
    target_version: Optional[str] = None
    path: Optional[str] = None
    package_path: Optional[str] = None
    arguments: Optional[str] = None


class UpgradeSection(_Model):
    target_version: Optional[str] = None
    mode: Optional[Literal["manual", "package"]] = None
    operator_delay_sec: Optional[Seconds] = None
    setup_sec: Optional[Seconds] = None
    reboot_sec: Optional[Seconds] = None
    restart_delay_sec: Optional[Seconds] = None
    package: Optional[Package] = None
    nodes: Optional[dict[str, NodeUpgrade]] = None


class WinrmSection(_Model):
    username: Optional[str] = None
    transport: Optional[Literal["ntlm", "basic"]] = None
    https: Optional[bool] = None
    call_timeout: Optional[Seconds] = None
    shell_idle_timeout_sec: Optional[Seconds] = None


class TimeoutsSection(_Model):
    service_start: Optional[Seconds] = None
    service_stop: Optional[Seconds] = None
    group_move: Optional[Seconds] = None
    backup_job: Optional[Seconds] = None
    upgrade: Optional[Seconds] = None
    reboot: Optional[Seconds] = None


FAULT_KINDS = ("unreachable", "fail", "hang", "wrong_output", "job_fails", "sql_unavailable", "installer_exit",
               "node_paused")


class Fault(_Model):
    """One fault (docs/lab.md, Faults reference). The fields are shared by the kinds: the fault matrix
    sends one shape for every kind, and a field a kind does not use is harmless; a field no kind knows
    is refused."""

    kind: Literal["unreachable", "fail", "hang", "wrong_output", "job_fails", "sql_unavailable", "installer_exit",
                  "node_paused"]
    host: Optional[str] = None
    operation: Optional[str] = None
    call: Optional[int] = Field(default=None, ge=1)
    times: Optional[int] = Field(default=None, ge=1)
    message: Optional[str] = None
    exit_code: Optional[int] = None
    seconds: Optional[Seconds] = None
    output: Optional[str] = None
    after_sec: Optional[Seconds] = None
    job: Optional[str] = None
    node: Optional[str] = None  # node_paused: the cluster node paused (default: host)


class Scenario(_Model):
    name: Optional[str] = None
    extends: Optional[str] = None
    speed: Optional[Annotated[float, Field(gt=0)]] = None
    latency_sec: Optional[Seconds] = None
    max_receive_wait_sec: Optional[Seconds] = None
    environment: Optional[str] = None
    prepared_for_change: Optional[str] = None
    prepared_secret_password_env: Optional[str] = None
    cluster: Optional[ClusterSection] = None
    sso: Optional[SsoSection] = None
    biztalk: Optional[BizTalkSection] = None
    sql: Optional[SqlSection] = None
    upgrade: Optional[UpgradeSection] = None
    winrm: Optional[WinrmSection] = None
    faults: Optional[list[Fault]] = None
    timeouts: Optional[TimeoutsSection] = None


# fields a fault kind cannot do without (the lab would raise KeyError mid-run otherwise)
_FAULT_NEEDS = {"job_fails": ("job",), "installer_exit": ("host", "exit_code"), "node_paused": ("host",)}


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
