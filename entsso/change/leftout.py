"""The backout's answer to a node whose ENTSSO cannot run the cluster's resource (issue 27 item 2): a
service account that cannot log on (the SCM's 1069), a start the cluster gave up on. The backout's aim is
BizTalk back in service from the node that owned the group, so such a node is left out of the master
secret's restore cycle instead of stopping with the group Failed on it: the resource is taken offline there,
the cycle goes on to the primary (restored last, so the group ends on it), and the node is named with the
cluster's answer as read. The final check still asks the secret of every node, so a node left out that
does not hold it stops the backout there."""
from __future__ import annotations

from entsso.change import stepnames as S
from entsso.change.run import Run
from entsso.change.steps import console, step
from entsso.domain import cluster
from entsso.domain.outcome import Outcome
from entsso.remote.errors import ScriptError


def bring_online_or_leave_out(run: Run, phase: str, node: str, via: str, timeout: float) -> bool:
    """Bring the ENTSSO resource online on `node` (the group's owner, asked through `via`). In the backout a
    node other than the primary whose resource the cluster cannot bring online is left out (False);
    anywhere else a failure stops the phase as every step's does."""
    host = run.hosts[via]
    leave_out = phase == "backout" and node != run.primary_node()

    def online() -> Outcome:
        try:
            return cluster.ensure_resource_state(host, run.resource, "Online", timeout)
        except ScriptError as exc:
            if not leave_out:
                raise
            return Outcome(False, {"error": str(exc)}, word="left out")

    done = step(run, phase, S.BRING_RESOURCE_ONLINE, node, online)
    if done.outcome != "left out":
        return True
    error = str(done.evidence["error"]).splitlines()[0]
    step(run, phase, S.TAKE_RESOURCE_OFFLINE, node,
         lambda: cluster.ensure_resource_state(host, run.resource, "Offline", timeout))
    why = (f"{node} was left out of the backout's restore: the cluster could not bring ENTSSO online there "
           f"({error}). The group goes back to {run.primary_node()}; it cannot fail over to {node} until ENTSSO "
           f"starts there (fix its cause, then move the group to {node} once to prove it)")
    run.left_out[node] = why
    run.journal.write("node_left_out", phase=phase, node=node, message=why)
    console(run, f"  {node:<10} {why}")
    return False
