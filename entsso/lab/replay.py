"""A captured estate as a lab (`python -m entsso.lab serve --capture DIR`, docs/lab.md "A captured estate").

`load_capture(DIR)` reads a run's capture (entsso.change.capture: capture/inventory.json, winrm/*.json,
sql/*.json, ssomanage/*.txt) and derives from it a scenario shaped like the estate it was written on — hosts,
cluster, SSO, BizTalk, SQL Server and the update, each from the first answer the suite got — and the table of
captured tool texts per (host, tool). `ServedTexts`, bound to the lab's Estate, prints a captured text byte for
byte while the state it describes holds, and a text derived from it once the change has altered that state.
A capture that cannot shape a lab is refused (CaptureError) with the file or field it lacks.
"""
from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from entsso.lab import texts

SERVICE_PREFIX = "BTSSvc$"


class CaptureError(ValueError):
    """The capture cannot shape a lab: what is missing, and where it should have been."""


# The suite's reads a captured estate is shaped from, recognised as SQL Server would see them (the lab imports
# nothing of the suite): the words the statement must hold and the columns its answer carries.
READS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "secret_server": (("SSOX_GlobalInfo", "gi_SecretServer"), ("secret_server",)),
    "admin_group": (("SSOX_GlobalInfo", "gi_SSOAdminGroup"), ("admin_group",)),
    "sso_servers": (("SSOX_Servers",), ("server_name",)),
    "group_sso_server": (("adm_Group", "SSOServerName"), ("sso_server",)),
    "adapter_handlers": (("adm_ReceiveHandler", "adm_SendHandler"), ("kind", "adapter", "host_name", "config_id")),
    "jobs": (("sysjobs", "sysjobhistory"), ("name", "enabled", "last_run_status")),
    "agent": (("dm_server_services",), ("status",)),
    "backup_databases": (("admv_BackupDatabases",), ("database_name",)),
    "force_full_objects": (("OBJECT_ID", "adm_BackupSettings"), ("backup_settings",)),
    "force_full": (("adm_BackupSettings", "ForceFull"), ("force_full",)),
    "job_control": (("IS_SRVROLEMEMBER",), ("sysadmin", "agent_operator")),
    "job_owners": (("sysjobs", "owner_sid"), ("name", "owner")),
    "grants": (("HAS_PERMS_BY_NAME",), ("object_name", "granted")),
    "now": (("SYSUTCDATETIME",), ("now_utc", "now_local")),
}


def _read_of(statement: str, sets: list[list[dict[str, Any]]]) -> str | None:
    """Which of READS a captured statement is (None: one the lab does not shape itself from)."""
    rows = sets[0] if sets else []
    for read, (words, columns) in READS.items():
        if all(w.lower() in statement.lower() for w in words) and (not rows or all(k in rows[0] for k in columns)):
            return read
    return None


@dataclass(frozen=True)
class CapturedText:
    """One tool text as the capture kept it (selftest/transcripts' format: `# source:`, `# exit_code:`)."""

    path: Path
    text: str
    exit_code: int


@dataclass
class Capture:
    """What a capture folder holds, read once."""

    folder: Path
    inventory: dict[str, Any]
    facts: dict[str, dict[str, Any]]  # HOST (upper) -> the first Get-HostFacts document of that host
    facts_files: dict[str, str]
    handler_reads: list[dict[str, Any]]  # the first Get-AdapterHandlers document's reads
    sql: dict[str, list[list[dict[str, Any]]]]  # READS key -> the first answer's result sets
    texts: dict[tuple[str, str], CapturedText]  # (HOST upper, displaydb | updatedb) -> the first text
    exit_codes: dict[str, int] = field(default_factory=dict)  # NODE (upper) -> its update package's first exit code

    def rows(self, read: str) -> list[dict[str, Any]] | None:
        sets = self.sql.get(read)
        return None if sets is None else (sets[0] if sets else [])

    def need_rows(self, read: str, what: str) -> list[dict[str, Any]]:
        rows = self.rows(read)
        if rows is None:
            words = " and ".join(READS[read][0])
            raise CaptureError(f"{self.folder / 'sql'}: no answer to the statement that reads {what} (one naming "
                               f"{words}): the capture cannot say {what}")
        return rows


