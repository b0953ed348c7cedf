"""Names the estate and the inventory give one machine: Windows computer and cluster names compare without
regard to case (NetBIOS names are case-insensitive), and a name that is absent matches nothing — an unknown
owner is never taken for the node the run expects."""
from __future__ import annotations


def same_name(a: str | None, b: str | None) -> bool:
    return bool(a) and bool(b) and a.casefold() == b.casefold()  # type: ignore[union-attr]
