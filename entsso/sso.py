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



def ensure_secret_server(host: WindowsHost, sql: SqlServer, name: str) -> dict[str, Any]:
    """Move the master secret server: `ssomanage -updatedb` with <secretServer>name</secretServer>,
    run on `host` (its SSO tools must reach a running SSO server). SSODB is read first: when it already
    names `name` nothing runs (a resumed run may find no SSO server answering the old name)."""
    before = secret_server(sql)
    if (before or "").upper() == name.upper():
        return {"secret_server_before": before, "secret_server": before, "changed": False}
    doc = host.invoke("Update-SsoDatabase", {"secret_server": name}, timeout=300)
    after = secret_server(sql)
    if (after or "").upper() != name.upper():
        raise RuntimeError(f"ssomanage -updatedb on {host.name} reported success but SSODB names {after!r}, "
                           f"not {name!r}; check the SSO event log on {host.name}")
    return doc


def ensure_tools_server(host: WindowsHost, server: str) -> dict[str, Any]:
    """Point this machine's SSO tools at `server` (`ssomanage -serverall`)."""
    return host.invoke("Set-SsoServer", {"server": server}, timeout=120)


def install_update(host: WindowsHost, path: str, arguments: str, log_path: str, timeout: float) -> dict[str, Any]:
    """Run a silent SSO update package; the exit code comes back as data (MSI_CODES says what it means)."""
    return host.invoke("Install-SsoUpdate", {"path": path, "arguments": arguments, "log_path": log_path,
                                             "timeout_sec": int(timeout)}, timeout=timeout + 120)


MSI_CODES = {
    0: "success",
    3010: "success, reboot required (ERROR_SUCCESS_REBOOT_REQUIRED)",
    1641: "success, the installer started a reboot (ERROR_SUCCESS_REBOOT_INITIATED)",
    1603: "fatal error during installation (ERROR_INSTALL_FAILURE)",
    1618: "another installation is already in progress (ERROR_INSTALL_ALREADY_RUNNING)",
    1619: "the installation package could not be opened (ERROR_INSTALL_PACKAGE_OPEN_FAILED)",
    1638: "another version of this product is already installed (ERROR_PRODUCT_VERSION)",
}
