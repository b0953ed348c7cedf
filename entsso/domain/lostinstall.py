"""An update package whose connection was lost while it ran: ask the node what became of it, never run it
twice (docs/operations.md, "Retries").

The package runs on the node whatever happens to the WinRM connection that started it. So after a lost
connection the suite asks the node again (its Enterprise SSO version, Get-HostFacts; the installer's verbose
log, Read-File) and decides: finished (the log written since the install began ends with Windows Installer's
"MainEngineThread is returning N": N is the exit code), still running (that log has no such line yet: wait),
or never started (no log written since: msiexec writes its /l*v log as it starts, so the package did not
run and starting it now runs it once). An .exe package's own log is not msiexec's, so there the suite
cannot tell "never started" from "running": it stops and says what to check.
"""
from __future__ import annotations

import base64
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from entsso.domain.errors import DomainError
from entsso.remote.winrm import HostNotResolved, HostUnreachable, RemoteError, ScriptError, WindowsHost

# msiexec's verbose log, its last lines: "MSI (c) (2C:30) [10:14:10:441]: MainEngineThread is returning 0"
RETURNING = re.compile(r"MainEngineThread is returning (\d+)")
ASK_EVERY = 2.0  # real seconds between two looks at a node whose package's state is unknown


class InstallStateUnknown(DomainError):
    """The connection was lost while the package ran and the node cannot say what became of it."""


@dataclass(frozen=True)
class LogLook:
    """The installer's log as the node has it now: absent, or its text and last write."""

    exists: bool
    text: str = ""
    last_write_utc: datetime | None = None

    def returned(self) -> int | None:
        """Windows Installer's exit code when the log has its final line, else None (still running)."""
        found = RETURNING.findall(self.text)
        return int(found[-1]) if found else None


def decode_log(data: bytes) -> str:
    """An msiexec log: UTF-16 with its byte-order mark, else the system's 8-bit text."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16", errors="replace")
    return data.decode("utf-8", errors="replace")


def read_log(host: WindowsHost, path: str) -> LogLook:
    try:
        doc = host.invoke("Read-File", {"path": path})
    except ScriptError as exc:
        if "does not exist" in exc.error_text or "Cannot find path" in exc.error_text:
            return LogLook(False)
        raise
    when = doc.get("last_write_utc")
    return LogLook(True, decode_log(base64.b64decode(doc.get("content_b64") or "")),
                   datetime.fromisoformat(str(when).replace("Z", "+00:00")) if when else None)


def _version(doc: dict[str, Any]) -> str | None:
    sso = doc.get("sso") or {}
    return str(sso["version"]) if sso.get("installed") and sso.get("version") else None


@dataclass(frozen=True)
class Verdict:
    """What the node says of a package whose answer was lost."""

    state: str  # finished | running | not-started
    exit_code: int | None = None
    version: str | None = None
    why: str = ""


def judge(path: str, look: LogLook, since: datetime | None, version: str | None) -> Verdict:
    """The package's state from the node's answers: its log (`look`), the time the install began on the
    node's clock (`since`; None: unknown, any log counts as this install's) and its SSO version."""
    fresh = look.exists and (since is None or (look.last_write_utc is not None and look.last_write_utc >= since))
    if fresh:
        code = look.returned()
        if code is not None:
            return Verdict("finished", code, version, f"its log ends with Windows Installer's exit code {code}")
        return Verdict("running", None, version, "its log has no exit code yet: Windows Installer still runs")
    if not path.lower().endswith((".msp", ".msi")):
        raise InstallStateUnknown(
            f"the connection was lost while {path} ran and it is not a Windows Installer package: its state cannot "
            "be read from msiexec's log")
    return Verdict("not-started", None, version, "no installer log was written since the install began: "
                   "msiexec never started")


def ask_again(host: WindowsHost, path: str, log_path: str, since: datetime | None, deadline: float,
              lost: RemoteError, sleep: Callable[[float], None] = time.sleep) -> tuple[Verdict, list[str]]:
    """Ask the node until it answers with a finished or never-started package, or `deadline` (monotonic)
    passes; return the verdict and what each look saw (for the journal)."""
    seen: list[str] = []
    while True:
        try:
            facts = host.invoke("Get-HostFacts", {})
            verdict = judge(path, read_log(host, log_path), since, _version(facts))
            seen.append(f"{verdict.state}: {verdict.why} (SSO {verdict.version})")
            if verdict.state != "running":
                return verdict, seen
        except HostNotResolved:
            raise
        except HostUnreachable as exc:
            seen.append(f"no answer ({exc.detail[:120]})")
        if time.monotonic() + ASK_EVERY > deadline:
            raise InstallStateUnknown(
                f"{host.name}: the connection was lost while the update package {path} ran ({lost.detail}); "
                "asked again until the install's own time ran out, the node said: "
                f"{'; '.join(seen[-3:]) or 'nothing'}. "
                f"Do not start the package again: on {host.name}, check whether msiexec still runs "
                f"(Get-Process msiexec) and read its log {log_path} (its last line 'MainEngineThread is returning N' "
                "gives the exit code), then resume")
        sleep(ASK_EVERY)
