"""The runbook's steps for the cluster topologies beyond a dedicated MSS cluster (issue 26; docs/runbook.md,
"Cluster topologies"), called by entsso.change.runbook at the places they belong:

- SSO with clustered BizTalk hosts: the group's clustered host instances (and IIS for isolated hosts) are
  silenced and restored through the cluster (Stop-/Start-ClusterResource), never through the SCM, whose stop
  the cluster's restart policy would answer; host instances installed on the nodes outside the cluster are
  stopped before anything moves the group (they keep ENTSSO from stopping) and restored as the baseline says.
- MSS inside SQL Server's role (with --allow-sql-failover): after each move of the group SQL Server comes
  online on the new node; the run waits for it to answer and takes the estate lock again (the move dropped the
  lock's session).
"""
from __future__ import annotations

import time
from functools import partial
from typing import Any

from entsso.change import stepnames as S
from entsso.change.run import Baseline, Run
from entsso.change.steps import step
from entsso.domain import biztalk, cluster
from entsso.domain.errors import DomainError
from entsso.domain.outcome import Outcome
from entsso.remote import tsql
from entsso.remote.sql import SqlError


class SqlWouldMove(DomainError):
    """A move of the SSO group would move SQL Server, and the operator has not accepted it."""


def _owner(run: Run, baseline: Baseline) -> str:
    return baseline.group_owner or run.primary_node()


def _resources(run: Run, via: str, names: list[str], state: str) -> Outcome:
    t = run.inventory.timeouts.group_move
    return Outcome.of_documents([cluster.ensure_resource_state(run.hosts[via], n, state, t).evidence for n in names])


def silence_cluster(run: Run, baseline: Baseline) -> None:
    """Phase 1 on the cluster: the clustered host instances and IIS offline through the cluster, then the host
    instances outside the cluster stopped through each node's SCM (before any move of the group)."""
    clustered = list(baseline.clustered_resources)
    if clustered:
        via = _owner(run, baseline)
        step(run, "silence", S.TAKE_CLUSTERED_HOSTS_OFFLINE, via,
             lambda: _resources(run, via, clustered, "Offline"), resources=clustered)
    timeout = run.inventory.timeouts.service_stop
    for node, instances in baseline.node_host_instances.items():
        wanted = [(n, "Stopped") for n in instances]
        step(run, "silence", S.STOP_NODE_HOST_INSTANCES, node,
             partial(biztalk.ensure_host_instances, run.hosts[node], wanted, timeout),
             host_instances=[n for n, _ in wanted])


def restore_cluster(run: Run, baseline: Baseline, phase: str) -> None:
    """Phase 7 and the backout on the cluster, the group back on its owner: the clustered host instances and IIS
    that were online brought online through the cluster, then the host instances outside the cluster that ran
    started again on their nodes."""
    online = [n for n, st in baseline.clustered_resources.items() if st == "Online"]
    if online:
        via = _owner(run, baseline)
        step(run, phase, S.BRING_CLUSTERED_HOSTS_ONLINE, via, lambda: _resources(run, via, online, "Online"),
             resources=online)
    timeout = run.inventory.timeouts.service_start
    for node, instances in baseline.node_host_instances.items():
        wanted = [(n, "Running") for n, st in instances.items() if st == "Running"]
        if wanted:
            step(run, phase, S.START_NODE_HOST_INSTANCES, node,
                 partial(biztalk.ensure_host_instances, run.hosts[node], wanted, timeout),
                 host_instances=[n for n, _ in wanted])


def sql_moves_with_group(run: Run) -> bool:
    """The SSO group holds SQL Server (the MSS inside SQL Server's role, run with --allow-sql-failover)."""
    return bool(run.topology and run.topology.get("sql_in_sso_group"))


def before_group_move(run: Run, node: str) -> None:
    """SQL Server in the group: its outage begins with the move (the timeline and the journal show it). Without
    the operator's --allow-sql-failover (a resumed run skips the gate that asks for it) nothing moves."""
    if sql_moves_with_group(run) and not run.options.allow_sql_failover:
        held = ", ".join((run.topology or {}).get("sql_in_sso_group") or [])
        raise SqlWouldMove(f"the SSO group {run.group} holds SQL Server ({held}): moving it to {node} would fail "
                           "SQL Server over, an outage of every BizTalk database. Nothing was moved. Continue with "
                           "--allow-sql-failover to accept SQL Server's failovers.")
    if sql_moves_with_group(run):
        run.journal.write("sql_unavailable", phase=run.current_phase, host=None, to=node,
                          roles=list((run.topology or {}).get("sql_in_sso_group") or []))


