"""Enterprise SSO: what each SSO server reports (version, the SSO server its tools use, the secret server
it sees, whether it holds the master secret) and the secret server recorded in SSODB."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from entsso.winrm import WindowsHost

from entsso import tsql
from entsso.sql import SqlServer

ENTSSO = "ENTSSO"


@dataclass(frozen=True)
class SsoServer:
    host: str
    installed: bool
    version: str | None
    tools_server: str | None  # what `ssomanage -serverall` set on this machine
    secret_server: str | None  # what `ssomanage -displaydb` shows through that SSO server
    displaydb_error: str | None
    holds_secret: bool  # HKLM\SOFTWARE\Microsoft\ENTSSO\SSOSS\{GUID} exists


def parse_sso(host: str, doc: dict[str, Any]) -> SsoServer:
    s = doc.get("sso") or {}
    return SsoServer(host, bool(s.get("installed")), s.get("version"), s.get("tools_server"),
                     s.get("secret_server"), s.get("displaydb_error"), bool(s.get("holds_secret")))


def version_tuple(version: str | None) -> tuple[int, ...]:
    """'10.0.1000.0' -> (10, 0, 1000, 0); None or junk -> ()."""
    try:
        return tuple(int(p) for p in (version or "").split("."))
    except ValueError:
        return ()


def secret_server(sql: SqlServer) -> str | None:
    """The master secret server recorded in SSODB (SSOX_GlobalInfo.gi_SecretServer)."""
    return sql.execute(tsql.SECRET_SERVER, database="SSODB").scalar()


def backup_secret(host: WindowsHost, file: str, password: Any, reminder: str) -> dict[str, Any]:
    """Back up the master secret on the MSS through the SSO admin object model (Backup-MasterSecret).
    The password travels over stdin inside the envelope, never on a command line."""
    return host.invoke("Backup-MasterSecret", {"file": file, "password": password, "reminder": reminder},
                       timeout=300)


def restore_secret(host: WindowsHost, file: str, password: Any) -> dict[str, Any]:
    return host.invoke("Restore-MasterSecret", {"file": file, "password": password}, timeout=300)

