"""The fan-out over hosts: the same per-host work on every host at once, in a bounded thread pool, with
the results in the hosts' order. The snapshot asks every host this way; the runbook acts on several so."""
from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

MAX_HOSTS_AT_ONCE = 64  # the bounded pool: every host of a real BizTalk group in one wave
T = TypeVar("T")
H = TypeVar("H")  # a host's name, or what names it with more (discover: name and role)


def on_hosts(hosts: Iterable[H], work: Callable[[H], T]) -> list[T]:
    """Run per-host work on every host at once (one worker a host up to MAX_HOSTS_AT_ONCE: with 32 workers
    a 34-host estate asked its last two hosts in a second wave, selftest/bench measured it); results in the
    hosts' order. The first failure is re-raised after all have finished."""
    hosts = list(hosts)
    if not hosts:
        return []
    with ThreadPoolExecutor(max_workers=min(MAX_HOSTS_AT_ONCE, len(hosts))) as pool:
        futures = [pool.submit(work, h) for h in hosts]
        results: list[T] = []
        first_error: BaseException | None = None
        for f in futures:
            try:
                results.append(f.result())
            except BaseException as exc:  # noqa: BLE001 - includes pytest's Failed from phases.stop()
                first_error = first_error or exc
        if first_error:
            raise first_error
        return results