def _json(path: Path) -> dict[str, Any]:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise CaptureError(f"{path}: not readable as a captured document ({exc})") from None
    if not isinstance(doc, dict):
        raise CaptureError(f"{path}: not a captured document (a JSON object)")
    return doc


def _case(path: Path) -> tuple[CapturedText, str | None]:
    """A captured tool text: its header lines, then the text exactly as the tool printed it; and the host the
    `# source:` line names (the name the suite called it by, as the inventory gives it)."""
    raw = path.read_bytes().decode("utf-8")
    exit_code, host = 0, None
    while raw.startswith("# "):
        line, _, raw = raw.partition("\n")
        m = re.match(r"# exit_code: (-?\d+)", line) or re.match(r"# source: captured from (\S+) ", line)
        if m and line.startswith("# exit_code"):
            exit_code = int(m.group(1))
        elif m:
            host = m.group(1)
    return CapturedText(path, raw, exit_code), host


def _in_order(folder: Path, pattern: str) -> list[Path]:
    """A capture folder's files in call order: by the call number in their names (<n>-… or …-<n>[-part])."""
    def number(path: Path) -> int:
        m = re.match(r"(\d+)-", path.name) or re.search(r"-(\d+)(?:-[a-z]+)?$", path.stem)
        return int(m.group(1)) if m else 0
    return sorted(folder.glob(pattern), key=lambda p: (number(p), p.name))


_SOURCE = re.compile(r"captured from (\S+) at .* \(([A-Za-z]+-[A-Za-z]+)\)$")


def read_capture(folder: str | Path) -> Capture:
    """Read a capture folder (or the run folder that holds it): the first answer of each kind it shapes a lab
    from. CaptureError names what is missing."""
    root = Path(folder)
    if (root / "capture").is_dir() and not (root / "winrm").is_dir():
        root = root / "capture"  # the run folder was given
    if not root.is_dir():
        raise CaptureError(f"{root}: no such capture folder (reports/<run>/capture)")
    inv_path = root / "inventory.json"
    if not inv_path.exists():
        raise CaptureError(f"{inv_path} is missing: the capture does not say which hosts, cluster and SQL Server "
                           "the run was given (captures written before the inventory was kept cannot shape a lab; "
                           "re-run the rehearsal to write one)")
    inventory = _json(inv_path)
    facts: dict[str, dict[str, Any]] = {}
    facts_files: dict[str, str] = {}
    handler_reads: list[dict[str, Any]] | None = None
    for path in _in_order(root / "winrm", "*.json"):
        doc = _json(path)
        answer, source = doc.get("answer"), _SOURCE.search(str(doc.get("source") or ""))
        if not isinstance(answer, dict) or source is None:
            raise CaptureError(f"{path}: not a captured call (a `source` naming the host and the operation, and "
                               "its `answer` document)")
        host, operation = source.group(1).upper(), source.group(2)
        if operation == "Get-HostFacts" and host not in facts:
            facts[host], facts_files[host] = answer, path.name
        elif operation == "Get-AdapterHandlers" and handler_reads is None:
            handler_reads = list(answer.get("reads") or [])
    sql: dict[str, list[list[dict[str, Any]]]] = {}
    jobs_by_server: dict[str, list[dict[str, Any]]] = {}  # each instance's msdb answers for its own jobs
    for path in _in_order(root / "sql", "*.json"):
        doc = _json(path)
        sets = list(doc.get("sets") or [])
        read = _read_of(str(doc.get("statement", "")), sets)
        if read == "jobs":
            jobs_by_server.setdefault(str(doc.get("server") or ""), sets[0] if sets else [])
        elif read:
            sql.setdefault(read, sets)
    if jobs_by_server:
        sql["jobs"] = [[row for rows in jobs_by_server.values() for row in rows]]
    captured: dict[tuple[str, str], CapturedText] = {}
    for path in _in_order(root / "ssomanage", "*.txt"):
        word = path.stem.split("-", 1)[0]
        if word not in ("displaydb", "updatedb") or path.stem.endswith(("-before", "-after")):
            continue  # Set-SsoServer's before/after: a state the change made, not the first one
        text, host = _case(path)
        if host and (host.upper(), word) not in captured:
            captured[(host.upper(), word)] = text
    exit_codes: dict[str, int] = {}
    for path in _in_order(root / "msiexec", "exit-*.txt"):
        text, host = _case(path)
        if host:
            exit_codes.setdefault(host.upper(), text.exit_code)
    capture = Capture(root, inventory, facts, facts_files, handler_reads or [], sql, captured, exit_codes)
    for host in _hosts(capture):
        if host.upper() not in facts:
            continue  # a node the cluster shows Down did not answer; any other host: derive_scenario refuses
        displaydb = (facts[host.upper()].get("sso") or {}).get("displaydb")
        if isinstance(displaydb, dict) and "stdout" in displaydb and (host.upper(), "displaydb") not in captured:
            raise CaptureError(f"{root / 'ssomanage'}: displaydb-{host}-<n>.txt is missing: "
                               f"{facts_files[host.upper()]} carries `ssomanage -displaydb` from {host}, and the "
                               "lab serves the captured text itself")
    return capture


