"""The lab's powershell.exe and cmd.exe: what a simulated host runs when a WinRM command arrives.

A command line `powershell.exe … -EncodedCommand <b64>` is decoded; the suite's envelope (docs/
operations.md) is recognised, its script identified by the `# entsso-operation:` marker *and* the
SHA-256 of the shipped file, and the operation is run against the estate model. Anything else gets the
error real PowerShell or cmd.exe would print. Faults (fail, hang, wrong output) apply here.
"""
from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from importlib import resources
from typing import Any
from collections.abc import Callable

from entsso.lab.wsman import CommandResult

MARKER = re.compile(r"^# entsso-operation: ([A-Za-z]+-[A-Za-z]+)\s*$", re.M)
ENVELOPE = re.compile(
    r"\A# entsso-envelope 1\n(?P<head>.*?)\$EntssoParams = ConvertFrom-Json -InputObject @'\n"
    r"(?P<json>.*?)\n'@\n(?P<script>.*)\Z", re.S)
ENCODED = re.compile(r"^powershell(?:\.exe)?\b(?P<opts>.*?)-(?:EncodedCommand|encodedcommand|enc|e)\s+(?P<b64>\S+)\s*$",
                     re.I | re.S)
STDIN_BOOTSTRAP = "& chcp.com 65001 > $null; $s = $input | Out-String; & ([scriptblock]::Create($s))"
NOT_RECOGNIZED = ("The term '{0}' is not recognized as the name of a cmdlet, function, script file, or operable "
                  "program. Check the spelling of the name, or if a path was included, verify that the path is "
                  "correct and try again.")
PROGRESS = ('<Obj S="progress" RefId="0"><TN RefId="0"><T>System.Management.Automation.PSCustomObject</T>'
            '<T>System.Object</T></TN><MS><I64 N="SourceId">1</I64><PR N="Record"><AV>Preparing modules for '
            'first use.</AV><AI>0</AI><Nil /><PI>-1</PI><PC>-1</PC><T>Completed</T><SR>-1</SR><SD> </SD></PR>'
            '</MS></Obj>')


def _xml_escape(text: str) -> str:
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return text.replace("\r", "_x000D_").replace("\n", "_x000A_")


def clixml_error(message: str, *, script_line: str = "", category: str = "OperationStopped") -> bytes:
    """stderr as powershell.exe writes a terminating error under -EncodedCommand (CLIXML)."""
    lines = [message, "At line:1 char:1", f"+ {script_line or 'throw'}", "+ ~~~~~",
             f"    + CategoryInfo          : {category}: ({message[:40]}:String) [], RuntimeException",
             f"    + FullyQualifiedErrorId : {message[:60]}", " "]
    body = "".join(f'<S S="Error">{_xml_escape(line)}_x000D__x000A_</S>' for line in lines)
    return ("#< CLIXML\r\n<Objs Version=\"1.1.0.1\" xmlns=\"http://schemas.microsoft.com/powershell/2004/04\">"
            + PROGRESS + body + "</Objs>").encode("utf-8")


def clixml_progress_only() -> bytes:
    """What a successful powershell.exe often leaves on stderr: a progress record."""
    return ("#< CLIXML\r\n<Objs Version=\"1.1.0.1\" xmlns=\"http://schemas.microsoft.com/powershell/2004/04\">"
            + PROGRESS + "</Objs>").encode("utf-8")


@dataclass(frozen=True)
class ShippedScript:
    name: str
    sha256: str


def shipped_scripts() -> dict[str, ShippedScript]:
    out: dict[str, ShippedScript] = {}
    for entry in resources.files("entsso.remote.ps").iterdir():
        if entry.name.endswith(".ps1"):
            text = entry.read_text(encoding="utf-8")
            m = MARKER.search(text.splitlines()[0] + "\n") if text else None
            if m:
                out[m.group(1)] = ShippedScript(m.group(1), hashlib.sha256(text.encode("utf-8")).hexdigest())
    return out


