"""Waiting on the estate: poll a fact until it holds, with a backoff that starts fast and never waits
more than `cap` seconds between looks (so the suite reacts within a second of the change), and a
deadline that says what it saw last."""
from __future__ import annotations
from entsso.domain.errors import DomainError

import time
from dataclasses import dataclass, field
from typing import TypeVar
from collections.abc import Callable

T = TypeVar("T")


class WaitTimedOut(DomainError):
    def __init__(self, what: str, seconds: float, last: object, seen: str | None = None) -> None:
        # `seen`, when the caller can say it in words ("it reported 10.0.1000.0 the whole time"), replaces
        # the bare last value
        super().__init__(f"gave up waiting for {what} after {seconds:.0f} s"
                         + (f"; {seen}" if seen else f" (last seen: {last})"))
        self.what = what
        self.last = last


@dataclass
class Poller:
    first: float = 0.2
    factor: float = 1.5
    cap: float = 1.0
    waited: float = 0.0  # total seconds spent sleeping (the benchmark's "waiting on the estate")
    polls: int = 0
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False)

    def until(self, check: Callable[[], T | None], timeout: float, *, what: str,
              describe: Callable[[], object] | None = None, seen: Callable[[], str] | None = None) -> T:
        deadline = time.monotonic() + timeout
        delay = self.first
        while True:
            self.polls += 1
            result = check()
            if result:
                return result
            now = time.monotonic()
            if now >= deadline:
                raise WaitTimedOut(what, timeout, describe() if describe else result, seen() if seen else None)
            pause = min(delay, self.cap, deadline - now)
            self.sleep(pause)
            self.waited += pause
            delay *= self.factor