def _hosts(c: Capture) -> list[str]:
    nodes = [str(n.get("name")) for n in (c.inventory.get("cluster") or {}).get("nodes") or []]
    return nodes + [str(b.get("name")) for b in c.inventory.get("biztalk_servers") or []]


def _tools_server(host: str, displaydb: CapturedText | None) -> str | None:
    """The SSO server the host's tools use: `-displaydb`'s first line (texts.USING_LOCAL / USING_REMOTE)."""
    first = displaydb.text.split("\n", 1)[0].rstrip("\r") if displaydb else ""
    if first == texts.USING_LOCAL:
        return host
    m = re.match(r"Using SSO server : (.+)$", first)
    return m.group(1).strip() if m else None


def _state(status: Any) -> str:
    return "Running" if status in ("Running", "StartPending") else "Stopped"


def derive_scenario(c: Capture) -> dict[str, Any]:
    """The scenario of the captured estate (docs/lab.md, "A captured estate", lists what comes from where)."""
    inv = c.inventory
    cl = inv.get("cluster") or {}
    nodes = [str(n.get("name")) for n in cl.get("nodes") or []]
    if not nodes:
        raise CaptureError(f"{c.folder / 'inventory.json'}: cluster.nodes is empty")
    view = next((f["cluster"] for n in nodes for f in [c.facts.get(n.upper()) or {}] if f.get("cluster")), None)
    if not view or not view.get("group") or not view.get("resource"):
        raise CaptureError(f"{c.folder / 'winrm'}: no node's Get-HostFacts carries the cluster's group and resource "
                           f"({', '.join(c.facts_files.get(n.upper(), '-') for n in nodes)}): the capture does not "
                           "show who owns the SSO group")
    group, resource = view["group"], view["resource"]
    node_states = {str(n["name"]).upper(): n.get("state", "Up") for n in view.get("nodes") or []}
    for host in _hosts(c):
        if host.upper() not in c.facts:
            if host in nodes and node_states.get(host.upper()) == "Down":
                c.facts[host.upper()] = {}  # it did not answer: Down, as the cluster showed it; the rest defaults
                continue
            raise CaptureError(f"{c.folder / 'winrm'}: no Get-HostFacts document for {host} "
                               f"(<n>-Get-HostFacts-{host}.json): the capture does not show that host's state")
    # the cluster names its nodes as Windows does; the lab's hosts are the inventory's names (the same names
    # without regard to case: entsso.domain.names)
    named = {n.upper(): n for n in nodes}

    def node(name: Any) -> Any:
        return named.get(str(name).upper(), name)

    cluster: dict[str, Any] = {
        "name": cl.get("network_name"), "group": group.get("name") or cl.get("group"),
        "resource": resource.get("name") or cl.get("resource"),
        "nodes": [{"name": n, "state": node_states.get(n.upper(), "Up")} for n in nodes],
        "owner": node(group.get("owner_node")),
        "group_state": group.get("state") if group.get("state") in ("Online", "Failed", "PartialOnline",
                                                                      "Offline") else "Online",
        "possible_owners": [node(n) for n in resource.get("possible_owners") or nodes],
        "preferred_owners": [node(n) for n in group.get("preferred_owners") or []],
        "auto_failback": group.get("auto_failback_type") == 1,
        "witness": ((view.get("quorum") or {}).get("witness") or {}).get("state", "Online"),
        "use_network_name": bool(resource.get("use_network_name", True)),
    }
    secret_rows = c.need_rows("secret_server", "SSODB's secret server")
    secret_server = str(secret_rows[0].get("secret_server") or "") if secret_rows else ""
    hosts_cfg: dict[str, Any] = {}
    secret_on = []
    for host in _hosts(c):
        f = c.facts[host.upper()]
        if not f:
            continue
        s = f.get("sso") or {}
        entsso = (f.get("services") or {}).get("ENTSSO") or {}
        one: dict[str, Any] = {"installed": bool(s.get("installed", True))}
        if s.get("version"):
            one["version"] = str(s["version"])
        tools = _tools_server(host, c.texts.get((host.upper(), "displaydb")))
        if tools:
            one["tools_server"] = tools
        if entsso.get("logon_account"):
            one["service_account"] = str(entsso["logon_account"])
        if entsso.get("start_type") in ("Automatic", "Manual", "Disabled"):
            one["start_type"] = entsso["start_type"]
        now = _when(f.get("now_utc"))
        events = [{"id": int(e["id"]), "message": str(e.get("message") or ""),
                   "hours_ago": max(0.0, (now - t).total_seconds() / 3600) if now and t else 1}
                  for e in ((f.get("entsso_events") or {}).get("events") or [])
                  for t in [_when(e.get("time_utc"))]]
        if events:
            one["events"] = events
        if s.get("holds_secret"):
            secret_on.append(host)
        hosts_cfg[host] = one
    sso: dict[str, Any] = {"secret_server": secret_server, "secret_on": secret_on, "hosts": hosts_cfg}
    folder = (inv.get("secret_backup") or {}).get("folder")
    answered = [c.facts[n.upper()] for n in nodes if c.facts[n.upper()]]
    if folder and all((f.get("backup_folder") or {}).get("exists") for f in answered):
        sso["backup_folder"] = folder
    admin = c.rows("admin_group")
    if admin and admin[0].get("admin_group"):
        sso["admin_group"] = str(admin[0]["admin_group"])
    known = {h.lower() for h in _hosts(c)} | {str(cluster["name"]).lower()}
    registered = c.rows("sso_servers") or []
    sso["extra_servers"] = [str(r["server_name"]) for r in registered if str(r["server_name"]).lower() not in known]
    servers = []
    for b in inv.get("biztalk_servers") or []:
        f = c.facts[str(b["name"]).upper()]
        svc = f.get("services") or {}
        instances = [{"host": name[len(SERVICE_PREFIX):], "type": "InProcess", "state": _state(d.get("status")),
                      "disabled": d.get("start_type") == "Disabled"}
                     for name, d in svc.items() if name.startswith(SERVICE_PREFIX) and d.get("exists")]
        servers.append({"name": b["name"], "entsso": _state((svc.get("ENTSSO") or {}).get("status")),
                        "rule_engine": _state((svc.get("RuleEngineUpdateService") or {}).get("status")),
                        "host_instances": instances})
    biztalk: dict[str, Any] = {"servers": servers, "adapter_handlers": _handlers(c)}
    group_server = c.rows("group_sso_server")
    if group_server and group_server[0].get("sso_server"):
        biztalk["group_sso_server"] = str(group_server[0]["sso_server"])
    return {"name": f"capture {c.folder.parent.name or c.folder.name}",
            "environment": f"REPLAY of {inv.get('environment') or 'a captured estate'}",
            "cluster": cluster, "sso": sso, "biztalk": biztalk, "sql": _sql(c), "upgrade": _upgrade(c, nodes),
            "winrm": {k: v for k, v in (inv.get("winrm") or {}).items() if k in ("username", "transport", "https")},
            "msdtc": _msdtc(c)}