class Faults:
    """Injected faults: a list of dicts (docs/lab.md). Thread-safe; counts calls per (host, operation)."""

    def __init__(self, faults: list[dict[str, Any]] | None = None) -> None:
        self._lock = threading.Lock()
        self.faults: list[dict[str, Any]] = [dict(f) for f in (faults or [])]
        self.calls: dict[tuple[str, str], int] = {}
        self.fired: list[dict[str, Any]] = []

    def add(self, fault: dict[str, Any]) -> None:
        with self._lock:
            self.faults.append(dict(fault))

    def clear(self) -> None:
        with self._lock:
            self.faults.clear()

    def count(self, host: str, operation: str) -> int:
        with self._lock:
            n = self.calls.get((host, operation), 0) + 1
            self.calls[(host, operation)] = n
            return n

    def match(self, host: str, operation: str, n: int) -> dict[str, Any] | None:
        """The fault that applies to the n-th call of `operation` on `host`, if any."""
        with self._lock:
            for f in self.faults:
                if f.get("kind") not in ("fail", "hang", "wrong_output", "unreachable", "node_paused", "job_collision",
                                         "network_loss", "sql_unavailable", "group_failover",
                                         "slow_start"):
                    continue
                if f.get("host") not in (None, "*", host) or f.get("operation") not in (None, "*", operation):
                    continue
                call = f.get("call")
                times = f.get("times", 1)
                if call is not None and not (int(call) <= n < int(call) + int(times)):
                    continue
                # the next `times` matching calls, then no more (a network loss: the first matching call)
                if call is None and ("times" in f or f.get("kind") in ("network_loss", "sql_unavailable",
                                                                          "group_failover")):
                    if f.get("_fired", 0) >= int(times):
                        continue
                    f["_fired"] = f.get("_fired", 0) + 1
                self.fired.append({"host": host, "operation": operation, "call": n, "kind": f["kind"]})
                return f
        return None


