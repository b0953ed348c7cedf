"""What the lab's faults with a duration share (entsso.lab.network, entsso.lab.sqloutage): timers on the lab's
clock (estate seconds), cancelled when the faults are cleared or the lab stops, and a log of each fault for the
state dump."""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any


@dataclass
class TimedFaults:
    lab: Any  # entsso.lab.server.Lab
    log: list[dict[str, Any]] = field(default_factory=list)  # each fault as it began, and how it ended
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _timers: list[threading.Timer] = field(default_factory=list)

    def _timer(self, estate_seconds: float, action: Any, *args: Any) -> None:
        t = threading.Timer(self.lab.clock.real(estate_seconds), action, args=args)
        t.daemon = True
        t.start()
        with self._lock:
            self._timers.append(t)

    def _cancel_timers(self) -> None:
        with self._lock:
            timers, self._timers = self._timers, []
        for t in timers:
            t.cancel()

    def stop(self) -> None:
        """The lab stops: nothing scheduled begins or ends any more."""
        self._cancel_timers()

    def dump(self) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(e) for e in self.log]
