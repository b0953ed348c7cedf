"""The lab's model of the Windows side of the estate: cluster nodes and BizTalk servers, their services,
the failover cluster's SSO group and ENTSSO Generic Service resource, each ENTSSO instance (its computer
name, whether it is the master secret server, its cached secret), the master secret in each host's
registry, BizTalk host instances, files, and the SSO upgrade (package or the lab's operator).

powershell.py calls `Estate.invoke(host, operation, params)` for each of the suite's scripts
(docs/operations.md is the contract) and gets back what the real script would print. The rules follow
shared/domain.md: where Windows, SSO or the cluster would refuse, fail or take time, the model does too.

Time: every delay is a scenario value in estate seconds. Transitions that take time are *scheduled
events* (due estate time, action) applied lazily whenever the estate is looked at under its lock; an
operation that waits polls its condition, sleeping on the clock *outside* the lock, so many hosts can
be driven at once.

Group state: the SSO group also holds the IP address and network name, so with the ENTSSO resource
offline but the group up the group reports PartialOnline (Online only when ENTSSO is online).
"""
from __future__ import annotations

import base64
import hashlib
import heapq
import itertools
import os
import re
import threading
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, UTC
from typing import Any
from collections.abc import Callable

from entsso.lab import texts
from entsso.lab.cluster import Topology

ENTSSO = "ENTSSO"
RULE_ENGINE = "RuleEngineUpdateService"
ENTSSO_DISPLAY = "Enterprise Single Sign-On Service (ENTSSO)"
# ENTSSO retries SSODB / its MSS 12 x 5 s before it gives up (shared/domain.md)
START_RETRY_SEC = 5.0
START_GIVE_UP_SEC = 60.0
# a resource's PendingTimeout, 180000 ms by default (Learn, "PendingTimeout" resource common property)
PENDING_TIMEOUT_SEC = 180.0
CLUSTER_NOTICE_SEC = 3.0      # how long the cluster takes to notice its service was stopped behind its back
CLUSTER_RESTART_SEC = 2.0     # the resource's restart policy waits this long before bringing it back
# the resource's and the group's policy defaults (Learn, MSCS common properties: RestartThreshold 3,
# RestartPeriod 900000 ms, FailoverThreshold "the number of nodes in the cluster minus 1", FailoverPeriod 6 h)
RESTART_THRESHOLD = 3
RESTART_PERIOD_SEC = 900.0
FAILOVER_PERIOD_SEC = 6 * 3600.0
RESTART_DELAY_SEC = 10.0      # shutdown /r /t 10: a restart is initiated, the host goes away this much later
BOOTED_BEFORE_LAB_SEC = 3 * 86400.0  # every host last booted this long before the lab's start
# System Error Codes: 1069 ERROR_SERVICE_LOGON_FAILED (the SCM logs event 7000 with it)
ERROR_SERVICE_LOGON_FAILED = 1069
LOGON_FAILURE = "The service did not start due to a logon failure"
ERR_CONTACT = "0xC0002A0F"
ERR_NO_SECRET = "0xC0002A1F"
# a folder the caller may not write: .NET's UnauthorizedAccessException text for a path (Learn,
# UnauthorizedAccessException), and the COM interop's message for E_ACCESSDENIED (composed, UNCONFIRMED: which
# text BackupSecret's failure carries is not published); docs/domain-notes.md
ACCESS_DENIED_PATH = "Access to the path '{path}' is denied."
ACCESS_DENIED_COM = "Access is denied. (Exception from HRESULT: 0x80070005 (E_ACCESSDENIED))"


class PSError(Exception):
    """A terminating PowerShell error: str(exc) is what the script throws; `category` its CategoryInfo."""

    def __init__(self, message: str, category: str = "InvalidOperation") -> None:
        super().__init__(message)
        self.category = category


def _iso(t: datetime | None) -> str | None:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if t else None


def _same(a: str | None, b: str | None) -> bool:
    return (a or "").upper() == (b or "").upper() and a is not None and b is not None


# Windows Installer's refusals before anything runs (Microsoft Learn, "MsiExec.exe and InstMsi.exe Error Messages")
INSTALLER_REFUSES = {
    1618: "Another installation is already in progress. Complete that installation before proceeding with this "
          "install.",
    1619: "This installation package could not be opened. Verify that the package exists and is accessible, or "
          "contact the application vendor to verify that this is a valid Windows Installer package.",
    1638: "Another version of this product is already installed. Installation of this version cannot continue. To "
          "configure or remove the existing version of this product, use Add/Remove Programs in Control Panel.",
}


# System Error Codes 1000-1299 (docs/domain-notes.md)
SCM_1068 = "The dependency service or group failed to start."  # ERROR_SERVICE_DEPENDENCY_FAIL


def contact_error(name: str) -> str:
    return (f"Could not contact the SSO server '{name}'. Check that SSO is configured and that the SSO service "
            "is running on that server.")


# GetConfigInfo's documented failures beyond SSO's own (E_ACCESSDENIED, E_INVALIDARG), with Windows' texts
ERR_ACCESS_DENIED, ACCESS_DENIED_TEXT = "0x80070005", "Access is denied."
ERR_INVALID_ARG, INVALID_ARG_TEXT = "0x80070057", "The parameter is incorrect."
# KB 3000847's symptom as the event log names it (event 10536, 0x80090005 NTE_BAD_DATA, "Bad Data."); what
# GetConfigInfo itself returns then is not published: composed, UNCONFIRMED (docs/domain-notes.md)
ERR_BAD_DATA, BAD_DATA_TEXT = "0x80090005", "Bad Data."
SSO_FLAG_RUNTIME = 0x4


def adapter_configs(bt_cfg: dict[str, Any]) -> list[dict[str, Any]]:
    """The scenario's adapter handlers, each with its uidCustomCfgID (a stable GUID per handler, upper case
    as CONVERT(nvarchar(36), …) gives it) and how many properties its SSO configuration holds."""
    out = []
    for a in bt_cfg.get("adapter_handlers") or []:
        kind, host = a.get("kind", "receive"), a.get("host") or "BizTalkServerApplication"
        cfg_id = str(a.get("config_id") or uuid.uuid5(uuid.NAMESPACE_URL,
                                                         f"lab-adapter-handler:{kind}:{a['adapter']}:{host}"))
        cfg_id = cfg_id.strip("{}").upper()  # a captured estate's own (entsso.lab.replay), else the lab's
        out.append({"kind": kind, "adapter": a["adapter"], "host": host, "config_id": "{" + cfg_id + "}",
                    "guid": cfg_id, "properties": int(a.get("properties", 3)),
                    "in_sso": a.get("in_sso") is not False})
    return out


# the lab's service accounts (its own names): ENTSSO's, unless sso.service_account says otherwise, and the
# BizTalk services' (host instances, the rule engine's update service)
SSO_ACCOUNT = "LAB\\svc-sso"
BIZTALK_ACCOUNT = "LAB\\svc-biztalk"

# ENTSSO's event texts the lab logs (composed from the sources' wording: UNCONFIRMED as Windows shows them,
# docs/domain-notes.md, "The field's hard lessons")
EVENT_TEXT = {10536: "The SSO service could not decrypt the data. Error Code: 0x80090005, Bad Data."}
EVENT_LEVEL = {10536: "Warning"}  # KB 3000847: "Level: Warning"; the lab logs the others as errors

NO_SECRET_ERROR = ("Cannot perform encryption or decryption because the secret is not available from the master "
                   "secret server. See the event log for related errors.")


@dataclass
class Service:
    name: str
    status: str  # Stopped, StartPending, Running, StopPending
    start_type: str  # Automatic, Manual, Disabled
    logon_account: str = BIZTALK_ACCOUNT  # Win32_Service.StartName


@dataclass
class HostInstance:
    host_name: str
    host_type: str  # InProcess | Isolated
    state: str  # for isolated ones (in-process ones are their BTSSvc$ service)
    disabled: bool
    stop_sec: float | None = None  # this instance's drain time (scenario host_instances[].stop_sec)


@dataclass
class File:
    path: str
    data: bytes
    mtime: datetime


@dataclass
class Host:
    name: str
    role: str  # node | biztalk
    node_state: str = "Up"  # cluster node state (nodes only)
    services: dict[str, Service] = field(default_factory=dict)
    sso_installed: bool = True
    version: str = ""
    pending_version: str | None = None  # files replaced at the next restart (msi 3010)
    tools_server: str = ""
    holds_secret: bool = False  # HKLM\SOFTWARE\Microsoft\ENTSSO\SSOSS\{GUID}
    # the running ENTSSO process (when services[ENTSSO] is not Stopped)
    entsso_identity: str | None = None  # the computer name it answers as
    entsso_clustered: bool = False  # started by the cluster (the resource's instance)
    secret_cache: bool = False
    cannot_decrypt: bool = False  # since a restore on a node with that defect: every decrypt fails (event 10536)
    entsso_gen: int = 0  # bumped whenever ENTSSO's lifecycle changes; stale scheduled events check it
    last_start_error: str | None = None
    host_instances: list[HostInstance] = field(default_factory=list)
    files: dict[str, File] = field(default_factory=dict)
    folders: set[str] = field(default_factory=set)
    rebooting: bool = False
    restart_pending: bool = False  # a restart initiated (shutdown /t, an installer's 1641), not yet down
    boot_time: datetime | None = None  # Win32_OperatingSystem.LastBootUpTime
    pending_reboot: bool = False  # ...\Component Based Servicing\RebootPending exists (a restart owed)
    installing: bool = False
    install_gen: int = 0
    events: list[dict[str, Any]] = field(default_factory=list)  # ENTSSO's Application log events: id, time, message
    restore_cannot_decrypt: bool = False  # an SSO build with KB 3000847's defect: a restore logs 10536
    logon_failure: bool = False  # ENTSSO's account cannot log on there (expired password): every start is 1069
    start_sec: float | None = None  # ENTSSO's own start time there (SCM and cluster), else the scenario's defaults
    backup_written_damaged: bool = False  # a backup file there is written cut short (BackupSecret still succeeds)
    clock_skew: timedelta = timedelta(0)  # this host's clock minus SQL Server's (sso.hosts.<H>.clock_skew_sec)
    read_only_backup_folder: bool = False  # the WinRM account may not write sso.backup_folder here (Access is denied)


@dataclass
class Cluster:
    name: str
    group: str
    resource: str
    nodes: list[str]
    owner: str
    base_online: bool  # the group's IP address and network name
    resource_state: str  # Online, Offline, Failed, Pending
    pending_to: str | None = None  # Online | Offline while Pending
    moving: bool = False
    gen: int = 0
    adopted_scm_process: bool = False  # Online around an ENTSSO the SCM started: it runs as the node's name
    online_epoch: dict[str, int] = field(default_factory=dict)  # node -> secret-server epoch it came online in
    last_error: str | None = None
    restarts: list[float] = field(default_factory=list)  # estate times of the restart policy's restarts
    failovers: list[float] = field(default_factory=list)  # estate times of the policy's group failovers
    policy_log: list[dict[str, Any]] = field(default_factory=list)  # what the restart policy did, in order


