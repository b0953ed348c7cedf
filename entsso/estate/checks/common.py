"""What every check shares: a Finding (what was found, what was expected), the Plan a check reads the
inventory's intent through (entsso.change.run.Run meets it), and the unreachable-host finding."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, UTC
from typing import Any, Protocol

from entsso.estate.snapshot import HostFacts


@dataclass(frozen=True)
class Finding:
    check: str
    subject: str
    found: str
    expected: str

    def __str__(self) -> str:
        return f"{self.subject}: found {self.found}; expected {self.expected}"


class Plan(Protocol):
    cluster_name: str
    group: str
    resource: str
    nodes: list[str]
    biztalk_servers: list[str]
    job_names: list[str]
    inventory: Any  # entsso.inventory.Inventory: sql.continuous_jobs

    def target_version(self, node: str) -> str: ...

    def upgrade_mode(self, node: str) -> str: ...

    def primary_node(self) -> str: ...

    def secret_backup_file(self) -> str: ...

    @property
    def change_started(self) -> datetime: ...


def utc(at: datetime) -> datetime:
    """An aware UTC time: the estate's file times come naive (UTC by convention), the change's start aware."""
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


def reach(h: HostFacts, check: str) -> Finding | None:
    if not h.reachable and h.error_kind == "dns":
        return Finding(check, h.name, f"a name that does not resolve ({h.error})",
                       "the host's name to resolve and the host to answer over WinRM")
    if not h.reachable and h.error_kind == "certificate":
        return Finding(check, h.name, f"an HTTPS certificate this machine refuses ({h.error})",
                       "the host's WinRM certificate to validate against winrm.ca_trust_path")
    if not h.reachable:
        return Finding(check, h.name, f"no answer ({h.error_kind}: {h.error})", "the host to answer over WinRM")
    return None

