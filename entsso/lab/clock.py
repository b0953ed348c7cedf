"""The lab's one clock: every delay the simulated estate has runs on it.

Estate delays (a service starting, a job running, a group moving) are given in *estate seconds* in the
scenario. With speed S, one estate second lasts 1/S real seconds, so selftests run the estate fast
(S=50) and benchmarks at realistic speed (S=1). Timestamps the estate reports (backup finish dates,
file write times, job history) are estate time, which starts at the real UTC time the lab started.
"""
from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta, UTC


class Clock:
    """Estate time = start + (real elapsed) * speed. Thread-safe; sleeping honours the speed."""

    def __init__(self, speed: float = 1.0, start: datetime | None = None) -> None:
        if speed <= 0:
            raise ValueError("clock speed must be > 0")
        self.speed = float(speed)
        self._t0 = time.monotonic()
        self._start = start or datetime.now(UTC)
        self._cond = threading.Condition()

    def now(self) -> datetime:
        """Estate time, timezone-aware UTC."""
        return self._start + timedelta(seconds=(time.monotonic() - self._t0) * self.speed)

    def elapsed(self) -> float:
        """Estate seconds since the lab started."""
        return (time.monotonic() - self._t0) * self.speed

    def real(self, estate_seconds: float) -> float:
        """How many real seconds `estate_seconds` of estate time last."""
        return max(0.0, estate_seconds) / self.speed

    def sleep(self, estate_seconds: float) -> None:
        """Block the calling thread for `estate_seconds` of estate time."""
        if estate_seconds > 0:
            time.sleep(estate_seconds / self.speed)

    def deadline(self, estate_seconds: float) -> float:
        """A monotonic (real) deadline `estate_seconds` of estate time from now."""
        return time.monotonic() + self.real(estate_seconds)