class Estate:
    """The Windows estate of one scenario. Thread-safe: one RLock, never held while sleeping."""

    # a captured estate's tool texts (entsso.lab.replay.ServedTexts), served while the state they describe holds
    replay: Any = None
    # the policy's timings, for entsso/lab/cluster.py's resources (which cannot import this module)
    CLUSTER_NOTICE_SEC, CLUSTER_RESTART_SEC = CLUSTER_NOTICE_SEC, CLUSTER_RESTART_SEC
    RESTART_THRESHOLD, RESTART_PERIOD_SEC = RESTART_THRESHOLD, RESTART_PERIOD_SEC

    def __init__(self, scenario: dict[str, Any], clock: Any, sql: Any) -> None:
        self.scenario = scenario
        self.clock = clock
        self.sql = sql
        self.sql_engines: list[Any] = [sql]  # every SQL Server instance (server.py sets them)
        self._lock = threading.RLock()
        self._events: list[tuple[float, int, str, Callable[[], None]]] = []
        self._seq = itertools.count()
        self._changes = 0
        self._slow_next: float | None = None  # a `slow_start` fault: the next ENTSSO start's seconds
        self._files_written = 0
        self._log: list[dict[str, Any]] = []
        self._received: dict[str, int] = {}
        self._controls: dict[str, int] = {}  # "HOST SERVICE stop" -> stop controls the SCM was sent
        self._passwords: dict[str, str] = {}  # sha256 of a backup's content -> sha256 of its password
        self._ss_epoch = 0
        self._ss_seen: str | None = None

        c = scenario.get("cluster") or {}
        sso = scenario.get("sso") or {}
        bt = scenario.get("biztalk") or {}
        up = scenario.get("upgrade") or {}
        self.cluster_name: str = c.get("name", "SSOCLUSTER")
        self.sso_cfg, self.bt_cfg, self.up_cfg, self.cl_cfg = sso, bt, up, c
        self.installer_exit: dict[str, int] = {}  # host -> exit code (fault `installer_exit`)
        node_docs = c.get("nodes") or []
        nodes = [n["name"] if isinstance(n, dict) else str(n) for n in node_docs]
        servers = bt.get("servers") or []
        self.nodes: list[str] = nodes
        self.servers: list[str] = [s["name"] for s in servers]
        self.hosts: list[str] = nodes + self.servers
        secret_on = {h.upper() for h in sso.get("secret_on") or []}
        version = str(sso.get("version", "10.0.1000.0"))
        sso_account = str(sso.get("service_account", SSO_ACCOUNT))
        self._h: dict[str, Host] = {}
        group_state = c.get("group_state", "Online")
        owner = c.get("owner") or (nodes[0] if nodes else "")
        for doc in node_docs:
            d = doc if isinstance(doc, dict) else {"name": str(doc)}
            h = Host(d["name"], "node", node_state=d.get("state", "Up"),
                     version=str(d.get("sso_version", version)), tools_server=d.get("tools_server", self.cluster_name),
                     holds_secret=d["name"].upper() in secret_on)
            h.services[ENTSSO] = Service(ENTSSO, "Stopped", "Manual", sso_account)
            folder = sso.get("backup_folder")
            if folder:
                h.folders.add(folder.rstrip("\\").upper())
            self._h[h.name.upper()] = h
        for s in servers:
            h = Host(s["name"], "biztalk", version=str(s.get("sso_version", version)),
                     tools_server=s.get("tools_server", self.cluster_name),
                     holds_secret=s["name"].upper() in secret_on)
            h.services[ENTSSO] = Service(ENTSSO, "Stopped", "Automatic", sso_account)
            h.services[RULE_ENGINE] = Service(RULE_ENGINE, s.get("rule_engine", "Running"), "Automatic")
            for hi in s.get("host_instances") or []:
                inst = HostInstance(hi["host"], hi.get("type", "InProcess"), hi.get("state", "Running"),
                                    bool(hi.get("disabled", False)),
                                    float(hi["stop_sec"]) if hi.get("stop_sec") is not None else None)
                h.host_instances.append(inst)
                if inst.host_type == "InProcess":
                    h.services[f"BTSSvc${inst.host_name}"] = Service(
                        f"BTSSvc${inst.host_name}", inst.state, "Disabled" if inst.disabled else "Automatic")
            self._h[h.name.upper()] = h
        # per-host sso overrides given under sso.hosts.<HOST> (version, tools_server, secret)
        for name, o in (sso.get("hosts") or {}).items():
            named = self._h.get(str(name).upper())
            if named and isinstance(o, dict):
                named.version = str(o.get("version", o.get("sso_version", named.version)))
                named.tools_server = o.get("tools_server", named.tools_server)
                named.holds_secret = bool(o.get("holds_secret", named.holds_secret))
                named.sso_installed = bool(o.get("installed", True))
                if o.get("service_account"):  # ENTSSO's logon account there (Win32_Service.StartName)
                    named.services[ENTSSO].logon_account = str(o["service_account"])
                if o.get("start_type"):  # ENTSSO's start type there
                    named.services[ENTSSO].start_type = str(o["start_type"])
                named.restore_cannot_decrypt = bool(o.get("restore_cannot_decrypt", False))
                named.logon_failure = bool(o.get("logon_failure", False))
                named.start_sec = float(o["start_sec"]) if o.get("start_sec") is not None else None
                named.backup_written_damaged = bool(o.get("backup_written_damaged", False))
                named.clock_skew = timedelta(seconds=float(o.get("clock_skew_sec") or 0))
                named.read_only_backup_folder = bool(o.get("backup_folder_read_only", False))
                for ev in o.get("events") or []:  # seeded ENTSSO events, hours before the lab's start
                    named.events.append({"id": int(ev["id"]), "level": str(ev.get("level") or EVENT_LEVEL.get(
                        int(ev["id"]), "Error")), "message": str(ev.get("message") or EVENT_TEXT.get(
                        int(ev["id"]), "")), "time": self.clock.now() - timedelta(hours=float(ev.get("hours_ago", 1)))})
        # the update package (and Setup media) on the nodes that have it
        pkg = up.get("package") or {}
        target = str(up.get("target_version", ""))
        if pkg.get("path"):
            for n in pkg.get("present_on") or []:
                named = self._h.get(str(n).upper())
                if named:
                    self._put_file(named, pkg["path"], b"MSP" + target.encode(), self.clock.now())
        # group_state Online: the ENTSSO resource online too; PartialOnline: the group up, ENTSSO offline
        resource_state = {"Online": "Online", "Failed": "Failed"}.get(group_state, "Offline")
        self.cluster = Cluster(self.cluster_name, c.get("group", "SSO"), c.get("resource", ENTSSO), nodes, owner,
                               base_online=group_state != "Offline", resource_state=resource_state)
        self.topo = Topology(self, c)  # the group's other resources, the other roles (entsso/lab/cluster.py)
        self.topo.install_services(Service, HostInstance)
        # ENTSSO as it runs when the lab starts: the clustered instance on the owner, SCM on BizTalk servers
        if self.cluster.resource_state == "Online" and owner.upper() in self._h:
            o = self._h[owner.upper()]
            if o.node_state == "Up":
                o.services[ENTSSO].status = "Running"
                o.entsso_identity, o.entsso_clustered, o.secret_cache = self._clustered_identity(o), True, True
                self.cluster.online_epoch[o.name.upper()] = 0
            else:
                self.cluster.resource_state = "Offline"
        for s in servers:
            h = self._h[s["name"].upper()]
            if s.get("entsso", "Running") == "Running":
                h.services[ENTSSO].status = "Running"
                h.entsso_identity, h.secret_cache = h.name, bool(secret_on)  # it synced before the lab began
        for n in nodes:  # a node listed down is down from the start
            if self._h[n.upper()].node_state == "Down":
                self._h[n.upper()].services[ENTSSO].status = "Stopped"
        self.topo.start()
        booted = self.clock.now() - timedelta(seconds=BOOTED_BEFORE_LAB_SEC)
        for h in self._h.values():
            h.boot_time = booted
        for name, node_cfg in (up.get("nodes") or {}).items():  # a restart owed before the change
            owed = self._h.get(str(name).upper())
            if owed is not None and owed.name == name and (node_cfg or {}).get("pending_reboot"):
                owed.pending_reboot = True  # matched case-sensitively, as upgrade.nodes is
        self._prepare(scenario)

    def _prepare(self, scenario: dict[str, Any]) -> None:
        """prepared.yml: phases 1-2 were done by hand, so the change's secret backup is on the primary."""
        ticket = scenario.get("prepared_for_change")
        folder = self.sso_cfg.get("backup_folder")
        owner = self._host(self.cluster.owner) if self.cluster.owner else None
        if not ticket or not folder or owner is None:
            return
        label = re.sub(r"[^A-Za-z0-9_.-]", "_", str(ticket))
        path = f"{folder.rstrip(chr(92))}\\ENTSSO-{label}.bak"
        password = os.environ.get(scenario.get("prepared_secret_password_env", "ENTSSO_SECRET_PASSWORD"), "")
        data = self._backup_bytes(password, f"prepared for {ticket}")
        self._put_file(owner, path, data, self.clock.now())
        if password:
            self._passwords[hashlib.sha256(data).hexdigest()] = hashlib.sha256(password.encode()).hexdigest()

    # --- bookkeeping ------------------------------------------------------------------------------------
    @property
    def changes(self) -> int:
        with self._lock:
            self._advance()
            return self._changes

    def _change(self, host: str | None, what: str) -> None:
        self._changes += 1
        self._log.append({"time": _iso(self.clock.now()), "host": host, "what": what})
        del self._log[:-500]

    def _file_written(self, host: str, what: str) -> None:
        """A file the suite wrote in a backup folder (a change record, a secret backup): logged, and counted
        apart from `changes`, which counts what the estate runs as (services, cluster, SSO, installs): a
        rehearsal writes its own backup and a record round trip and changes nothing the estate runs."""
        self._files_written += 1
        self._log.append({"time": _iso(self.clock.now()), "host": host, "what": what})
        del self._log[:-500]

    def _now_iso(self) -> str | None:
        return _iso(self.clock.now())

    def _schedule(self, delay: float, what: str, action: Callable[[], None]) -> None:
        heapq.heappush(self._events, (self.clock.elapsed() + max(0.0, delay), next(self._seq), what, action))

    def _advance(self) -> None:
        """Apply every scheduled transition that is due (call with the lock held)."""
        while self._events and self._events[0][0] <= self.clock.elapsed():
            _, _, _, action = heapq.heappop(self._events)
            action()

    def _next_due(self) -> float | None:
        return self._events[0][0] - self.clock.elapsed() if self._events else None

    def _wait(self, done: Callable[[], bool], timeout: float) -> bool:
        """Poll `done` (under the lock) until true or `timeout` estate seconds; sleep outside the lock."""
        end = self.clock.elapsed() + timeout
        while True:
            with self._lock:
                self._advance()
                if done():
                    return True
                left = end - self.clock.elapsed()
                if left <= 0:
                    return False
                due = self._next_due()
            step = min(left, 1.0, due if due is not None and due > 0 else 1.0)
            self.clock.sleep(max(step, 0.01))

    def _host(self, name: str | None) -> Host | None:
        return self._h.get((name or "").upper())

    def _need(self, name: str) -> Host:
        h = self._host(name)
        if h is None:
            raise PSError(f"The lab has no host named '{name}'", "ObjectNotFound")
        return h

    # --- SSO rules -----------------------------------------------------------------------------------
    def _secret_server(self) -> str | None:
        try:
            name = self.sql.get_secret_server()
        except Exception:  # noqa: BLE001 - an unavailable SQL Server answers nothing
            return None
        if self._ss_seen is not None and not _same(name, self._ss_seen):
            self._ss_epoch += 1  # the secret server changed (whoever changed it)
        self._ss_seen = name
        return name

    def _sql_up(self) -> bool:
        try:
            return bool(self.sql.available)
        except Exception:  # noqa: BLE001
            return False

    def _reachable(self, h: Host) -> bool:
        return not h.rebooting and not (h.role == "node" and h.node_state == "Down")

    def _resolve(self, name: str | None) -> Host | None:
        """The host whose running ENTSSO answers as `name` (the cluster name resolves to the owner while
        the resource's instance runs there), reachable."""
        if not name:
            return None
        for h in self._h.values():
            if h.services[ENTSSO].status == "Running" and _same(h.entsso_identity, name) and self._reachable(h):
                return h
        return None

    def _is_mss(self, h: Host) -> bool:
        ss = self._secret_server()
        return h.services[ENTSSO].status == "Running" and _same(h.entsso_identity, ss)

    def _has_secret(self, h: Host) -> bool:
        """Can this running SSO server encrypt/decrypt? The MSS iff its registry holds the secret; any
        other from its cache, or from a fresh re-sync with a reachable MSS that holds it."""
        if h.services[ENTSSO].status != "Running":
            return False
        if self._is_mss(h):
            return h.holds_secret
        if h.secret_cache:
            return True
        mss = self._resolve(self._secret_server())
        if mss is not None and mss is not h and mss.holds_secret and self._is_mss(mss):
            h.secret_cache = True  # the 30-60 s re-sync: background, not an operator-visible change
        return h.secret_cache

    def _start_problem(self, h: Host) -> str | None:
        """Why this ENTSSO (as it would run now) cannot start, or None."""
        ss = self._secret_server()
        if not self._sql_up() or ss is None:
            return "SQL Server (SSODB) could not be reached"
        if _same(h.entsso_identity, ss):
            return None  # it is the MSS itself (it starts even without the secret)
        mss = self._resolve(ss)
        if mss is None or mss is h:
            return f"the master secret server {ss} could not be reached"
        return None

    def _start_error(self, h: Host, why: str) -> str:
        return (f"Service '{ENTSSO_DISPLAY}' cannot be started due to the following error: Cannot start service "
                f"ENTSSO on computer '.'. (ENTSSO on {h.name} gave up after 12 retries: {why}.)")

    def _logon_failure_error(self, h: Host) -> str:
        # Set-ServiceState.ps1's text around ServiceController.Start()'s innermost Win32Exception
        return (f"Service '{ENTSSO}' on {h.name} could not be started: {LOGON_FAILURE}. (Win32 error "
                f"{ERROR_SERVICE_LOGON_FAILED}) Look at the System event log (Service Control Manager) on {h.name}, "
                "then re-run.")

    def slow_next_start(self, seconds: float) -> None:
        """The `slow_start` fault: the next start of ENTSSO in the estate (SCM or cluster) takes `seconds`."""
        with self._lock:
            self._slow_next = seconds

    def _begin_entsso(self, h: Host, identity: str, clustered: bool, delay: float,
                      on_result: Callable[[bool, str | None], None] | None = None) -> None:
        """ENTSSO starts on h as `identity`: first attempt after `delay` (the host's own `start_sec` when the
        scenario gives one), then every 5 s until 60 s."""
        delay = h.start_sec if h.start_sec is not None else delay
        if self._slow_next is not None:  # a `slow_start` fault
            delay, self._slow_next = self._slow_next, None
        h.entsso_gen += 1
        gen = h.entsso_gen
        h.services[ENTSSO].status = "StartPending"
        h.entsso_identity, h.entsso_clustered, h.secret_cache, h.last_start_error = identity, clustered, False, None
        began = self.clock.elapsed()

        def attempt() -> None:
            if h.entsso_gen != gen or h.services[ENTSSO].status != "StartPending":
                return
            why = self._start_problem(h)
            if h.logon_failure:  # the SCM cannot log the account on: no process, no retry (1069)
                h.services[ENTSSO].status = "Stopped"
                h.entsso_identity, h.entsso_clustered = None, False
                h.last_start_error = self._logon_failure_error(h)
                self._change(h.name, f"ENTSSO failed to start: {LOGON_FAILURE}")
                if on_result:
                    on_result(False, f"{LOGON_FAILURE} (Win32 error {ERROR_SERVICE_LOGON_FAILED})")
            elif why is None:
                h.services[ENTSSO].status = "Running"
                ss = self._secret_server()
                if _same(identity, ss):
                    h.secret_cache = h.holds_secret
                else:
                    mss = self._resolve(ss)
                    h.secret_cache = bool(mss and mss.holds_secret)
                self._change(h.name, f"ENTSSO running as {identity}" + (" (clustered)" if clustered else ""))
                if on_result:
                    on_result(True, None)
            elif self.clock.elapsed() - began + START_RETRY_SEC <= max(START_GIVE_UP_SEC, delay) + 1e-6:
                self._schedule(START_RETRY_SEC, f"ENTSSO retry on {h.name}", attempt)
            else:
                h.services[ENTSSO].status = "Stopped"
                h.entsso_identity, h.entsso_clustered = None, False
                h.last_start_error = self._start_error(h, why)
                self._change(h.name, f"ENTSSO failed to start: {why}")
                if on_result:
                    on_result(False, why)

        self._schedule(delay, f"ENTSSO start on {h.name}", attempt)

    def _stop_entsso_now(self, h: Host) -> None:
        h.entsso_gen += 1
        h.services[ENTSSO].status = "Stopped"
        h.entsso_identity, h.entsso_clustered, h.secret_cache = None, False, False

    # --- cluster rules -------------------------------------------------------------------------------
    def _group_state(self) -> str:
        c = self.cluster
        if c.moving or c.resource_state == "Pending" or self.topo.any_pending():
            return "Pending"
        if c.resource_state == "Online":
            if self.topo.any_pending():
                return "Pending"
            return "Online" if self.topo.all_online() else "PartialOnline"
        if c.resource_state == "Failed":
            return "Failed"
        return "PartialOnline" if c.base_online else "Offline"

    def _resource_online(self, node: Host, delay: float, why: str) -> None:
        """Bring the ENTSSO resource online on `node` (the group's owner) after `delay`."""
        c = self.cluster
        c.gen += 1
        gen = c.gen
        c.resource_state, c.pending_to, c.base_online, c.last_error = "Pending", "Online", True, None
        svc = node.services[ENTSSO].status
        if svc in ("Running", "StartPending") and not node.entsso_clustered:
            # ENTSSO already runs through the SCM: the cluster adopts the process, which keeps the node's
            # computer name (it was started without the network-name environment)
            def adopt() -> None:
                if c.gen != gen:
                    return
                c.resource_state, c.pending_to, c.adopted_scm_process = "Online", None, True
                node.entsso_clustered = True
                c.online_epoch[node.name.upper()] = self._ss_epoch
                self._change(node.name, f"resource {c.resource} Online around the SCM-started ENTSSO "
                                        f"(running as {node.entsso_identity}, not {c.name})")
            self._schedule(delay, f"resource online on {node.name}", adopt)
            return

        def result(ok: bool, problem: str | None) -> None:
            if c.gen != gen:
                return
            c.pending_to = None
            if ok:
                c.resource_state, c.adopted_scm_process = "Online", False
                self._secret_server()
                c.online_epoch[node.name.upper()] = self._ss_epoch
                self._change(node.name, f"resource {c.resource} Online ({why})")
            else:
                c.resource_state = "Failed"
                c.last_error = problem
                self._change(node.name, f"resource {c.resource} Failed: {problem}")
                if why.startswith("restart policy"):  # the cluster's own attempt failed: its policy goes on
                    self._restart_policy(node, f"ENTSSO did not start: {problem}")

        self._begin_entsso(node, self._clustered_identity(node), True, delay, result)
        # the resource's PendingTimeout: a Generic Service still starting then is failed by the cluster (its
        # service terminated), as any failed online: the same result, the same restart policy
        pending = float(self.cl_cfg.get("pending_timeout_sec", PENDING_TIMEOUT_SEC))
        started = node.entsso_gen

        def pending_timeout() -> None:
            if c.gen != gen or c.pending_to != "Online" or node.entsso_gen != started:
                return
            self._stop_entsso_now(node)
            node.last_start_error = None
            result(False, f"ENTSSO did not come online within the resource's PendingTimeout ({pending:g} s): "
                          "the cluster terminated it")

        self._schedule(pending, f"PendingTimeout of {c.resource} on {node.name}", pending_timeout)

    def _resource_offline_now(self) -> None:
        c = self.cluster
        c.gen += 1
        owner = self._host(c.owner)
        if owner and owner.entsso_clustered:
            self._stop_entsso_now(owner)
        c.resource_state, c.pending_to, c.adopted_scm_process = "Offline", None, False

    def _clustered_identity(self, node: Host) -> str:
        """The name the cluster's ENTSSO answers as: the network name with the Generic Service's
        UseNetworkName ("Use Network Name for computer name"), else the node's own name."""
        return self.cluster_name if self.cl_cfg.get("use_network_name", True) else node.name

    def _possible_owners(self) -> list[str]:
        """The ENTSSO resource's possible owners (Get-ClusterOwnerNode): `cluster.possible_owners`, else
        every node (what Add-ClusterGenericServiceRole sets)."""
        listed = self.cl_cfg.get("possible_owners")
        if listed is None:
            return list(self.cluster.nodes)
        return [n for n in self.cluster.nodes if any(_same(n, x) for x in listed)]

    def _can_own(self, name: str) -> bool:
        return any(_same(name, n) for n in self._possible_owners())

    def _fail_over_from(self, h: Host, keep_node_up: bool = False) -> None:
        """h went down while owning the group (or, `keep_node_up`, a resource's restart policy gave up on h):
        the cluster moves the group, with every resource of it, to another Up node."""
        c = self.cluster
        target = next((self._h[n.upper()] for n in self._possible_owners()
                       if n.upper() != h.name.upper() and self._h[n.upper()].node_state == "Up"
                       and self._reachable(self._h[n.upper()])), None)
        was_online = c.resource_state in ("Online", "Pending") and c.pending_to != "Offline"
        was = self.topo.leave(h, "failover" if not keep_node_up else "restart policy failover")
        self._resource_offline_now()
        if target is None:
            c.resource_state = "Offline"
            self._change(h.name, "group has no Up node to fail over to")
            return
        c.owner = target.name
        self._change(target.name, f"group {c.group} failed over to {target.name}")
        if was_online:
            self._resource_online(target, float(self.cl_cfg.get("resource_online_sec", 10)), "failover")
        self.topo.arrive(target, was)

    # --- public interface -------------------------------------------------------------------------------
    def is_reachable(self, host: str) -> bool:
        with self._lock:
            self._advance()
            h = self._host(host)
            return bool(h and self._reachable(h))

    def services_of(self, host: str) -> dict[str, str]:
        with self._lock:
            self._advance()
            h = self._host(host)
            return {n: s.status for n, s in h.services.items()} if h else {}

    def pause_node(self, name: str) -> None:
        """Suspend-ClusterNode (without -Drain): the node stays in the cluster, keeps what it owns, and no
        group may move to it or come online on it until it is resumed (PauseClusterNode)."""
        with self._lock:
            self._advance()
            h = self._need(name)
            if h.role != "node":
                raise PSError(f"{h.name} is not a node of cluster {self.cluster.name}", "ObjectNotFound")
            if h.node_state == "Up":
                h.node_state = "Paused"
                self._change(h.name, "cluster node paused (Suspend-ClusterNode)")

    def operator_instruct(self, host: str, version: str) -> None:
        with self._lock:
            self._advance()
            h = self._need(host)
            h.install_gen += 1
            gen = h.install_gen
            delay = float(self.up_cfg.get("operator_delay_sec", 60))
            setup = float(self.up_cfg.get("setup_sec", 120))
            self._log.append({"time": _iso(self.clock.now()), "host": h.name,
                              "what": f"operator told to upgrade SSO to {version}"})

            def start_setup() -> None:
                if h.install_gen != gen:
                    return
                h.installing = True
                if h.services[ENTSSO].status != "Stopped":
                    self._scm_stop_entsso(h, "ESSO Setup stops ENTSSO")
                self._change(h.name, "operator started ESSO Setup (upgrade)")
                self._schedule(setup, f"ESSO Setup finishes on {h.name}", finish)

            def finish() -> None:
                if h.install_gen != gen:
                    return
                h.installing, h.version, h.pending_version = False, version, None
                self._change(h.name, f"ESSO Setup finished: SSO {version}")

            self._schedule(delay, f"operator starts Setup on {h.name}", start_setup)

    def operator_upgrade_now(self, host: str, version: str) -> None:
        with self._lock:
            self._advance()
            h = self._need(host)
            h.install_gen += 1
            if h.services[ENTSSO].status != "Stopped":
                self._scm_stop_entsso(h, "ESSO Setup stops ENTSSO")
            h.installing, h.version, h.pending_version = False, version, None
            self._change(h.name, f"operator upgraded SSO to {version}")

    def invoke(self, host: str, operation: str, params: dict[str, Any]) -> dict[str, Any]:
        handler = getattr(self, "_op_" + operation.replace("-", "_").lower(), None)
        with self._lock:
            key = f"{host} {operation}"
            self._received[key] = self._received.get(key, 0) + 1
            self._advance()
            h = self._host(host)
            if h is None:
                raise PSError(f"The lab has no host named '{host}'", "ObjectNotFound")
            if not self._reachable(h):
                raise PSError(f"{h.name} is not reachable (restarting or down)", "OperationTimeout")
        if handler is None:
            raise PSError(NOT_RECOGNIZED.format(operation), "ObjectNotFound")
        if isinstance(params.get("timeout_sec"), (int, float)):
            # the suite's waits are real seconds (it cannot know the lab runs fast); the estate's clock
            # runs `speed` estate seconds per real one
            params = {**params, "timeout_sec": float(params["timeout_sec"]) * self.clock.speed}
        return handler(h, params or {})

    # --- facts -------------------------------------------------------------------------------------------
    def _service_doc(self, h: Host, name: str) -> dict[str, Any]:
        s = h.services.get(name)
        if s is None:
            return {"exists": False, "status": None, "start_type": None, "logon_account": None}
        return {"exists": True, "status": s.status, "start_type": s.start_type, "logon_account": s.logon_account}

    def _msdtc_doc(self, h: Host) -> dict[str, Any]:
        """MSDTC's registry as Get-HostFacts reads it: the Security values (1 unless the host is in
        msdtc.network_access_off) and one contact identifier per endpoint description, derived from the host's
        name — or from the first host of msdtc.shared_cid when it is listed there (a cloned image)."""
        cfg = self.scenario.get("msdtc") or {}
        off = {str(x).upper() for x in cfg.get("network_access_off") or []}
        shared = [str(x).upper() for x in cfg.get("shared_cid") or []]
        source = shared[0] if h.name.upper() in shared else h.name.upper()
        value = 0 if h.name.upper() in off else 1
        return {"security": {"NetworkDtcAccess": value, "NetworkDtcAccessTransactions": value,
                             "NetworkDtcAccessInbound": value, "NetworkDtcAccessOutbound": value},
                "cids": [{"cid": "{" + str(uuid.uuid5(uuid.NAMESPACE_URL, f"lab-msdtc:{source}:{d}")).upper() + "}",
                          "description": d} for d in ("MSDTC", "MSDTCUIS", "MSDTCTIPGW", "MSDTCXATM")],
                "error": None}

    def _instance_state(self, h: Host, hi: HostInstance) -> str:
        if hi.host_type == "InProcess":
            return h.services[f"BTSSvc${hi.host_name}"].status
        return hi.state

    def _host_instances_doc(self, h: Host) -> list[dict[str, Any]]:
        return [{"name": f"Microsoft BizTalk Server {hi.host_name} {h.name}", "host_name": hi.host_name,
                 "running_server": h.name, "host_type": hi.host_type, "service_state": self._instance_state(h, hi),
                 "is_disabled": hi.disabled} for hi in h.host_instances]

    def _cluster_doc(self, want: dict[str, Any]) -> dict[str, Any]:
        c = self.cluster
        nodes = [{"name": n, "state": "Down" if self._h[n.upper()].rebooting else self._h[n.upper()].node_state}
                 for n in c.nodes]
        group: dict[str, Any] | None = ({"name": c.group, "state": self._group_state(), "owner_node": c.owner}
                 if _same(want.get("group") or c.group, c.group) else None)
        if group is not None:
            group["preferred_owners"] = list(self.cl_cfg.get("preferred_owners") or [])
            group["auto_failback_type"] = 1 if self.cl_cfg.get("auto_failback") else 0
        resource = ({"name": c.resource, "state": c.resource_state, "owner_node": c.owner,
                     "resource_type": "Generic Service", "service_name": ENTSSO,
                     "use_network_name": bool(self.cl_cfg.get("use_network_name", True)),
                     "possible_owners": self._possible_owners()}
                    if _same(want.get("resource") or c.resource, c.resource) else None)
        witness = self.cl_cfg.get("witness", "Online")
        quorum = {"type": "Majority", "witness": {"name": "File Share Witness", "state": witness}}
        return {"nodes": nodes, "group": group, "resource": resource, "quorum": quorum, **self.topo.cluster_doc()}

    def _op_get_clusterssoroles(self, h: Host, p: dict[str, Any]) -> dict[str, Any]:  # noqa: ARG002
        """Get-ClusterSsoRoles: on a node, the cluster and its one Generic Service resource (ENTSSO); on
        another machine, the FailoverClusters module is not there (Import-Module's own message)."""
        with self._lock:
            self._advance()
            if h.role != "node":
                return {"cluster_name": None, "nodes": [], "resources": [],
                        "error": "The specified module 'FailoverClusters' was not loaded because no valid module "
                                 "file was found in any module directory."}
            c = self.cluster
            doc = self._cluster_doc({})
            return {"cluster_name": c.name, "error": None, "nodes": doc["nodes"],
                    "resources": [{"name": c.resource, "group": c.group, "state": c.resource_state,
                                   "owner_node": c.owner, "resource_type": "Generic Service",
                                   "service_name": ENTSSO}]}

    def _displaydb(self, h: Host) -> dict[str, Any]:
        """`ssomanage -displaydb` on h as Get-HostFacts returns it: the text the tool prints (the published
        forms, entsso/lab/texts.py) and its exit code. It asks the SSO server h's tools use over RPC, as the
        WinRM logon: when that server is another machine, a second hop the lab's NTLM/Basic logons cannot
        make (texts.SECOND_HOP; a scenario's `displaydb_output` template still prints instead)."""
        server = self._resolve(h.tools_server)
        template = self.sso_cfg.get("displaydb_output")
        if server is None:
            out = texts.tool_error(h.tools_server, h.name, texts.COULD_NOT_CONTACT)
        elif server is not h and template is None:  # another machine's SSO server: a second hop (the
            out = texts.tool_error(h.tools_server, h.name, texts.SECOND_HOP)  # lab's WinRM is NTLM or Basic)
        elif not self._sql_up():
            out = texts.tool_error(h.tools_server, h.name, texts.SSODB_LOST)
        else:
            out = texts.displaydb(h.tools_server, h.name, sql_server=self.sql.server,
                                  database=self.sql.estate_name("SSODB"),  # as the estate names it
                                  secret_server=self._secret_server() or "", template=template)
        return self._served(h, "displaydb", {"exit_code": 0, "stdout": out, "stderr": "", "run_error": None})

    def _served(self, h: Host, tool: str, answer: dict[str, Any]) -> dict[str, Any]:
        """What a tool printed: a captured estate's own text while the state it describes holds (docs/lab.md,
        "A captured estate"), else the lab's."""
        return self.replay.answer(h.name, tool, answer) if self.replay is not None else answer

    def _op_get_hostfacts(self, h: Host, p: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            self._advance()
            names = list(p.get("services") or [])
            if p.get("biztalk"):  # Get-Service -Name 'BTSSvc$*': every in-process host instance's service
                names += [n for n in h.services if n.startswith("BTSSvc$") and n not in names]
            displaydb = self._displaydb(h) if h.sso_installed else None
            doc: dict[str, Any] = {
                "computer_name": h.name, "now_utc": _iso(self.clock.now() + h.clock_skew),
                "services": {n: self._service_doc(h, n) for n in names},
                "sso": {"installed": h.sso_installed, "version": h.version if h.sso_installed else None,
                        "displaydb": displaydb, "holds_secret": h.holds_secret},
                "cluster": self._cluster_doc(p["cluster"]) if p.get("cluster") and h.role == "node" else None,
                "package": None, "backup_folder": None, "secret_backup": None,
                "last_boot_utc": _iso(h.boot_time),
                "pending_restart": {"cbs_reboot_pending": h.pending_reboot, "wu_reboot_required": False,
                                    "pending_file_rename_operations": []},
                "msdtc": self._msdtc_doc(h),
            }
            asked = p.get("entsso_events") or {}
            if asked.get("ids"):  # Get-WinEvent -FilterHashtable: the asked ids within the asked hours, newest first
                ids = {int(i) for i in asked["ids"]}
                since = self.clock.now() - timedelta(hours=float(asked.get("hours", 24)))
                doc["entsso_events"] = {"events": [
                    {"id": e["id"], "time_utc": _iso(e["time"]), "message": e["message"]}
                    for e in sorted(h.events, key=lambda e: e["time"], reverse=True)
                    if e["id"] in ids and e["time"] >= since][:50], "error": None}
            probe = p.get("dtc_probe") or {}
            if probe.get("host"):  # a TCP connect to SQL Server's host, RPC endpoint mapper (MSDTC's first contact)
                closed = {str(x).upper() for x in (self.scenario.get("msdtc") or {}).get("sql_unreachable_from")
                          or []}
                sql_names = {str(e.server).split("\\")[0].upper()
                             for e in getattr(self, "sql_engines", None) or [self.sql]}
                known = str(probe["host"]).split(".")[0].upper() in sql_names
                # as the script returns it: a dropped SYN (a firewall) is a connect that did not complete within its
                # bound; an unknown name fails at once with .NET's SocketException text
                dropped = known and h.name.upper() in closed
                doc["dtc_probe"] = {"host": probe["host"], "port": probe.get("port", 135),
                                    "completed": not dropped, "connected": known and not dropped,
                                    "error": None if known else "No such host is known."}
            warned = p.get("entsso_warnings") or {}
            if warned:  # Get-WinEvent -FilterHashtable @{ProviderName='ENTSSO'; Level=3; StartTime}: any id
                since = self.clock.now() - timedelta(hours=float(warned.get("hours", 24)))
                doc["entsso_warnings"] = {"events": [
                    {"id": e["id"], "time_utc": _iso(e["time"]), "message": e["message"]}
                    for e in sorted(h.events, key=lambda e: e["time"], reverse=True)
                    if e.get("level") == "Warning" and e["time"] >= since][:50], "error": None}
            if p.get("package") and p["package"].get("path"):
                path = p["package"]["path"]
                f = self._file(h, path)
                doc["package"] = {"path": path, "exists": f is not None,
                                  "file_version": str(self.up_cfg.get("target_version")) if f else None}
            if p.get("backup_folder"):
                folder = p["backup_folder"]
                exists = folder.rstrip("\\").upper() in h.folders
                writable = exists and not self._read_only(h, folder + "\\x")  # the script's probe file is refused
                doc["backup_folder"] = {"path": folder, "exists": exists, "writable": writable}
            if p.get("change_records_folder"):
                folder = p["change_records_folder"].rstrip("\\").upper() + "\\"
                doc["change_records"] = [
                    {"path": f.path, "text": f.data.decode("utf-8"), "last_write_utc": _iso(f.mtime)}
                    for key, f in sorted(h.files.items())
                    if key.startswith(folder + "ENTSSO-") and key.endswith(".CHANGE.JSON")
                    and "\\" not in key[len(folder):]]
            else:
                doc["change_records"] = []
            if p.get("secret_backup_file"):
                path = p["secret_backup_file"]
                f = self._file(h, path)
                doc["secret_backup"] = {"path": path, "exists": f is not None, "size": len(f.data) if f else 0,
                                        "last_write_utc": _iso(f.mtime) if f else None}
            return doc

    def _op_get_adapterhandlers(self, h: Host, p: dict[str, Any]) -> dict[str, Any]:
        """ISSOConfigStore.GetConfigInfo for each config asked for, through h's own SSO service. Run-time mode
        (SSO_FLAG_RUNTIME) uses only the local SSO server; admin mode asks the SSO server h's registry names
        (its tools_server), and when that is another machine the call is a second hop the WinRM NTLM logon
        cannot make: the remote SSO server refuses the anonymous caller (E_ACCESSDENIED, docs/domain-notes.md)."""
        with self._lock:
            self._advance()
            if not h.sso_installed:
                raise PSError(f"Enterprise SSO is not installed on {h.name} ('C:\\Program Files\\Common Files\\"
                              "Enterprise Single Sign-On\\Microsoft.EnterpriseSingleSignOn.Interop.dll' is missing); "
                              "read the adapter handlers on the node that owns the SSO group.", "ObjectNotFound")
            runtime = bool(int(p.get("flags") or 0) & SSO_FLAG_RUNTIME)
            code, error = None, None
            remote = None if runtime else self._resolve(h.tools_server)
            if not runtime and remote is None:
                code, error = ERR_CONTACT, contact_error(h.tools_server or h.name)
            elif remote is not None and remote is not h:
                code, error = ERR_ACCESS_DENIED, ACCESS_DENIED_TEXT  # the second hop
            elif h.services[ENTSSO].status != "Running":
                code, error = ERR_CONTACT, contact_error(h.name)
            elif not self._has_secret(h):
                code, error = ERR_NO_SECRET, NO_SECRET_ERROR
            elif h.cannot_decrypt:
                code, error = ERR_BAD_DATA, BAD_DATA_TEXT
            known = {(c["adapter"].lower(), c["config_id"].upper()): c for c in adapter_configs(self.bt_cfg)
                     if c["in_sso"]}
            reads = []
            for c in p.get("configs") or []:
                app, ident = str(c.get("application", "")), str(c.get("identifier", ""))
                cfg = known.get((app.lower(), ident.upper()))
                one_code, one_error = (code, error) if code else (None, None)
                if cfg is None and not one_code:
                    one_code, one_error = ERR_INVALID_ARG, INVALID_ARG_TEXT
                reads.append({"application": app, "identifier": ident,
                              "property_count": None if one_code or cfg is None else cfg["properties"],
                              "hresult": one_code, "error": one_error})
            return {"computer_name": h.name, "reads": reads}

    def _op_read_file(self, h: Host, p: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            f = self._file(h, p["path"])
            if f is None:
                raise PSError(f"Cannot find path '{p['path']}' because it does not exist.", "ObjectNotFound")
            return {"path": f.path, "size": len(f.data), "last_write_utc": _iso(f.mtime),
                    "content_b64": base64.b64encode(f.data).decode()}

    # --- files ---------------------------------------------------------------------------------------
    def _file(self, h: Host, path: str) -> File | None:
        return h.files.get(path.upper())

    def _put_file(self, h: Host, path: str, data: bytes, when: datetime) -> File:
        f = File(path, data, when + h.clock_skew)  # NTFS stamps the write with the host's own clock
        h.files[path.upper()] = f
        return f

    def _read_only(self, h: Host, path: str) -> bool:
        """Whether `path` is in a folder the WinRM account may not write (sso.hosts.<H>.backup_folder_read_only)."""
        folder = str(self.sso_cfg.get("backup_folder") or "").rstrip("\\").upper()
        return h.read_only_backup_folder and bool(folder) and self._folder_of(path) == folder

    def _folder_of(self, path: str) -> str:
        return path.rsplit("\\", 1)[0].upper() if "\\" in path else ""

    def _op_write_file(self, h: Host, p: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            path = p["path"]
            data = base64.b64decode(p.get("content_b64") or "")
            old = self._file(h, path)
            if old is not None and old.data == data:
                return {"path": old.path, "size": len(old.data), "last_write_utc": _iso(old.mtime)}
            if self._read_only(h, path):  # [IO.File]::WriteAllBytes as PowerShell reports a .NET exception
                denied = ACCESS_DENIED_PATH.format(path=path)
                raise PSError(f'Exception calling "WriteAllBytes" with "2" argument(s): "{denied}"',
                              "UnauthorizedAccessException")
            h.folders.add(self._folder_of(path))
            f = self._put_file(h, path, data, self.clock.now())
            self._file_written(h.name, f"wrote {path} ({len(data)} bytes)")
            return {"path": f.path, "size": len(data), "last_write_utc": _iso(f.mtime)}

    # --- services --------------------------------------------------------------------------------------
    def _scm_stop_entsso(self, h: Host, why: str) -> None:
        """Stop ENTSSO on h through the SCM (immediately; callers model the stop time)."""
        c = self.cluster
        clustered_here = h.entsso_clustered and _same(c.owner, h.name) and c.resource_state in ("Online", "Pending")
        self._stop_entsso_now(h)
        self._change(h.name, f"ENTSSO stopped ({why})")
        if clustered_here:
            # the cluster sees its Generic Service stop behind its back (its health check is a query of
            # the SCM): the resource fails, and the resource's restart policy takes over
            gen = c.gen

            def notice() -> None:
                if c.gen != gen or not _same(c.owner, h.name):
                    return
                self._change(h.name, f"cluster: resource {c.resource} Failed (ENTSSO stopped outside the cluster)")
                self._restart_policy(h, f"ENTSSO stopped outside the cluster ({why})")

            self._schedule(CLUSTER_NOTICE_SEC, f"cluster notices ENTSSO stopped on {h.name}", notice)

    def _policy(self, node: str, what: str) -> None:
        self.cluster.policy_log.append({"time": _iso(self.clock.now()), "node": node, "what": what})
        self._change(node, f"cluster restart policy: {what}")

    def _restart_policy(self, h: Host, why: str) -> None:
        """The ENTSSO resource failed on its owner h. As a real cluster with RestartAction
        ClusterResourceRestartNotify (the default): restart it on h up to `restart_threshold` times within
        `restart_period_sec`; past that, fail the group over to another node that can own it, at most
        `failover_threshold` times in FailoverPeriod (6 h); past that, leave the group Failed."""
        c = self.cluster
        cfg = self.cl_cfg
        now = self.clock.elapsed()
        c.gen += 1
        gen = c.gen
        c.resource_state, c.pending_to, c.last_error = "Failed", None, why
        threshold = int(cfg.get("restart_threshold", RESTART_THRESHOLD))
        period = float(cfg.get("restart_period_sec", RESTART_PERIOD_SEC))
        c.restarts = [t for t in c.restarts if now - t < period]
        if len(c.restarts) < threshold and h.node_state == "Up" and self._reachable(h):
            c.restarts.append(now)
            self._policy(h.name, f"restart {len(c.restarts)} of {threshold} within {period:g} s on {h.name} ({why})")

            def restart() -> None:
                if c.gen != gen or not _same(c.owner, h.name):
                    return  # taken offline, moved or restarted by someone else meanwhile
                if h.installing:
                    self._change(h.name, f"cluster: {c.resource} cannot start (ESSO Setup is running on {h.name})")
                    self._restart_policy(h, "ENTSSO cannot start while ESSO Setup runs")
                    return
                self._resource_online(h, float(cfg.get("resource_online_sec", 10)), "restart policy")

            self._schedule(CLUSTER_RESTART_SEC, f"cluster restarts {c.resource} on {h.name}", restart)
            return
        limit = int(cfg.get("failover_threshold", max(0, len(c.nodes) - 1)))
        c.failovers = [t for t in c.failovers if now - t < FAILOVER_PERIOD_SEC]
        target = next((self._h[n.upper()] for n in self._possible_owners()
                       if n.upper() != h.name.upper() and self._h[n.upper()].node_state == "Up"
                       and self._reachable(self._h[n.upper()])), None)
        if target is None or len(c.failovers) >= limit:
            reason = ("no other node can own it" if target is None
                      else f"{len(c.failovers)} failover(s) of {limit} allowed in {FAILOVER_PERIOD_SEC / 3600:g} h")
            self._policy(h.name, f"restart threshold {threshold} passed on {h.name}; group {c.group} left Failed "
                                 f"({reason})")
            return
        c.failovers.append(now)
        c.restarts = []
        was = self.topo.leave(h, "restart policy failover")
        self._resource_offline_now()
        c.resource_state, c.last_error = "Failed", why
        c.owner = target.name
        self.topo.arrive(target, was)
        self._policy(h.name, f"restart threshold {threshold} passed on {h.name}: group {c.group} failed over to "
                             f"{target.name} (failover {len(c.failovers)} of {limit})")
        self._resource_online(target, float(cfg.get("resource_online_sec", 10)), "restart policy failover")

    def _start_service(self, h: Host, name: str) -> None:
        """Start a service (lock held): schedule it to reach Running, or raise why it cannot."""
        s = h.services[name]
        if s.start_type == "Disabled":
            raise PSError(f"Service '{name}' cannot be started on {h.name}: it is disabled.", "InvalidOperation")
        if name == ENTSSO:
            if h.installing:
                raise PSError(self._start_error(h, "ESSO Setup is running on this machine"))
            if h.logon_failure:  # StartService fails at once: the SCM could not log the account on
                h.last_start_error = self._logon_failure_error(h)
                self._change(h.name, f"ENTSSO start refused by the SCM: {LOGON_FAILURE}")
                raise PSError(h.last_start_error)
            self._begin_entsso(h, h.name, False, float(self.sso_cfg.get("service_start_sec", 15)))
            self._change(h.name, "ENTSSO start requested (SCM)")
            return
        if name.startswith("BTSSvc$") and h.services[ENTSSO].status != "Running":
            # Windows would start ENTSSO first and fail with 1068 only if it cannot start; the lab always fails
            # (the stricter choice: a start order that relies on the SCM shows here; docs/domain-notes.md)
            raise PSError(f"Service '{name}' cannot be started due to the following error: Cannot start service "
                          f"{name} on computer '.'. ({SCM_1068} ENTSSO on {h.name} is {h.services[ENTSSO].status}.)")
        delay = float(self.bt_cfg.get("host_instance_start_sec", 10) if name.startswith("BTSSvc$")
                      else self.sso_cfg.get("service_start_sec", 15))
        s.status = "StartPending"
        self._change(h.name, f"{name} start requested")

        def done() -> None:
            if s.status == "StartPending":
                s.status = "Running"
                self._change(h.name, f"{name} Running")

        self._schedule(delay, f"{name} starts on {h.name}", done)

    def _stop_service(self, h: Host, name: str) -> None:
        s = h.services[name]
        key = f"{h.name} {name} stop"
        self._controls[key] = self._controls.get(key, 0) + 1
        if name == ENTSSO:
            delay = float(self.sso_cfg.get("service_stop_sec", 5))
            s.status = "StopPending"
            h.entsso_gen += 1
            gen = h.entsso_gen
            self._change(h.name, "ENTSSO stop requested (SCM)")

            def done() -> None:
                if h.entsso_gen == gen and s.status == "StopPending":
                    self._scm_stop_entsso(h, "SCM stop")

            self._schedule(delay, f"ENTSSO stops on {h.name}", done)
            return
        delay = float(self.bt_cfg.get("host_instance_stop_sec", 5) if name.startswith("BTSSvc$")
                      else self.sso_cfg.get("service_stop_sec", 5))
        inst = self._instance_of(h, name)
        if inst is not None and inst.stop_sec is not None:
            delay = inst.stop_sec
        s.status = "StopPending"
        self._change(h.name, f"{name} stop requested")

        def done2() -> None:
            if s.status == "StopPending":
                s.status = "Stopped"
                self._change(h.name, f"{name} Stopped")
                if h.role == "node":  # a clustered service stopped behind the cluster's back
                    self.topo.scm_stopped(h, name)

        self._schedule(delay, f"{name} stops on {h.name}", done2)

    def _instance_of(self, h: Host, service: str) -> HostInstance | None:
        return next((i for i in h.host_instances if f"BTSSvc${i.host_name}" == service), None)

    def _set_service(self, h: Host, name: str, want: str, timeout: float) -> dict[str, Any]:
        with self._lock:
            self._advance()
            s = h.services.get(name)
            if s is None:
                raise PSError(f"Service '{name}' was not found on {h.name}", "ObjectNotFound")
            if want not in ("Running", "Stopped"):
                raise PSError(f"Set-ServiceState: status must be Running or Stopped, not '{want}'", "InvalidArgument")
            before = s.status
            if name == ENTSSO and want == "Stopped" and before != want:
                # as Set-ServiceState.ps1 (the SCM itself would answer 1051, ERROR_DEPENDENT_SERVICES_RUNNING):
                # ENTSSO is not stopped while a BTSSvc$ that depends on it is anything but Stopped
                running = [n for n, d in h.services.items() if n.startswith("BTSSvc$") and d.status != "Stopped"]
                if running:
                    raise PSError(f"Service '{name}' on {h.name} has running dependent services "
                                  f"({', '.join(running)}); stop them first (for BTSSvc$ services: stop the BizTalk "
                                  "host instances), then re-run.")
            if want == "Stopped" and before == "StartPending":
                # as Set-ServiceState.ps1: a service still starting takes no stop control (SCM 1061); it is
                # returned as found, and the script goes no further down its list
                return {"name": name, "status_before": before, "status": before, "changed": False}
            target_pending = "StartPending" if want == "Running" else "StopPending"
            acted = False
            if s.status not in (want, target_pending):
                if want == "Running":
                    self._start_service(h, name)
                else:
                    self._stop_service(h, name)
                acted = True
        ok = self._wait(lambda: s.status in (want, "Stopped" if want == "Running" else want), timeout)
        with self._lock:
            self._advance()
            if s.status != want:
                if name == ENTSSO and want == "Running" and s.status == "Stopped" and h.last_start_error:
                    raise PSError(h.last_start_error)
                if not ok or s.status != want:
                    raise PSError(f"{name} on {h.name} did not reach {want} within {timeout:g} s "
                                  f"(last state: {s.status})", "OperationTimeout")
            return {"name": name, "status_before": before, "status": s.status, "changed": acted}

    def _op_set_servicestate(self, h: Host, p: dict[str, Any]) -> dict[str, Any]:
        timeout = float(p.get("timeout_sec", 120))
        out = []
        for w in p.get("services") or []:
            out.append(self._set_service(h, w["name"], w["status"], timeout))
            if out[-1]["status"] == "StartPending" and w["status"] == "Stopped":
                break  # the script's `break`: the rest waits for the caller's next call
        return {"services": out}

    # --- SSO operations ---------------------------------------------------------------------------------
    def _op_set_ssoserver(self, h: Host, p: dict[str, Any]) -> dict[str, Any]:
        """Set-SsoServer as it returns: `ssomanage -displaydb` before and after `-serverall` (their first
        line names the server the tools use) and -serverall's own text, which is not published: the lab
        prints nothing for it. Writing the value the machine already has changes nothing."""
        with self._lock:
            self._advance()
            server = p["server"]
            before = self._displaydb(h)
            if (h.tools_server or "").upper() != server.upper():  # Windows names are case-insensitive
                h.tools_server = server
                self._change(h.name, f"ssomanage -serverall {server}")
            serverall = {"exit_code": 0, "stdout": "", "stderr": "", "run_error": None}
            return {"computer_name": h.name, "before": before, "serverall": serverall, "after": self._displaydb(h)}

    def _op_update_ssodatabase(self, h: Host, p: dict[str, Any]) -> dict[str, Any]:
        """`ssomanage -updatedb` as Update-SsoDatabase returns it: the tool's text and exit code. Its failures
        print the published ERROR lines (entsso/lab/texts.py); its success text is not published, so the
        lab prints only the server line, and the suite reads SSODB to see the move."""
        with self._lock:
            self._advance()
            name = p["secret_server"]
            server = self._resolve(h.tools_server)
            if server is None:
                out = texts.tool_error(h.tools_server, h.name, texts.COULD_NOT_CONTACT)
            elif server is not h:  # another machine's SSO server: a second hop
                out = texts.tool_error(h.tools_server, h.name, texts.SECOND_HOP)
            elif not self._sql_up():
                out = texts.tool_error(h.tools_server, h.name, texts.SSODB_LOST)
            else:
                before = self._secret_server()
                if not _same(before, name):
                    self.sql.set_secret_server(name)
                    self._ss_epoch += 1
                    self._ss_seen = name
                    self._change(h.name, f"ssomanage -updatedb: secret server {before} -> {name}")
                out = texts.using(h.tools_server, h.name)
            return self._served(h, "updatedb", {"exit_code": 0, "stdout": out, "stderr": ""})

    def _backup_bytes(self, password: str, reminder: str) -> bytes:
        seed = hashlib.sha256(b"lab-master-secret:" + self.cluster_name.encode()).digest()
        salt = os.urandom(16)
        key = hashlib.sha256(salt + password.encode()).digest()
        body = bytes(a ^ b for a, b in zip(seed, key, strict=True))  # two sha256 digests
        return b"SSOBK1" + salt + body + reminder.encode("utf-8")[:200]

    def _op_backup_mastersecret(self, h: Host, p: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            self._advance()
            # the script's own checks come first, before it asks SSO anything (Backup-MasterSecret.ps1)
            path, password = p["file"], str(p.get("password") or "")
            if not password:
                raise PSError("Backup-MasterSecret: a password is required to protect the backup", "InvalidArgument")
            if self._folder_of(path) not in h.folders:
                raise PSError(f"Could not find a part of the path '{path}'.", "ObjectNotFound")
            if self._file(h, path) is not None:
                raise PSError(f"Secret backup file '{path}' already exists on {h.name}; it is never overwritten. "
                              "Move it away or choose another file name, then re-run.", "ResourceExists")
            if h.services[ENTSSO].status != "Running":
                raise PSError(f"{contact_error(h.name)} (Backup-MasterSecret: ENTSSO is not running on {h.name})")
            if not self._is_mss(h):
                raise PSError(f"This operation can only be run on the master secret server "
                              f"({self._secret_server()}); {h.name}'s ENTSSO runs as {h.entsso_identity}.")
            if not h.holds_secret:
                raise PSError(NO_SECRET_ERROR)
            if self._read_only(h, path):  # BackupSecret's COM call fails; the script rethrows its innermost error
                raise PSError(f"SSO refused to back up the master secret on {h.name} (0x80070005): "
                              f"{ACCESS_DENIED_COM}. "
                              "Run this on the master secret server (ssomanage -displaydb shows it) as an SSO "
                              "administrator.", "UnauthorizedAccessException")
            data = self._backup_bytes(password, str(p.get("reminder") or ""))
            if h.backup_written_damaged:  # what reaches the disk is cut short; SSO reported success
                data = data[:len(data) // 3]
            f = self._put_file(h, path, data, self.clock.now())
            self._passwords[hashlib.sha256(data).hexdigest()] = hashlib.sha256(password.encode()).hexdigest()
            self._file_written(h.name, f"master secret backed up to {path}")
            return {"file": f.path, "size": len(data), "last_write_utc": _iso(f.mtime)}

    def _op_read_secretbackup(self, h: Host, p: dict[str, Any]) -> dict[str, Any]:
        """Read-SecretBackup: GetFilePasswordReminder reads the reminder from the file itself (Learn); a file
        cut short has none to give (SSO's error text for it is not published: the lab's is composed from
        NTE_BAD_DATA, UNCONFIRMED), and a restore from it fails the same way."""
        with self._lock:
            path = str(p["file"])
            f = self._file(h, path)
            if f is None:
                raise PSError(f"Cannot find path '{path}' because it does not exist.", "ObjectNotFound")
            reminder, error = self._backup_reminder(f.data), None
            if reminder is None:
                error = {"hresult": "0x80090005", "message": "Bad Data."}
            return {"file": f.path, "size": len(f.data), "sha256": hashlib.sha256(f.data).hexdigest().upper(),
                    "reminder": reminder, "reminder_error": error}

    @staticmethod
    def _backup_reminder(data: bytes) -> str | None:
        """The reminder a lab backup carries after its header and body (_backup_bytes); None: not a whole backup."""
        if not data.startswith(b"SSOBK1") or len(data) < 6 + 16 + 32:
            return None
        return data[6 + 16 + 32:].decode("utf-8", "replace")

    def _op_restore_mastersecret(self, h: Host, p: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            self._advance()
            path, password = p["file"], str(p.get("password") or "")
            f = self._file(h, path)
            if f is None:
                raise PSError(f"Cannot find file '{path}' on {h.name}.", "ObjectNotFound")
            if self._backup_reminder(f.data) is None:  # a damaged backup restores nothing
                raise PSError(f"ERROR: 0x80090005 : Bad Data. (the master secret backup {path} cannot be read)")
            want = self._passwords.get(hashlib.sha256(f.data).hexdigest())
            if want is not None and want != hashlib.sha256(password.encode()).hexdigest():
                # (verify) the exact text SSO gives; this is Win32 ERROR_INVALID_PASSWORD's
                raise PSError("ERROR: 0x80070056 : The specified network password is not correct. "
                              f"(the password does not open the master secret backup {path})")
            if h.services[ENTSSO].status != "Running":
                raise PSError(f"{contact_error(h.name)} (Restore-MasterSecret goes through the local ENTSSO)")
            if not self._is_mss(h):
                raise PSError(f"This operation can only be run on the master secret server "
                              f"({self._secret_server()}); {h.name}'s ENTSSO runs as {h.entsso_identity}.")
            c = self.cluster
            if h.entsso_clustered and c.online_epoch.get(h.name.upper()) != self._ss_epoch:
                raise PSError(f"The master secret could not be restored on {h.name}: the ENTSSO cluster resource "
                              "has not been taken offline and brought online on this node since the master "
                              f"secret server changed to {self._secret_server()}. Cycle the resource "
                              "offline/online on this node, then restore again.")
            changed = not h.holds_secret
            if changed:  # restoring the same secret again leaves the registry as it was
                h.holds_secret = True
                self._change(h.name, f"master secret restored from {path}")
            if h.restore_cannot_decrypt:  # KB 3000847: the restore succeeds, SSO then cannot decrypt
                h.events.append({"id": 10536, "level": "Warning", "message": EVENT_TEXT[10536],
                                 "time": self.clock.now()})
                if not h.cannot_decrypt:
                    h.cannot_decrypt = True
                    self._change(h.name, "ENTSSO cannot decrypt with the restored secret (event 10536, KB 3000847)")
            return {"holds_secret": True, "held_before": not changed}

    def _op_install_ssoupdate(self, h: Host, p: dict[str, Any]) -> dict[str, Any]:
        timeout = float(p.get("timeout_sec", 1800))
        log_path = p.get("log_path") or r"C:\Windows\Temp\entsso-update.log"
        with self._lock:
            self._advance()
            target = str(self.up_cfg.get("target_version"))
            if self._file(h, p["path"]) is None:  # as Install-SsoUpdate.ps1: it never starts msiexec
                raise PSError(f"Update package '{p['path']}' was not found on {h.name}; copy it there (the "
                              "inventory's package path), then re-run.", "ObjectNotFound")
            node_cfg = (self.up_cfg.get("nodes") or {}).get(h.name) or {}
            code = int(node_cfg.get("exit_code", (self.up_cfg.get("package") or {}).get("exit_code", 0)))
            if h.name in self.installer_exit:  # an injected fault wins over the scenario
                code = self.installer_exit[h.name]
            if h.version == target and h.pending_version is None:
                return {"exit_code": 0, "log_path": log_path, "version_after": h.version}
            if code in INSTALLER_REFUSES:
                # Windows Installer refuses before its execute sequence runs (1618: the _MSIExecute mutex
                # is held; 1619: the package cannot be opened; 1638: another version is installed): it
                # returns at once, stops no service and changes no file but its log
                self._msi_log(h, log_path, None)
                self._msi_log(h, log_path, code)
                self._log.append({"time": _iso(self.clock.now()), "host": h.name,
                                  "what": f"update package refused at once with exit code {code}: nothing changed"})
                return {"exit_code": code, "log_path": log_path, "version_after": h.version}
            h.install_gen += 1
            gen = h.install_gen
            h.installing = True
            self._msi_log(h, log_path, None)  # msiexec writes its verbose log as it starts
            entsso_before = h.services[ENTSSO].status
            scm_entsso_before = entsso_before == "Running" and not h.entsso_clustered
            if h.services[ENTSSO].status != "Stopped":
                self._scm_stop_entsso(h, "the update package stops ENTSSO")
            self._change(h.name, f"update package {p['path']} installing")
            setup = float(self.up_cfg.get("setup_sec", 120))

            def finish() -> None:
                if h.install_gen != gen:
                    return
                h.installing = False
                self._msi_log(h, log_path, code)
                if code == 0:
                    h.version = target
                elif code in (3010, 1641):
                    h.pending_version = target
                    if code == 1641:  # the installer initiated the restart (InitiateSystemShutdown with a timeout)
                        self._initiate_restart(h, f"the installer (exit code 1641) restarts {h.name}")
                self._change(h.name, f"update package finished with exit code {code}")
                if code not in (0, 3010, 1641):
                    # a failed installation is rolled back "to its original state": files as they were, and
                    # the services its StopServices stopped started again (docs/domain-notes.md)
                    self._change(h.name, f"update package rolled back (exit code {code}): version {h.version} "
                                 f"kept, ENTSSO {entsso_before} as before")
                    if scm_entsso_before and self._reachable(h):
                        self._begin_entsso(h, h.name, False, float(self.sso_cfg.get("service_start_sec", 15)))
                        self._change(h.name, "ENTSSO start requested (the installer's rollback)")

            self._schedule(setup, f"update package finishes on {h.name}", finish)
        if not self._wait(lambda: not h.installing or h.install_gen != gen, timeout):
            raise PSError(f"the update package on {h.name} did not finish within {timeout:g} s "
                          "(last state: installing)", "OperationTimeout")
        with self._lock:
            return {"exit_code": code, "log_path": log_path, "version_after": h.version}

    # --- reboot -----------------------------------------------------------------------------------------
    def _restart_delay(self) -> float:
        return float(self.up_cfg.get("restart_delay_sec", RESTART_DELAY_SEC))

    def _initiate_restart(self, h: Host, why: str) -> None:
        """A restart with a time-out (shutdown /r /t N; an installer's restart): the host keeps answering
        until the time-out ends, then goes down. One already pending is not scheduled twice (1190)."""
        if h.restart_pending or h.rebooting:
            return
        h.restart_pending = True
        self._schedule(self._restart_delay(), why, lambda: self._go_down(h))

    def _go_down(self, h: Host) -> None:
        h.restart_pending = False
        if h.rebooting:
            return
        h.rebooting = True
        owned = h.role == "node" and _same(self.cluster.owner, h.name)
        for s in h.services.values():
            s.status = "Stopped"
        self._stop_entsso_now(h)
        self._change(h.name, "restarting: down")
        if owned:
            self._fail_over_from(h)
        self._schedule(float(self.up_cfg.get("reboot_sec", 90)), f"{h.name} is back", lambda: self._come_back(h))

    def _come_back(self, h: Host) -> None:
        h.rebooting, h.installing = False, False
        h.boot_time = self.clock.now()
        h.pending_reboot = False
        if h.pending_version:
            h.version, h.pending_version = h.pending_version, None
        self._change(h.name, f"restarted: up (SSO {h.version})")
        for s in h.services.values():
            if s.start_type == "Automatic":
                if s.name == ENTSSO:
                    self._begin_entsso(h, h.name, False, float(self.sso_cfg.get("service_start_sec", 15)))
                elif s.name.startswith("BTSSvc$") and h.services[ENTSSO].status not in ("Running", "StartPending"):
                    continue
                else:
                    s.status = "Running"
        c = self.cluster
        if h.role == "node" and _same(c.owner, h.name) and c.resource_state == "Offline" and c.base_online:
            pass  # the group waited for this node; its resource stays as the operator left it
        elif h.role == "node" and h.node_state == "Up":
            self._maybe_fail_back(h)

    def _maybe_fail_back(self, h: Host) -> None:
        """AutoFailbackType allow (`cluster.auto_failback`): a node that comes back and is the group's most
        preferred owner (`cluster.preferred_owners`) gets the group back, as a move (the lab ignores the
        failback window: it fails back at once)."""
        c = self.cluster
        preferred = [n for n in self.cl_cfg.get("preferred_owners") or [] if self._host(n) is not None]
        if not self.cl_cfg.get("auto_failback") or not preferred or not _same(preferred[0], h.name) \
                or _same(c.owner, h.name) or c.moving or not self._can_own(h.name):
            return
        was_online = c.resource_state == "Online" or c.pending_to == "Online"
        old_owner = self._host(c.owner)
        was = self.topo.leave(old_owner, "failback") if old_owner is not None else []
        self._resource_offline_now()
        c.moving = True
        c.gen += 1
        gen = c.gen
        self._change(h.name, f"group {c.group} fails back to its preferred owner {h.name} (from {c.owner})")

        def arrive() -> None:
            if c.gen != gen:
                return
            c.moving, c.owner = False, h.name
            self._change(h.name, f"group {c.group} now owned by {h.name} (failback)")
            if was_online:
                self._resource_online(h, 0.0, "failback")
            self.topo.arrive(h, was)

        self._schedule(float(self.cl_cfg.get("move_sec", 20)), f"group fails back to {h.name}", arrive)

    def _op_restart_node(self, h: Host, p: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            self._advance()
            if not (h.restart_pending or h.rebooting):  # shutdown.exe: 1190 when one is already scheduled
                self._change(h.name, "Restart-Computer")
            self._initiate_restart(h, f"{h.name} restarts (shutdown /r /t {self._restart_delay():g})")
            return {"restarting": True}

    # --- cluster operations -----------------------------------------------------------------------------
    def _op_set_clusterresourcestate(self, h: Host, p: dict[str, Any]) -> dict[str, Any]:
        timeout = float(p.get("timeout_sec", 120))
        want = p.get("state")
        c = self.cluster
        with self._lock:
            self._advance()
            if h.role != "node":
                raise PSError(f"{h.name} is not a node of cluster {c.name}", "ObjectNotFound")
            other = self.topo.find(p.get("resource"))
            if other is None and not _same(p.get("resource"), c.resource):
                raise PSError(f"The cluster resource '{p.get('resource')}' could not be found.", "ObjectNotFound")
            if want not in ("Online", "Offline"):
                raise PSError(f"state must be Online or Offline, not '{want}'", "InvalidArgument")
            owner = self._need(c.owner)
            if other is not None:  # another resource of the SSO group (a clustered host instance, IIS)
                other_before = other.state
                other_acted = self.topo.set_state(owner, other, str(want))
        if other is not None:
            ok = self._wait(lambda: other.state in (want, "Failed"), timeout)
            with self._lock:
                self._advance()
                if other.state != want:
                    raise PSError(f"cluster resource {other.name} on {owner.name} did not reach {want} within "
                                  f"{timeout:g} s (last state: {other.state})", "OperationTimeout")
                return {"resource": other.name, "state_before": other_before, "state": other.state,
                        "owner_node": c.owner, "changed": other_acted}
        with self._lock:
            self._advance()
            before = c.resource_state
            acted = False
            if want == "Offline" and before != "Offline" and c.pending_to != "Offline":
                blocked = self.topo.refuse_entsso_offline(owner, f"Stop-ClusterResource {c.resource}")
                if blocked:
                    raise PSError(blocked)
                self.topo.entsso_offline(owner)
                acted = True
                c.gen += 1
                gen = c.gen
                c.resource_state, c.pending_to = "Pending", "Offline"
                self._change(owner.name, f"Stop-ClusterResource {c.resource}")

                def offline() -> None:
                    if c.gen == gen:
                        self._resource_offline_now()
                        self._change(owner.name, f"resource {c.resource} Offline")

                self._schedule(float(self.cl_cfg.get("resource_offline_sec", 5)) if before != "Failed" else 0.5,
                               f"resource offline on {owner.name}", offline)
            elif want == "Online" and before != "Online" and c.pending_to != "Online":
                if owner.node_state != "Up" or not self._reachable(owner):
                    raise PSError(f"Failed to bring resource '{c.resource}' online: its owner node {owner.name} "
                                  "is not Up.")
                acted = True
                self._change(owner.name, f"Start-ClusterResource {c.resource}")
                self._resource_online(owner, float(self.cl_cfg.get("resource_online_sec", 10)), "Start-ClusterResource")
        ok = self._wait(lambda: c.resource_state in (want, "Failed") and c.pending_to is None, timeout)
        with self._lock:
            self._advance()
            if c.resource_state == "Failed" and want == "Online":
                raise PSError(f"Failed to bring resource '{c.resource}' online on {c.owner}. The resource failed: "
                              f"the service ENTSSO could not start ({c.last_error}). Resource state: Failed.")
            if not ok or c.resource_state != want:
                raise PSError(f"cluster resource {c.resource} on {h.name} did not reach {want} within {timeout:g} s "
                              f"(last state: {c.resource_state})", "OperationTimeout")
            return {"resource": c.resource, "state_before": before, "state": c.resource_state,
                    "owner_node": c.owner, "changed": acted}

    def _op_move_clustergroup(self, h: Host, p: dict[str, Any]) -> dict[str, Any]:
        timeout = float(p.get("timeout_sec", 300))
        c = self.cluster
        with self._lock:
            self._advance()
            if h.role != "node":
                raise PSError(f"{h.name} is not a node of cluster {c.name}", "ObjectNotFound")
            if not _same(p.get("group"), c.group):
                raise PSError(f"The cluster group '{p.get('group')}' could not be found.", "ObjectNotFound")
            target = self._host(p.get("node"))
            before = c.owner
            if target is None or target.role != "node" or target.name.upper() not in {n.upper() for n in c.nodes} \
                    or target.node_state != "Up" or not self._reachable(target):
                state = "not a possible owner" if target is None or target.role != "node" else \
                    f"state {'Down' if target.rebooting else target.node_state}"
                raise PSError(f"An error occurred while moving the clustered role '{c.group}'. The node "
                              f"'{p.get('node')}' cannot own it ({state}).")
            if not self._can_own(target.name):
                raise PSError(f"An error occurred while moving the clustered role '{c.group}'. The node "
                              f"'{target.name}' cannot own it (not a possible owner of resource '{c.resource}': "
                              f"{', '.join(self._possible_owners()) or 'none'}).")
            state_before = self._group_state()
            # the states the caller accepts after the move, by the state before it (entsso/domain/cluster.py):
            # the cluster returns a moved group to the state it had (MoveClusterGroup remarks)
            table = p.get("states_after_move") or {"Online": ["Online"]}
            accept = [str(x) for x in table.get(state_before) or []]
            if not accept:
                raise PSError(f"Cluster group '{c.group}' is {state_before} on {before}: it is moved only from a "
                              f"state in states_after_move ({', '.join(table)}). Look at its resources in Failover "
                              "Cluster Manager, bring the group up there, then re-run.")
            acted = False
            if _same(before, target.name) and state_before in accept:
                return {"group": c.group, "owner_before": before, "owner_node": c.owner,
                        "state_before": state_before, "state": state_before, "changed": False}
            if not _same(before, target.name):
                old = self._need(before)
                blocked = self.topo.refuse_entsso_offline(old, f"Move-ClusterGroup {c.group}") \
                    if c.resource_state in ("Online", "Pending") else None
                if blocked:
                    raise PSError(f"An error occurred while moving the clustered role '{c.group}'. {blocked}")
                acted = True
                was_online = c.resource_state == "Online" or c.pending_to == "Online"
                was = self.topo.leave(old, f"Move-ClusterGroup {c.group} to {target.name}")
                self._resource_offline_now()
                c.moving = True
                c.gen += 1
                gen = c.gen
                self._change(target.name, f"Move-ClusterGroup {c.group} {old.name} -> {target.name}")
                move = float(self.cl_cfg.get("move_sec", 20))

                def arrive() -> None:
                    if c.gen != gen:
                        return
                    c.moving, c.owner = False, target.name
                    self._change(target.name, f"group {c.group} now owned by {target.name}")
                    if was_online:
                        self._resource_online(target, 0.0, "group moved")
                    self.topo.arrive(target, was)

                self._schedule(move, f"group arrives on {target.name}", arrive)
        ok = self._wait(lambda: not c.moving and (c.resource_state == "Failed" or (
            _same(c.owner, target.name) and self._group_state() in accept)), timeout)
        with self._lock:
            self._advance()
            if c.resource_state == "Failed":
                raise PSError(f"An error occurred while moving the clustered role '{c.group}'. The resource "
                              f"'{c.resource}' failed to come online on {c.owner}: {c.last_error}. "
                              "Group state: Failed.")
            if not ok:
                raise PSError(f"Cluster group '{c.group}' on {target.name} did not reach {' or '.join(accept)} within "
                              f"{timeout:g} s (state before the move: {state_before}; last state: "
                              f"{self._group_state()} on {c.owner})", "OperationTimeout")
            return {"group": c.group, "owner_before": before, "owner_node": c.owner, "state_before": state_before,
                    "state": self._group_state(), "changed": acted}

    # --- state dump --------------------------------------------------------------------------------------
    def dump(self) -> dict[str, Any]:
        with self._lock:
            self._advance()
            ss = self._secret_server()
            hosts = {}
            for h in self._h.values():
                hosts[h.name] = {
                    "role": h.role, "reachable": self._reachable(h), "rebooting": h.rebooting,
                    "restart_pending": h.restart_pending, "last_boot_utc": _iso(h.boot_time),
                    "pending_reboot": h.pending_reboot,
                    "node_state": h.node_state if h.role == "node" else None,
                    "services": {n: {"status": s.status, "start_type": s.start_type} for n, s in h.services.items()},
                    "sso": {"installed": h.sso_installed, "version": h.version, "pending_version": h.pending_version,
                            "installing": h.installing, "tools_server": h.tools_server,
                            "holds_secret": h.holds_secret, "running_as": h.entsso_identity,
                            "clustered_instance": h.entsso_clustered, "is_mss_now": self._is_mss(h),
                            "has_secret_now": self._has_secret(h), "secret_cache": h.secret_cache,
                            "last_start_error": h.last_start_error},
                    "host_instances": self._host_instances_doc(h),
                    "files": {f.path: {"size": len(f.data), "last_write_utc": _iso(f.mtime)} for f in h.files.values()},
                }
            c = self.cluster
            owner = self._host(c.owner)
            return {
                "hosts": hosts,
                "cluster": {"name": c.name, "nodes": [{"name": n, "state": self._h[n.upper()].node_state}
                                                      for n in c.nodes],
                            "group": {"name": c.group, "state": self._group_state(), "owner": c.owner},
                            "resource": {"name": c.resource, "state": c.resource_state, "owner": c.owner,
                                         "pending_to": c.pending_to, "last_error": c.last_error},
                            "clustered_entsso": {"host": owner.name if owner and owner.entsso_clustered else None,
                                                 "running_as": owner.entsso_identity if owner and
                                                 owner.entsso_clustered else None,
                                                 "adopted_scm_process": c.adopted_scm_process},
                            "online_epoch": dict(c.online_epoch), "secret_server_epoch": self._ss_epoch,
                            "possible_owners": self._possible_owners(),
                            "restart_policy": {"restarts_in_period": len(c.restarts),
                                               "failovers_in_period": len(c.failovers),
                                               "actions": list(c.policy_log)},
                            "topology": self.topo.dump()},
                "secret_server": ss,
                "operations": dict(self._received),
                "service_controls": dict(self._controls),
                "pending": [{"due_in_sec": round(e[0] - self.clock.elapsed(), 1), "what": e[2]}
                            for e in sorted(self._events)],
                "changes": self._changes,
                "files_written": self._files_written,
                "events": list(self._log),
            }

    def _msi_log(self, h: Host, path: str, code: int | None) -> None:
        """msiexec's verbose log: begun (code None), or ended with `code` (appended to what it began)."""
        now = self.clock.now()
        when = f"{now.month}/{now.day}/{now.year}  {now:%H:%M:%S}"
        if code is None:
            self._put_file(h, path, texts.msi_log_started(when).encode(), now)
            return
        f = self._file(h, path)
        head = f.data if f is not None else b""
        tail = texts.msi_log_ended(when, f"{now:%H:%M:%S}:{now.microsecond // 1000:03d}", code)
        self._put_file(h, path, head + tail.encode(), now)

    # --- network loss (entsso.lab.network decides when; these are what the cluster does) ------------------
    def network_isolated(self, name: str) -> str | None:
        """The cluster removes node `name` from its membership (heartbeats missed past the threshold): the
        others mark it Down, and the group it owned fails over (its clustered ENTSSO stops with it). Returns
        the state it had (Up, Paused), which it joins again in; None when it is no node or already Down."""
        with self._lock:
            self._advance()
            h = self._host(name)
            if h is None or h.role != "node" or h.node_state == "Down" or h.rebooting:
                return None
            before = h.node_state
            h.node_state = "Down"
            self._change(h.name, "cluster node removed from membership: heartbeats missed (event 1135)")
            if _same(self.cluster.owner, h.name):
                self._fail_over_from(h)
            return before

    def network_rejoined(self, name: str, state: str) -> None:
        """Node `name`'s network is back: it joins the cluster again in `state`; the group fails back only if
        failback is configured."""
        with self._lock:
            self._advance()
            h = self._host(name)
            if h is None or h.node_state != "Down":
                return
            h.node_state = state
            self._change(h.name, f"cluster node joined again ({state})")
            if state == "Up":
                self._maybe_fail_back(h)

    # --- a group that fails over on its own (the `group_failover` fault: entsso.lab.server) --------------------
    def group_failed_over(self) -> str | None:
        """A resource of the group failed past its restart threshold on the owner (RestartThreshold within
        RestartPeriod, then RestartAction "fail over"): the cluster moves the group to another Up possible owner
        with every resource of it, the owner staying Up. Returns the node the group was on, or None (no group
        owner: nothing to fail)."""
        with self._lock:
            self._advance()
            owner = self._host(self.cluster.owner) if self.cluster.owner else None
            if owner is None:
                return None
            self._fail_over_from(owner, keep_node_up=True)
            return owner.name


NOT_RECOGNIZED = ("The term '{0}' is not recognized as the name of a cmdlet, function, script file, or operable "
                  "program.")