def _when(value: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")) if value else None
    except ValueError:
        return None


def _handlers(c: Capture) -> list[dict[str, Any]]:
    """BizTalkMgmtDb's handlers as the suite read them, each with what its SSO read answered."""
    rows = c.rows("adapter_handlers") or []
    reads = {(str(r.get("application", "")).lower(), str(r.get("identifier", "")).strip("{}").upper()): r
             for r in c.handler_reads}
    out = []
    for r in rows:
        read = reads.get((str(r["adapter"]).lower(), str(r["config_id"]).strip("{}").upper())) or {}
        one = {"kind": r["kind"], "adapter": r["adapter"], "host": r["host_name"], "config_id": str(r["config_id"])}
        if read.get("property_count") is not None:
            one["properties"] = int(read["property_count"])
        if read.get("hresult") == "0x80070057":  # E_INVALIDARG: SSO's store does not hold this configuration
            one["in_sso"] = False
        out.append(one)
    return out


def _sql(c: Capture) -> dict[str, Any]:
    inv = c.inventory.get("sql") or {}
    jobs = c.need_rows("jobs", "the SQL Agent jobs (msdb.dbo.sysjobs)")
    out: dict[str, Any] = {"server": inv.get("server") or "SQL1", "instance": inv.get("instance"),
                           "jobs": {str(j["name"]): bool(j.get("enabled")) for j in jobs},
                           "failed_jobs": {str(j["name"]): str(j.get("failed_step_message") or j.get("last_message")
                                                               or "The job failed.")
                                           for j in jobs if j.get("last_run_status") == 0}}
    others = inv.get("instances") or []
    if len(others) > 1:
        raise CaptureError(f"{c.folder / 'inventory.json'}: sql.instances lists {len(others)} other instances; the "
                           "lab models one besides the first (sql.second_instance)")
    if others:
        out["second_instance"] = {"server": others[0].get("server"), "instance": others[0].get("instance"),
                                  "databases": list(others[0].get("databases") or [])}
    names = inv.get("databases") or {}
    renamed = {k: names[k] for k in ("ssodb", "management") if names.get(k) and names[k] != {
        "ssodb": "SSODB", "management": "BizTalkMgmtDb"}[k]}
    if renamed:
        out["database_names"] = renamed
    backed_up = c.rows("backup_databases")
    if backed_up:
        out["databases"] = [str(r["database_name"]) for r in backed_up]
    agent = c.rows("agent")
    if agent is not None:
        out["agent_running"] = bool(agent) and agent[0].get("status") == "Running"
    objects = c.rows("force_full_objects")
    if objects:
        out["biztalk_schema"] = 2010 if objects[0].get("backup_settings") is not None else 2006
    flag = c.rows("force_full")
    if flag:
        out["force_full_backup"] = bool(flag[0].get("force_full"))
    login = c.rows("job_control")
    if login:
        out["login_roles"] = (["sysadmin"] if login[0].get("sysadmin") else []) + (
            ["SQLAgentOperatorRole"] if login[0].get("agent_operator") else ["SQLAgentReaderRole"])
        owners = {str(r.get("owner")) for r in c.rows("job_owners") or [] if r.get("owner")}
        if len(owners) == 1:
            out["job_owner"] = owners.pop()
    grants = c.rows("grants")
    if grants:
        out["denied"] = sorted({str(r["object_name"]) for r in grants if r.get("granted") == 0})
    now = c.rows("now")
    if now:
        utc, local = _when(now[0].get("now_utc")), _when(now[0].get("now_local"))
        if utc and local:
            out["utc_offset_minutes"] = round((local - utc).total_seconds() / 900) * 15
    return out


def _upgrade(c: Capture, nodes: list[str]) -> dict[str, Any]:
    up = c.inventory.get("upgrade") or {}
    out: dict[str, Any] = {"target_version": str(up.get("target_version") or ""), "mode": up.get("mode") or "manual"}
    package: dict[str, Any] = {}
    if up.get("package_path"):
        package["path"] = up["package_path"]
        package["present_on"] = [n for n in nodes if (c.facts[n.upper()].get("package") or {}).get("exists")]
    if up.get("arguments") is not None:
        package["arguments"] = up["arguments"]
    if package:
        out["package"] = package
    per_node: dict[str, Any] = {}
    for n in nodes:
        one = {k: v for k, v in ((up.get("nodes") or {}).get(n) or {}).items()
               if k in ("mode", "target_version", "package_path", "arguments") and v is not None}
        if n.upper() in c.exit_codes:  # what its update package returned (msiexec/exit-<NODE>-<n>.txt)
            one["exit_code"] = c.exit_codes[n.upper()]
        if (c.facts[n.upper()].get("pending_restart") or {}).get("cbs_reboot_pending"):
            one["pending_reboot"] = True
        if one:
            per_node[n] = one
    out["nodes"] = per_node
    return out


def _msdtc(c: Capture) -> dict[str, Any]:
    """MSDTC's two findings the lab models: network access off, and contact identifiers shared (cloned)."""
    off: list[str] = []
    by_cid: dict[str, list[str]] = {}
    for host in _hosts(c):
        m = c.facts[host.upper()].get("msdtc") or {}
        if (m.get("security") or {}).get("NetworkDtcAccess") == 0:
            off.append(host)
        cid = next((x.get("cid") for x in m.get("cids") or [] if x.get("description") == "MSDTC"), None)
        if cid:
            by_cid.setdefault(cid, []).append(host)
    shared: list[str] = next((hosts for hosts in by_cid.values() if len(hosts) > 1), [])
    return {"network_access_off": off, "shared_cid": shared}


@dataclass
class ServedTexts:
    """The captured texts, served by the Estate (model.Estate.replay) wherever a tool text is produced."""

    captured: dict[tuple[str, str], CapturedText]
    start: dict[tuple[str, str], str] = field(default_factory=dict)  # the lab's own text of the captured state
    served: dict[str, dict[str, Any]] = field(default_factory=dict)  # "HOST tool" -> how it was served
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def bind(self, estate: Any) -> None:
        """Record what the lab itself prints in the captured state, before anything changes it: the key that
        says whether a later call still describes that state. `-updatedb` prints what `-displaydb` prints when
        it fails (the same SSO server and SSODB) and only its server line when it succeeds."""
        for host in estate.hosts:
            h = estate._need(host)
            if not h.sso_installed:
                continue
            estate.replay = None  # the lab's own text, not a served one
            own = str(estate._displaydb(h)["stdout"])
            self.start[(host.upper(), "displaydb")] = own
            self.start[(host.upper(), "updatedb")] = own if "\nERROR: " in own else texts.using(h.tools_server, h.name)
        estate.replay = self

    def answer(self, host: str, tool: str, answer: dict[str, Any]) -> dict[str, Any]:
        key = (host.upper(), tool)
        captured, start, own = self.captured.get(key), self.start.get(key), str(answer.get("stdout") or "")
        if captured is None or start is None:
            return answer
        fields: list[str] = []
        if own == start:
            how, out = "captured", {**answer, "stdout": captured.text, "exit_code": captured.exit_code}
        else:
            derived = derive_text(captured.text, start, own)
            if derived is None:
                how, out = "lab", answer
            else:
                how, fields, out = "derived", derived[1], {**answer, "stdout": derived[0]}
        with self._lock:
            entry = self.served.setdefault(f"{host} {tool}", {"source": captured.path.name, "captured": 0,
                                                              "derived": 0, "lab": 0, "fields": []})
            entry[how] += 1
            entry["fields"] = sorted(set(entry["fields"]) | set(fields))
        return out


def _field(line: str) -> str | None:
    """The field a `-displaydb` line prints: `Using SSO server` for the first line, else the words before
    ` : `; None for a line that is no field (the closing rule, a section title)."""
    line = line.rstrip("\r")
    if line.startswith("Using SSO server"):
        return "Using SSO server"
    return line.split(" : ", 1)[0] if " : " in line else None


def derive_text(captured: str, start: str, now: str) -> tuple[str, list[str]] | None:
    """The captured text with the fields the lab's own text changed since the captured state replaced by
    their new lines (the server line, `SQL Server`, `SSO database`, `SSO secret server name`): every other
    byte stays the captured one. None when the change is not field by field (a success text where an
    ERROR line was, or a field the captured text does not print once): the lab's own text is served."""
    a, b = start.split("\n"), now.split("\n")
    if len(a) != len(b):
        return None
    lines = captured.split("\n")
    changed = []
    for old, new in zip(a, b, strict=True):
        if old == new:
            continue
        key = _field(old)
        if key is None or key != _field(new) or key.startswith("ERROR"):
            return None
        at = [i for i, line in enumerate(lines) if _field(line) == key]
        if len(at) != 1:
            return None
        ending = "\r" if lines[at[0]].endswith("\r") else ""
        lines[at[0]] = new.rstrip("\r") + ending
        changed.append(key)
    return "\n".join(lines), changed


@dataclass
class Replay:
    """A capture made ready to serve: its scenario and its texts."""

    capture: Capture
    scenario: dict[str, Any]
    texts: ServedTexts

    def dump(self) -> dict[str, Any]:
        with self.texts._lock:
            return {"capture": str(self.capture.folder), "served": {k: dict(v) for k, v in self.texts.served.items()}}


def load_capture(folder: str | Path) -> Replay:
    """Read a capture and derive its lab; CaptureError names what is missing."""
    capture = read_capture(folder)
    return Replay(capture, derive_scenario(capture), ServedTexts(dict(capture.texts)))
