"""Windows services (SCM): the fact every domain shares — ENTSSO, RuleEngineUpdateService, BTSSvc$<host>."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from entsso.domain.errors import DomainError
from entsso.domain.poll import Poller
from entsso.remote.errors import ScriptError
from entsso.remote.winrm import WindowsHost
from entsso.domain.outcome import Outcome


@dataclass(frozen=True)
class Service:
    host: str
    name: str
    exists: bool
    status: str | None  # Running, Stopped, StartPending, StopPending, … (names, never numbers)
    start_type: str | None  # Automatic, Manual, Disabled
    logon_account: str | None = None  # Win32_Service.StartName (None: not read)

    @property
    def running(self) -> bool:
        return self.status == "Running"

    @property
    def stopped(self) -> bool:
        return not self.exists or self.status == "Stopped"


def parse_services(host: str, doc: dict[str, Any]) -> dict[str, Service]:
    return {name: Service(host, name, bool(s.get("exists")), s.get("status"), s.get("start_type"),
                          s.get("logon_account") or None)
            for name, s in (doc.get("services") or {}).items()}


# the SCM's names of the built-in accounts (Win32_Service.StartName), which are no domain account
_BUILT_IN = {"localsystem", "nt authority\\system", "nt authority\\localservice", "nt authority\\local service",
             "nt authority\\networkservice", "nt authority\\network service"}


def account_key(account: str) -> str:
    """An account name compared as Windows does: case-insensitively; `user@contoso.local` (a UPN) is kept as
    written, since its NetBIOS domain cannot be derived from it without asking the directory."""
    return account.strip().lower()


def not_a_domain_account(account: str, host: str) -> str | None:
    """Why `account` (a service's StartName on `host`) is not a domain account, or None. A built-in account
    (LocalSystem, NT AUTHORITY\\…, a virtual NT SERVICE\\… account) or a local one (`.\\user`, `HOST\\user`)
    is a different identity on each node, so it cannot be one SSO administrator shared by the cluster."""
    a = account_key(account)
    if a in _BUILT_IN or a.startswith(("nt authority\\", "nt service\\")):
        return "a built-in account"
    domain = a.split("\\", 1)[0] if "\\" in a else None
    if domain == "." or (domain is not None and domain == host.split(".")[0].lower()):
        return f"an account local to {host}"
    return None


# System Error Codes: ERROR_SERVICE_LOGON_FAILED, "The service did not start due to a logon failure."
LOGON_FAILED = 1069


class ServiceStartRefused(DomainError):
    """The SCM refused to start a service for a reason that is the service's own configuration (1069)."""


class ServiceStillStarting(DomainError):
    """The service was still StartPending when the wait ran out: slow, not failed."""


def start_refused_fix(text: str, service: str, host: str) -> str | None:
    """What to do about an SCM start refusal, from Set-ServiceState's text (its Win32 error code), or None."""
    if f"Win32 error {LOGON_FAILED}" in text:
        return (f"{service} did not start on {host}: the SCM could not log on its service account (Win32 error "
                f"{LOGON_FAILED}, a logon failure: its password expired or changed, or the account is locked or lacks "
                "'Log on as a service'). Fix: set the account's "
                f"current password for {service} on {host} (Services console, Log On tab, or `sc.exe config {service} "
                "password= <password>`; on a cluster node the same account serves the cluster's resource), then "
                "resume; or back the change out.")
    return None


def ensure_services(host: WindowsHost, wanted: list[tuple[str, str]], timeout: float, *,
                    poller: Poller | None = None) -> Outcome:
    """Bring services to the wanted status through the SCM, in the order given (Set-ServiceState).
    Returns each service's before/after; the script throws when one does not get there in time.

    A service still starting (StartPending) takes no stop control (SCM error 1061), so the script sends it
    none: it returns that service as it found it and goes no further down the list. The wait for it to
    finish starting is here: the rest of the list is asked again until it goes through, within `timeout`."""
    if not wanted:
        return Outcome.of_documents([])
    done: list[dict[str, Any]] = []
    remaining = list(wanted)

    def attempt() -> bool:
        nonlocal remaining
        try:
            doc = host.invoke("Set-ServiceState", {"services": [{"name": n, "status": s} for n, s in remaining],
                                                   "timeout_sec": int(timeout)}, timeout=timeout * len(remaining) + 60)
        except ScriptError as exc:
            fix = start_refused_fix(str(exc), remaining[0][0], host.name)
            if fix:
                raise ServiceStartRefused(f"{fix} The script said: {exc}") from exc
            if "(last state: StartPending)" in str(exc):
                raise ServiceStillStarting(
                    f"{remaining[0][0]} on {host.name} is still starting after {timeout:g} s (StartPending): a slow "
                    "start, not a failed one. Wait until it is Running, then resume; if it routinely starts this "
                    f"slowly, raise timeouts.service_start. ({exc})") from exc
            raise
        got = list(doc.get("services") or [])
        through = 0
        for (_name, status), g in zip(remaining, got, strict=False):  # the answer may stop short
            if g.get("status") == "StartPending" and status == "Stopped":
                break  # still starting: asked again once it has started
            done.append(g)
            through += 1
        remaining = remaining[through:]
        return not remaining

    (poller or Poller()).until(attempt, timeout, what=f"{remaining[0][0]} on {host.name} to finish starting so "
                               "that it can be stopped", describe=lambda: remaining[0][0] if remaining else None)
    return Outcome.of_documents(done)
