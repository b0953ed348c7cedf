"""SQL Server unavailable for a while (the `sql_unavailable` fault with `seconds`).

An FCI or availability group failover takes SQL Server away and brings it back on its own: the instance
stops on one node and starts on another (or the secondary replica becomes primary), every session is
dropped when it goes (each client's open connection breaks, its session-owned state, e.g. an application
lock, is released), new connections are refused until it answers again, and then it answers as before.
Learn puts the time at the instance's restart and recovery, typically tens of seconds (docs/domain-notes.md,
"A SQL Server outage that heals"). The lab drops the sessions as the cluster model does when SQL Server moves
with a group (every engine's endpoint, entsso.lab.tds), and `seconds` estate seconds later SQL Server answers
again. Without `seconds` the outage lasts until /faults/clear.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from entsso.lab.timedfaults import TimedFaults


@dataclass
class SqlOutages(TimedFaults):
    """The lab's SQL Server outages: `begin(seconds)` drops every session now and refuses new ones; a timer on
    the lab's clock ends it after `seconds` (None: until cleared)."""

    _active: dict[str, Any] | None = None

    def schedule(self, seconds: float | None, after: float) -> None:
        """An outage of `seconds` (None: until cleared) starting `after` estate seconds from now."""
        if after > 0:
            self._timer(after, self.begin, seconds)
        else:
            self.begin(seconds)

    def begin(self, seconds: float | None, why: str = "fault") -> None:
        entry: dict[str, Any] = {"seconds": seconds, "started": self.lab.clock.now().isoformat(), "why": why,
                                 "healed": False, "healed_at": None}
        with self._lock:
            if self._active is not None:  # already down: the outage under way and its end stand
                return
            self._active = entry
            self.log.append(entry)
        for e in self.lab.sql_engines:
            e.set_unavailable(True)  # the endpoints drop every session: their application locks go with them
        if seconds is not None:
            self._timer(seconds, self.heal, entry)

    def heal(self, entry: dict[str, Any] | None = None) -> None:
        """SQL Server answers again (the outage `entry`, or whichever is under way)."""
        with self._lock:
            current = self._active
            if current is None or (entry is not None and current is not entry):
                return
            self._active = None
            current["healed"] = True
            current["healed_at"] = self.lab.clock.now().isoformat()
        for e in self.lab.sql_engines:
            e.set_unavailable(False)

    def clear(self) -> None:
        """The outage ends now and none that is scheduled begins (the control endpoint's /faults/clear)."""
        self._cancel_timers()
        self.heal()