@dataclass
class PowerShellBackend:
    """ShellBackend for entsso.lab.wsman: runs envelopes against the estate model."""

    estate: Any  # entsso.lab.model.Estate
    faults: Faults
    sleep: Callable[[float], None]  # estate seconds (the clock's sleep)
    usernames: dict[str, str] = field(default_factory=dict)
    on_unreachable: Callable[[str], None] | None = None  # the lab cuts the host (fault `unreachable` at a call)
    on_job_collision: Callable[[str], None] | None = None  # SQL Agent starts a job (fault `job_collision` at a call)
    on_network_loss: Callable[[str, float], None] | None = None  # a `network_loss` at a call: host, estate seconds
    on_sql_unavailable: Callable[[float | None], None] | None = None  # `sql_unavailable` at a call: estate seconds
    on_group_failover: Callable[[], None] | None = None  # `group_failover` at a call: the group fails over
    on_slow_start: Callable[[float], None] | None = None  # a `slow_start` at a call: the next ENTSSO start's seconds
    scripts: dict[str, ShippedScript] = field(default_factory=shipped_scripts)
    received: dict[str, int] = field(default_factory=dict)  # "HOST Operation" -> count
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # ShellBackend protocol
    def wants_stdin(self, host: str, command_line: str) -> bool:
        script = self._decode(command_line)
        return script is not None and script.strip() == STDIN_BOOTSTRAP

    def execute(self, host: str, command_line: str, stdin: bytes) -> CommandResult:
        script = self._decode(command_line)
        if script is None:
            return self._cmd(host, command_line)
        if script.strip() == STDIN_BOOTSTRAP:
            script = stdin.decode("utf-8", errors="replace").replace("\r\n", "\n")
            if not script.strip():
                # $input was empty (console-mode stdin, or nothing sent): [scriptblock]::Create("") runs
                # nothing, so powershell.exe prints nothing and exits 0
                return CommandResult(b"", b"", 0)
        return self._powershell(host, script)

    # powershell.exe
    @staticmethod
    def _decode(command_line: str) -> str | None:
        m = ENCODED.match(command_line.strip())
        if not m:
            return None
        try:
            return base64.b64decode(m.group("b64")).decode("utf-16-le")
        except (ValueError, UnicodeDecodeError):
            return ""

    def _powershell(self, host: str, script: str) -> CommandResult:
        m = ENVELOPE.match(script)
        first = (script.strip().split() or ["?"])[0]
        if not m:
            return CommandResult(b"", clixml_error(NOT_RECOGNIZED.format(first), category="ObjectNotFound"), 1)
        body = m.group("script")
        marker = MARKER.search(body.splitlines()[0] + "\n") if body else None
        name = marker.group(1) if marker else first
        shipped = self.scripts.get(name)
        if not shipped or hashlib.sha256(body.encode("utf-8")).hexdigest() != shipped.sha256:
            return CommandResult(b"", clixml_error(NOT_RECOGNIZED.format(name), category="ObjectNotFound"), 1)
        try:
            params = json.loads(m.group("json"))
        except json.JSONDecodeError as exc:
            return CommandResult(b"", clixml_error(f"Invalid JSON primitive: {exc.msg}."), 1)
        with self._lock:
            key = f"{host} {name}"
            self.received[key] = self.received.get(key, 0) + 1
        n = self.faults.count(host, name)
        fault = self.faults.match(host, name, n)
        if fault and fault["kind"] == "unreachable":
            # the host drops off the network as this call arrives: the lab cuts its endpoint (open
            # connections are reset, so the caller sees the connection go) and the command never runs
            if self.on_unreachable is not None:
                self.on_unreachable(host)
            self.sleep(float(fault.get("seconds", 10**7)))
            return CommandResult(b"", clixml_error("The network path was not found."), 1)
        if fault and fault["kind"] == "job_collision" and self.on_job_collision is not None:
            # the job's schedule fires as this call arrives (a Backup BizTalk Server run starts); the call runs
            self.on_job_collision(str(fault["job"]))
        if fault and fault["kind"] == "slow_start" and self.on_slow_start is not None:
            # the next start of ENTSSO in the estate (this call's, or a later one) takes `seconds`; the call runs
            self.on_slow_start(float(fault["seconds"]))
        if fault and fault["kind"] == "network_loss" and self.on_network_loss is not None:
            # the host's network goes as this call arrives: the command runs on (a process on the host does
            # not notice), but its answer cannot reach the caller, whose connection is reset
            self.on_network_loss(host, float(fault["seconds"]))
        if fault and fault["kind"] == "sql_unavailable" and self.on_sql_unavailable is not None:
            # SQL Server fails over as this call arrives (every session dropped); the call runs
            seconds = fault.get("seconds")
            self.on_sql_unavailable(float(seconds) if seconds is not None else None)
        if fault and fault["kind"] == "group_failover" and self.on_group_failover is not None:
            # a resource of the group fails past its restart threshold as this call arrives; the call runs
            self.on_group_failover()
        if fault and fault["kind"] == "node_paused":
            # someone (Cluster-Aware Updating, a colleague) pauses a node as this call arrives; the call runs
            self.estate.pause_node(str(fault.get("node") or fault.get("host") or host))
        if fault and fault["kind"] == "hang":
            self.sleep(float(fault.get("seconds", 3600)))
        if fault and fault["kind"] == "fail":
            message = fault.get("message", f"{name} failed on {host} (injected fault)")
            return CommandResult(b"", clixml_error(message), int(fault.get("exit_code", 1)))
        if fault and fault["kind"] == "wrong_output":
            return CommandResult(fault.get("output", "WARNING: not JSON").encode("utf-8"), b"", 0)
        from entsso.lab.model import PSError

        try:
            doc = self.estate.invoke(host, name, params)
        except PSError as exc:
            return CommandResult(b"", clixml_error(str(exc), category=getattr(exc, "category", "InvalidOperation")), 1)
        return CommandResult(json.dumps(doc, separators=(",", ":")).encode("utf-8"), clixml_progress_only(), 0)

    # cmd.exe, enough for testinfra's host.run and a person poking at a lab host
    def _cmd(self, host: str, command_line: str) -> CommandResult:
        line = command_line.strip()
        word = (line.split() or [""])[0].lower()
        if word == "hostname":
            return CommandResult(f"{host}\r\n".encode(), b"", 0)
        if word == "echo":
            return CommandResult((line[5:] + "\r\n").encode(), b"", 0)
        if word == "whoami":
            return CommandResult((self.usernames.get(host, "lab\\svc-entsso").lower() + "\r\n").encode(), b"", 0)
        if word == "exit":
            parts = line.split()
            code = int(parts[-1]) if len(parts) > 1 and parts[-1].lstrip("-").isdigit() else 0
            return CommandResult(b"", b"", code)
        if word == "sc" and len(line.split()) >= 3 and line.split()[1].lower() == "query":
            return self._sc_query(host, line.split()[2])
        if word.startswith("powershell"):
            return CommandResult(b"", clixml_error(NOT_RECOGNIZED.format(line.split()[-1])), 1)
        return CommandResult(b"", (f"'{word}' is not recognized as an internal or external command,\r\n"
                                   "operable program or batch file.\r\n").encode(), 1)

    def _sc_query(self, host: str, service: str) -> CommandResult:
        services = self.estate.services_of(host) if hasattr(self.estate, "services_of") else {}
        status = services.get(service)
        if status is None:
            return CommandResult(
                b"[SC] EnumQueryServicesStatus:OpenService FAILED 1060:\r\n\r\nThe specified service does not "
                b"exist as an installed service.\r\n\r\n", b"", 1060)
        codes = {"Stopped": "1  STOPPED", "StartPending": "2  START_PENDING", "StopPending": "3  STOP_PENDING",
                 "Running": "4  RUNNING"}
        text = (f"\r\nSERVICE_NAME: {service} \r\n        TYPE               : 10  WIN32_OWN_PROCESS  \r\n"
                f"        STATE              : {codes.get(status, '4  RUNNING')}\r\n")
        return CommandResult(text.encode(), b"", 0)
