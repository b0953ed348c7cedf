"""Windows services (SCM): the fact every domain shares — ENTSSO, RuleEngineUpdateService, BTSSvc$<host>."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from entsso.winrm import WindowsHost


@dataclass(frozen=True)
class Service:
    host: str
    name: str
    exists: bool
    status: str | None  # Running, Stopped, StartPending, StopPending, … (names, never numbers)
    start_type: str | None  # Automatic, Manual, Disabled

    @property
    def running(self) -> bool:
        return self.status == "Running"

    @property
    def stopped(self) -> bool:
        return not self.exists or self.status == "Stopped"


def parse_services(host: str, doc: dict[str, Any]) -> dict[str, Service]:
    return {name: Service(host, name, bool(s.get("exists")), s.get("status"), s.get("start_type"))
            for name, s in (doc.get("services") or {}).items()}


def ensure_services(host: WindowsHost, wanted: list[tuple[str, str]], timeout: float) -> list[dict[str, Any]]:
    """Bring services to the wanted status through the SCM, in the order given (Set-ServiceState).
    Returns each service's before/after; the script throws when one does not get there in time."""
    if not wanted:
        return []
    doc = host.invoke("Set-ServiceState",
                      {"services": [{"name": n, "status": s} for n, s in wanted], "timeout_sec": int(timeout)},
                      timeout=timeout * len(wanted) + 60)
    return list(doc.get("services") or [])

