"""Phase 5's and the backout's answer to a node whose ENTSSO cannot run the cluster's resource (issue 27
item 2): a service account that cannot log on (the SCM's 1069), a start the cluster gave up on at the
resource's PendingTimeout. Phase 5 stops there, but first takes the group home to the primary (the MSS
through phases 3-4, shown to work) and brings it online there. The backout's aim is
BizTalk back in service from the node that owned the group, so such a node is left out of the master
secret's restore cycle instead of stopping with the group Failed on it: the resource is taken offline there,
the cycle goes on to the primary (restored last, so the group ends on it), and the node is named with the
cluster's answer as read. The final check still asks the secret of every node, so a node left out that
does not hold it stops the backout there."""
from __future__ import annotations

from collections.abc import Callable

from entsso.change import stepnames as S
from entsso.change.run import Run
from entsso.change.steps import console, step, stop
from entsso.domain import cluster
from entsso.domain.outcome import Outcome
from entsso.remote.errors import ScriptError


def bring_online_or_leave_out(run: Run, phase: str, node: str, via: str, timeout: float,
                              move_home: Callable[[], Outcome]) -> bool:
    """Bring the ENTSSO resource online on `node` (the group's owner, asked through `via`). When the cluster
    cannot (the resource Failed) on a node other than the primary: in the backout that node is left out
    (False); in phase 5 the group is taken home to the primary (`move_home`), brought online there, and the
    phase stops naming the cause. Anywhere else a failure stops the phase as every step's does; so does a
    resource still coming online (slow, not failed: the group is not moved under a start)."""
    host = run.hosts[via]
    primary = run.primary_node()
    leave_out = phase in ("backout", "recluster") and node != primary

    def online() -> Outcome:
        try:
            return cluster.ensure_resource_state(host, run.resource, "Online", timeout)
        except ScriptError as exc:
            if not leave_out:
                raise
            return Outcome(False, {"error": str(exc)}, word="left out" if phase == "backout" else "failed")

    done = step(run, phase, S.BRING_RESOURCE_ONLINE, node, online)
    if done.outcome not in ("left out", "failed"):
        return True
    error = str(done.evidence["error"]).splitlines()[0]
    step(run, phase, S.TAKE_RESOURCE_OFFLINE, node,
         lambda: cluster.ensure_resource_state(host, run.resource, "Offline", timeout))
    if phase != "backout":
        step(run, phase, S.move_group_back_to(primary), primary, move_home)
        step(run, phase, S.BRING_RESOURCE_ONLINE, primary,
             lambda: cluster.ensure_resource_state(host, run.resource, "Online", timeout))
        stop(run, phase, f"the cluster could not bring ENTSSO online on {node} ({error}). The group was moved back "
             f"to {primary} and is Online there: BizTalk's SSO is served from the node that held the master secret "
             f"through phases 3-4. Fix ENTSSO's start on {node} (its service account, its start time against the "
             "resource's PendingTimeout: Get-ClusterResource ENTSSO | fl *), then resume; or back the change out.")
    _leave_out(run, phase, node, error)
    return False


def move_or_leave_out(run: Run, phase: str, node: str, via: str, timeout: float,
                      move: Callable[[], Outcome]) -> bool:
    """Move the group to `node` for its restore. In the backout, a move the cluster refuses because the
    resource cannot come online there (the group Failed on `node`) leaves that node out (False)."""
    host = run.hosts[via]
    leave_out = phase == "backout" and node != run.primary_node()

    def act() -> Outcome:
        try:
            return move()
        except ScriptError as exc:
            if not leave_out:
                raise
            return Outcome(False, {"error": str(exc)}, word="left out")

    done = step(run, phase, S.move_group_to(node), via, act)
    if done.outcome != "left out":
        return True
    error = str(done.evidence["error"]).splitlines()[0]
    step(run, phase, S.TAKE_RESOURCE_OFFLINE, node,
         lambda: cluster.ensure_resource_state(host, run.resource, "Offline", timeout))
    _leave_out(run, phase, node, error)
    return False


def _leave_out(run: Run, phase: str, node: str, error: str) -> None:
    why = (f"{node} was left out of the backout's restore: the cluster could not bring ENTSSO online there "
           f"({error}). The group goes back to {run.primary_node()}; it cannot fail over to {node} until ENTSSO "
           f"starts there (fix its cause, then move the group to {node} once to prove it)")
    run.left_out[node] = why
    run.journal.write("node_left_out", phase=phase, node=node, message=why)
    console(run, f"  {node:<10} {why}")