def after_group_moved(run: Run, phase: str, node: str) -> None:
    """A move of a group that holds SQL Server: wait for SQL Server to answer on `node`, then take the estate
    lock again (its session was dropped with the move)."""
    if not sql_moves_with_group(run):
        return
    timeout = run.inventory.timeouts.group_move
    waited = step(run, phase, S.WAIT_FOR_SQL, node, lambda: _wait_for_sql(run, timeout))
    run.journal.write("sql_back", phase=phase, host=None, on=node, **waited)
    if run.estate_lock is not None:
        step(run, phase, S.RETAKE_ESTATE_LOCK, None, lambda: _retake_lock(run))


def _wait_for_sql(run: Run, timeout: float) -> dict[str, Any]:
    started = time.monotonic()
    errors: list[str] = []

    def answers() -> bool | None:
        run.sql.close()  # the move ended every session of this run on SQL Server: the next ones are new
        try:
            run.sql.ssodb.execute(tsql.NOW)
            return True
        except SqlError as exc:
            errors[-1:] = [str(exc)]
            return None

    run.poller.until(answers, timeout, what="SQL Server to answer after the group moved",
                     describe=lambda: errors[-1] if errors else "no answer yet")
    return {"seconds_unavailable_seen": round(time.monotonic() - started, 1), "last_error": errors[-1] if errors
            else None}


def _retake_lock(run: Run) -> dict[str, Any]:
    return dict(run.estate_lock.retake())


# --- the plan (entsso.change.plan) ------------------------------------------------------------------------
def plan_silence(p: Any, run: Run, b: Baseline) -> None:
    if b.clustered_resources:
        via = _owner(run, b)
        p.add("silence", S.TAKE_CLUSTERED_HOSTS_OFFLINE, via, ", ".join(
            f"{n} {st} → Offline (Stop-ClusterResource, never the SCM)" for n, st in b.clustered_resources.items()))
    for node, instances in b.node_host_instances.items():
        p.add("silence", S.STOP_NODE_HOST_INSTANCES, node, ", ".join(
            f"BTSSvc${n} {st} → Stopped (outside the cluster: it would block the group's moves)"
            for n, st in instances.items()), already=all(st == "Stopped" for st in instances.values()))


def plan_after_move(p: Any, run: Run, phase: str, node: str) -> None:
    if sql_moves_with_group(run):
        p.add(phase, S.WAIT_FOR_SQL, node, f"SQL Server offline while the group moves → answering on {node}")
        p.add(phase, S.RETAKE_ESTATE_LOCK, None, "the estate lock (its session dropped with SQL Server) → held")


def plan_resume(p: Any, run: Run, b: Baseline, phase: str = "resume") -> None:
    online = [n for n, st in b.clustered_resources.items() if st == "Online"]
    if online:
        p.add(phase, S.BRING_CLUSTERED_HOSTS_ONLINE, _owner(run, b),
              ", ".join(f"{n} Offline → Online (Start-ClusterResource)" for n in online))
    for node, instances in b.node_host_instances.items():
        ran = [n for n, st in instances.items() if st == "Running"]
        if ran:
            p.add(phase, S.START_NODE_HOST_INSTANCES, node, ", ".join(f"BTSSvc${n} → Running" for n in ran))


def plan_notes(run: Run) -> list[str]:
    """What the operator must know of this topology before phase 1 (the plan's checklist)."""
    t = run.topology or {}
    if not t:
        return []
    out = [f"The cluster is a {t.get('name') or 'topology the suite does not know'}: {t.get('seen')}."]
    for role in t.get("sql_roles") or []:
        out.append(f"{role['owner_node']} owns the active SQL Server instance {role['sql_server']} ({role['role']}): "
                   f"its upgrade (phase 4) runs ESSO Setup beside the active SQL Server; the suite never moves "
                   f"SQL Server's role ({role['role']} stays on {role['owner_node']}), only the SSO group.")
    if t.get("sql_in_sso_group"):
        out.append("Each move of the SSO group (phase 5: one per node; phase 6: one per node and back) moves SQL "
                   f"Server ({', '.join(t['sql_in_sso_group'])}): every BizTalk database is unavailable until it is "
                   "online on the new node. BizTalk is silenced meanwhile; after each move the run waits for SQL "
                   "Server to answer and takes the estate lock again.")
    out += list(t.get("warnings") or [])
    return out
