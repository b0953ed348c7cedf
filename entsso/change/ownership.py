"""The SSO group moved behind the run's back (issue 27 item 3): the cluster fails a group over on its own when
a resource of it fails past its restart threshold (RestartThreshold within RestartPeriod, then RestartAction:
docs/domain-notes.md). Phase 6 proves SSO on each node with the group there; when a read fails on
the node the group was on, the run asks where the group is now. Moved away, the change stops there naming it: the
run did not move it, a resource failed, and what failed must be found before SSO is proven anywhere (a node
whose ENTSSO just failed is no node to prove, nor to leave the group on)."""
from __future__ import annotations

from contextlib import suppress

from entsso.change.run import Run
from entsso.change.steps import stop
from entsso.domain.names import same_name


def stop_if_moved(run: Run, phase: str, node: str, what: str) -> None:
    """Stop the change at `phase` naming the move when the group is no longer on `node`, where the run last
    saw it (`what`: the failure that made the run ask). Returns when the group is still on `node` (or the cluster
    cannot be read: the caller's own stop then says what it knows)."""
    view = None
    with suppress(Exception):  # an estate that cannot be read now: the caller's stop stands
        view = run.snapshot(fresh=True).cluster_view()
    group = view.group if view is not None else None
    if group is None or not group.owner_node or same_name(group.owner_node, node):
        return
    run.journal.write("group_moved_behind", phase=phase, expected=node, owner=group.owner_node, state=group.state)
    stop(run, phase, f"{what}. The SSO group {run.group} is no longer on {node}, where this run last saw it: the "
         f"cluster failed it over on its own to {group.owner_node} (now {group.state}): a resource of the group failed "
         f"on {node} past its restart threshold. This run moved nothing after that. Find why on {node} "
         "(Get-ClusterLog; the FailoverClustering events 1069 (resource failed) and 1153 (the role failed over) in "
         "its System log; ENTSSO's Application log), then continue the change with the command below (phase 6 "
         "proves SSO on each node again), or back it out.")
