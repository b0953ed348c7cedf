"""entsso/domain/cluster.py: what a moved group may come back as (the remote wait only compares), and the
State names the FailoverClusters cmdlets give, refused with the value shown when they are not."""
from __future__ import annotations

from typing import Any

import pytest

from entsso.domain import cluster


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


def _doc(node_state: str = "Up", group_state: str = "PartialOnline", resource_state: str = "Offline") -> dict[str, Any]:
    return {"cluster": {"nodes": [{"name": "NODE1", "state": node_state}],
                        "group": {"name": "SSO", "state": group_state, "owner_node": "NODE1"},
                        "resource": {"name": "ENTSSO", "state": resource_state, "owner_node": "NODE1"}}}


def test_the_cmdlets_state_names_are_read_as_they_are():
    c = cluster.parse_cluster("NODE1", _doc("Paused", "PartialOnline", "OnlinePending"))
    assert (c.nodes[0].state, c.group.state, c.resource.state) == ("Paused", "PartialOnline", "OnlinePending")


@pytest.mark.parametrize("doc, shown", [
    (_doc(group_state="Partially Online"), "Get-ClusterGroup on NODE1 gave SSO the State 'Partially Online'"),
    (_doc(resource_state="3"), "Get-ClusterResource on NODE1 gave ENTSSO the State '3'"),
    (_doc(node_state="up"), "Get-ClusterNode on NODE1 gave NODE1 the State 'up'"),
])
def test_a_state_no_cmdlet_gives_raises_showing_it(doc, shown):
    with pytest.raises(cluster.UnknownClusterState) as info:
        cluster.parse_cluster("NODE1", doc)
    assert str(info.value).startswith(shown)


@pytest.mark.parametrize("state, holds", [("Online", True), ("Pending", True), ("OnlinePending", True),
                                          ("OfflinePending", True), ("Initializing", True),
                                          ("Offline", False), ("Failed", False)])
def test_the_cluster_keeps_its_own_entsso_from_the_scm_in_every_state_it_runs_or_starts_it(state, holds):
    facts = cluster.parse_cluster("NODE2", _doc(group_state="Online", resource_state=state))
    assert cluster.cluster_runs_entsso_on(facts) == ("NODE1" if holds else None)


def test_no_cluster_view_leaves_every_node_to_the_scm():
    assert cluster.cluster_runs_entsso_on(None) is None


def test_a_move_refused_to_a_node_paused_since_the_gate_says_so_and_what_to_do():
    facts = cluster.parse_cluster("NODE1", {"cluster": {**_doc()["cluster"], "nodes": [
        {"name": "NODE1", "state": "Up"}, {"name": "NODE2", "state": "Paused"}]}})
    why = cluster.why_cannot_own(facts, "NODE2")
    assert why and why.startswith("NODE2 is Paused in the cluster") and "Resume-ClusterNode NODE2" in why
    assert cluster.why_cannot_own(facts, "NODE1") is None


def test_a_move_refused_to_a_node_down_or_no_longer_a_possible_owner_says_which():
    doc = _doc()["cluster"]
    down = cluster.parse_cluster("NODE1", {"cluster": {**doc, "nodes": [{"name": "NODE2", "state": "Down"}]}})
    assert "NODE2 is Down in the cluster" in (cluster.why_cannot_own(down, "NODE2") or "")
    owners = {**doc["resource"], "possible_owners": ["NODE1"]}
    not_owner = cluster.parse_cluster("NODE1", {"cluster": {**doc, "resource": owners,
                                                            "nodes": [{"name": "NODE2", "state": "Up"}]}})
    assert "no longer a possible owner of cluster resource ENTSSO (possible owners: NODE1)" in (
        cluster.why_cannot_own(not_owner, "NODE2") or "")
    assert cluster.why_cannot_own(not_owner, "NODE3") is None  # not a member: the move's own error says it
