"""Windows services (SCM): the fact every domain shares — ENTSSO, RuleEngineUpdateService, BTSSvc$<host>."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from entsso.domain.poll import Poller
from entsso.remote.winrm import WindowsHost
from entsso.domain.outcome import Outcome


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
        doc = host.invoke("Set-ServiceState",
                          {"services": [{"name": n, "status": s} for n, s in remaining], "timeout_sec": int(timeout)},
                          timeout=timeout * len(remaining) + 60)
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
