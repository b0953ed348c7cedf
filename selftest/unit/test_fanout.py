"""The fan-out over hosts (entsso.remote.fanout.on_hosts): every host at once, results in the hosts' order,
and a failure re-raised only once every host's work has finished (a half-done wave is never left running)."""
from __future__ import annotations

import threading
import time

import pytest

from entsso.remote.fanout import MAX_HOSTS_AT_ONCE, on_hosts


def test_results_come_back_in_the_hosts_order_whatever_order_they_finish_in():
    delays = {"NODE1": 0.06, "NODE2": 0.0, "BTS1": 0.03}

    def work(host: str) -> str:
        time.sleep(delays[host])
        return host.lower()

    assert on_hosts(delays, work) == ["node1", "node2", "bts1"]
    assert on_hosts([], work) == []


def test_every_host_is_asked_at_once_up_to_the_bound():
    hosts = [f"BTS{i}" for i in range(MAX_HOSTS_AT_ONCE + 6)]
    lock, running, most = threading.Lock(), [0], [0]

    def work(host: str) -> None:
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        time.sleep(0.05)
        with lock:
            running[0] -= 1

    on_hosts(hosts, work)
    assert 1 < most[0] <= MAX_HOSTS_AT_ONCE


def test_the_first_failure_is_raised_after_every_host_has_finished():
    finished: list[str] = []

    def work(host: str) -> None:
        if host == "NODE1":
            raise RuntimeError("NODE1 failed first")
        time.sleep(0.05)
        finished.append(host)

    with pytest.raises(RuntimeError, match="NODE1 failed first"):
        on_hosts(["NODE1", "NODE2", "BTS1"], work)
    assert sorted(finished) == ["BTS1", "NODE2"]


def test_the_snapshot_still_hands_out_the_same_fan_out():
    from entsso.estate import snapshot

    assert snapshot.on_hosts is on_hosts and snapshot.MAX_HOSTS_AT_ONCE == MAX_HOSTS_AT_ONCE
