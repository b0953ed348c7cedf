"""entsso/cluster.py decides what a moved group may come back as; the remote wait only compares."""
from __future__ import annotations

from typing import Any

from entsso import cluster


class RecordingHost:
    name = "NODE1"

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any], float | None]] = []

    def invoke(self, operation: str, params: dict[str, Any], timeout: float | None = None) -> dict[str, Any]:
        self.calls.append((operation, params, timeout))
        return {"owner_node": params["node"], "state": "PartialOnline"}


def test_a_partial_online_group_may_stay_partial_online_after_a_move():
    assert cluster.STATES_AFTER_MOVE["PartialOnline"] == ("PartialOnline", "Online")


def test_an_online_group_must_come_back_online_after_a_move():
    assert cluster.STATES_AFTER_MOVE["Online"] == ("Online",)


def test_offline_failed_and_pending_groups_are_not_moved():
    assert not {"Offline", "Failed", "Pending"} & set(cluster.STATES_AFTER_MOVE)


def test_the_move_passes_the_accepted_states_to_the_remote_wait():
    host = RecordingHost()
    cluster.ensure_group_owner(host, "SSO", "NODE2", 300)  # type: ignore[arg-type]
    operation, params, timeout = host.calls[0]
    assert operation == "Move-ClusterGroup" and timeout == 360
    assert params == {"group": "SSO", "node": "NODE2", "timeout_sec": 300,
                      "states_after_move": {"Online": ["Online"], "PartialOnline": ["PartialOnline", "Online"]}}
