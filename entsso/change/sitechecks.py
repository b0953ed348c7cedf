"""The site's own checks: pytest tests an operator writes for what their estate must still do after an
SSO change (its receive locations, its adapters' endpoints, its own services), with testinfra's `host`
fixture for each of the estate's hosts. The inventory names their folder (`site_checks`); the suite
runs each test once per host in the gate (read-only, before anything changes: marked readiness) and
again after the change (marked post), in the same report.

testinfra's WinRM backend takes its credentials from a URL (winrm://user:password@host); a URL is
what logs, tracebacks and `repr`s show, so the suite never builds one with a secret in it. SuiteWinRM
below is that backend given the host's address, port, transport and credentials as the suite's own
WinRM layer holds them (the inventory, the password from its environment variable): the hostspec it
parses names the address only.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

MOMENTS = ("gate", "after")  # the gate (readiness), and after the change (post)


def _backend_class() -> type:
    from testinfra.backend.winrm import WinRMBackend

    class SuiteWinRM(WinRMBackend):
        """testinfra's winrm backend with its connection given, not parsed from a URL with a password."""

        def __init__(self, name: str, windows_host: Any) -> None:
            h, s = windows_host, windows_host.settings
            port = s.port or (5986 if s.https else 5985)
            super().__init__(f"{h.address}:{port}", no_ssl=not s.https)  # the address only: no credentials
            password = h._password.get_secret_value() if hasattr(h._password, "get_secret_value") else h._password
            # the keyword arguments entsso.remote.winrm.WindowsHost gives pywinrm's Protocol, which testinfra builds
            self.conn_args = {
                "endpoint": h.endpoint, "transport": s.pywinrm_transport, "username": h._username,
                "password": password, "server_cert_validation": "validate" if s.cert_validation else "ignore",
                "ca_trust_path": s.ca_trust_path, "read_timeout_sec": int(max(s.read_timeout, s.operation_timeout + 1)),
                "operation_timeout_sec": int(s.operation_timeout), "proxy": s.proxy}
            self.estate_name = name

        def __repr__(self) -> str:
            return f"<SuiteWinRM {self.estate_name} at {self.conn_args['endpoint']} as {self.conn_args['username']}>"

    return SuiteWinRM


def testinfra_host(run: Any, name: str) -> Any:
    """A testinfra Host for the estate's host `name`, reached as entsso.remote.winrm reaches it."""
    from testinfra.host import Host

    backend = _backend_class()(name, run.hosts[name])
    host = Host(backend)
    backend.set_host(host)
    return host


def folder_of(inventory: Any, override: str | None) -> Path | None:
    """The site checks' folder: --site-checks, else the inventory's `site_checks` (relative to its file)."""
    if override:
        return Path(override).resolve()
    value = getattr(inventory, "site_checks", None)
    if not value:
        return None
    path = Path(value)
    return (path if path.is_absolute() else Path(inventory.path).parent / path).resolve()


def is_site_check(item_path: Path, folder: Path | None) -> bool:
    return folder is not None and Path(item_path).resolve().is_relative_to(folder)
