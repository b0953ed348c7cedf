"""Restarts of a node. Seeing one: it must first go (its boot time changes, or it stops answering), then
come back (it answers with a boot time later than before); a node still counting down to its restart
(`shutdown /r /t 10`, an installer's 1641) answers exactly as before, and is not back yet. And a restart
Windows still owes from before the change (its registry markers, docs/domain-notes.md)."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from entsso.remote.winrm import WindowsHost


class _Sso(Protocol):
    @property
    def version(self) -> str | None: ...


class NodeAnswer(Protocol):
    """What a restart watch reads of a node's answer (entsso.estate.snapshot.HostFacts meets it)."""

    @property
    def reachable(self) -> bool: ...
    @property
    def error_kind(self) -> str | None: ...
    @property
    def last_boot_utc(self) -> datetime | None: ...
    @property
    def sso(self) -> _Sso | None: ...

CBS_REBOOT_PENDING = r"HKLM\SOFTWARE\Microsoft\Windows\CurrentVersion\Component Based Servicing\RebootPending"
WU_REBOOT_REQUIRED = r"HKLM\SOFTWARE\Microsoft\Windows\CurrentVersion\WindowsUpdate\Auto Update\RebootRequired"
FILE_RENAMES = r"HKLM\SYSTEM\CurrentControlSet\Control\Session Manager\PendingFileRenameOperations"


def restart_node(host: WindowsHost) -> dict[str, Any]:
    """Ask Windows to restart the node (Restart-Node: shutdown /r); RestartWatch sees it go and come back."""
    return host.invoke("Restart-Node", {})


def pending_restart_reasons(doc: dict[str, Any]) -> tuple[str, ...]:
    """Why Windows owes this host a restart, from Get-HostFacts' `pending_restart` (empty: none owed).
    Every documented marker counts, file renames included (often left by installers, and exactly what a
    restart would still do to files the upgrade may touch): the stricter reading."""
    p = doc.get("pending_restart") or {}
    reasons = []
    if p.get("cbs_reboot_pending"):
        reasons.append(f"{CBS_REBOOT_PENDING} exists (Windows servicing)")
    if p.get("wu_reboot_required"):
        reasons.append(f"{WU_REBOOT_REQUIRED} exists (Windows Update)")
    entries = [str(e) for e in p.get("pending_file_rename_operations") or []]
    sources = [e for e in entries[::2] if e]  # source, target pairs; an empty target is a delete
    if sources:
        reasons.append(f"{FILE_RENAMES} holds {len(sources)} file operation(s) for the next restart, "
                       f"e.g. {sources[0]}")
    return tuple(reasons)


@dataclass
class RestartWatch:
    """Fed every answer (or non-answer) of one node while it restarts; says when it is back."""

    node: str
    booted_before: datetime | None  # Win32_OperatingSystem.LastBootUpTime before the restart began
    gone: bool = False  # seen not answering since the restart began
    last: str = "not asked yet"

    def observe(self, facts: NodeAnswer) -> bool:
        """True once the node is back from its restart."""
        if not facts.reachable:
            self.gone = True
            self.last = f"no answer ({facts.error_kind or 'unreachable'}): it has gone down"
            return False
        booted = facts.last_boot_utc
        if booted is not None and self.booted_before is not None:
            if booted > self.booted_before:  # it went and came back, perhaps between two looks
                self.last = f"answering, booted at {booted.isoformat()} (before: {self.booted_before.isoformat()})"
                return True
            self.last = (f"answering, still booted at {booted.isoformat()}: the restart has not happened yet"
                         + (" (it stopped answering for a while, but did not restart)" if self.gone else ""))
            return False
        # no boot time to compare: only a silence followed by an answer shows the restart
        if self.gone:
            self.last = "answering again after it stopped answering (boot time unknown)"
            return True
        self.last = "answering, boot time unknown, and it has not gone down yet"
        return False

    def evidence(self, facts: NodeAnswer) -> dict[str, Any]:
        return {"booted_before": self.booted_before.isoformat() if self.booted_before else None,
                "booted": facts.last_boot_utc.isoformat() if facts.last_boot_utc else None,
                "seen_down": self.gone, "version": facts.sso.version if facts.sso else None}
