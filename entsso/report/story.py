"""The change's verdict and where the estate is: what a change manager reads first, and what the
business lives with while a change is unfinished (BizTalk down compared with the baseline, and since
when; which SSO server is the master secret server; which node runs which version).

verdict: completed (the upgrade verified, BizTalk back in service) | backed-out (the estate back in
service, the upgrade not done) | stopped | interrupted | refused (the gate said no and nothing changed) |
read-only. Nothing but a change that went through phase 7, verified, with no failed check, is `completed`;
a backout is never `completed` (a change manager would close the ticket as a successful upgrade).
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from entsso.change import journal
from entsso.change.run import Baseline, Run
from entsso.domain import change
from entsso.domain.biztalk import RULE_ENGINE
from entsso.domain.sso import ENTSSO
from entsso.estate.snapshot import Snapshot

VERDICTS = ("completed", "backed-out", "stopped", "interrupted", "refused", "read-only")
PHASE_TITLES = {**change.ALL_TITLES, "gate": "the gate"}


@dataclass(frozen=True)
class Verdict:
    verdict: str
    reason: str  # one sentence for the banner
    phase: str | None = None  # where it stopped or was interrupted

    @property
    def in_service(self) -> bool:
        return self.verdict in ("completed", "backed-out", "refused", "read-only")


def change_began(run: Run) -> bool:
    """This ticket's change has acted (this run recorded it, or an earlier one did)."""
    if run.change_record is not None:
        return True
    return run._snapshot is not None and bool(run.options.change_ticket) and run.history().began


def finished_phases(run: Run) -> set[str]:
    done = {p for p, st in run.phase_stats.items() if st.get("outcome") == "done"}
    if run.change_record is not None:
        done |= set(run.change_record.phases_finished)
    if run._snapshot is not None and run.options.change_ticket:
        done |= set(run.history().finished_phases)
    return done


def verdict(run: Run, failed_tests: Iterable[str] = (), *, gate_only: bool = False) -> Verdict:
    failed = list(failed_tests)
    if not run.options.apply:
        return Verdict("read-only", "A read-only run: nothing was changed."
                       + (f" {len(failed)} check(s) did not hold." if failed else " Every check held."))
    if run.interrupted:
        where = run.current_phase
        return Verdict("interrupted", f"Interrupted ({run.interrupted}) in phase {PHASE_TITLES.get(where, where)}: "
                       "the change is unfinished and BizTalk is not back in service unless shown below.", where)
    if run._snapshot is None and run.change_record is None:
        return Verdict("refused", "The run ended before it read the estate: nothing was changed.")
    if run.stopped:
        where, message = run.stopped
        if where == "gate" and not change_began(run):
            return Verdict("refused", "The gate refused the change: nothing was changed. "
                           + message.splitlines()[0], where)
        return Verdict("stopped", f"Stopped in phase {PHASE_TITLES.get(where, where)}: {message.splitlines()[0]}",
                       where)
    done = finished_phases(run)
    if failed:
        return Verdict("stopped", f"{len(failed)} check(s) failed, so the change is not proved complete "
                       f"(first: {failed[0]}).", run.current_phase)
    if run.options.backout:
        if run.phase_stats.get("backout", {}).get("outcome") == "done":
            return Verdict("backed-out", "The change was backed out: the upgrade is not done; the estate is back in "
                           "service (the MSS clustered on the cluster name, the master secret on every node, "
                           "BizTalk back as before the change)."
                           + "".join(f" But {why}." for why in run.left_out.values()))
        return Verdict("stopped", "The backout did not finish.", "backout")
    if "resume" in done:
        return Verdict("completed", "The change is complete: SSO upgraded, the MSS clustered again, BizTalk back "
                       "as before the change.")
    if gate_only or ("backup" in done and "uncluster" not in done and not run.options.keep_silenced):
        return Verdict("stopped", "Phases 1–2 done as asked (pytest tests_pre --apply): BizTalk is silenced and "
                       "backed up; the change is unfinished until its full run.", "backup")
    if run.options.keep_silenced and "failover" in done:
        return Verdict("stopped", "Upgraded and clustered again; BizTalk left silenced as asked (--keep-silenced): "
                       "the change is unfinished until phase 7 puts BizTalk back.", "failover")
    return Verdict("stopped", "The run ended before the change was complete.", run.current_phase)


@dataclass(frozen=True)
class Down:
    what: str  # "host instance ReceiveHost on BTS1", "RuleEngineUpdateService on BTS1", "job X"
    before: str
    now: str
    since: str | None  # when this change stopped or disabled it (UTC, with its offset)


@dataclass(frozen=True)
class Outage:
    """The estate compared with the change's baseline."""

    down: tuple[Down, ...] = ()
    secret_server: str | None = None
    resource: str | None = None  # "Online on NODE1"
    versions: dict[str, str | None] = field(default_factory=dict)
    unreachable: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"down": [d.__dict__ for d in self.down], "secret_server": self.secret_server,
                "resource": self.resource, "versions": self.versions, "unreachable": list(self.unreachable)}


def _since(run: Run) -> dict[tuple[str, str], str]:
    """When this change first stopped each host's BizTalk and disabled each job (its journals here)."""
    out: dict[tuple[str, str], str] = {}
    earlier = run.history().local if run._snapshot is not None and run.options.change_ticket else ()
    paths = [run.dir.parent / p.run_id / "journal.jsonl" for p in earlier]
    for path in [*paths, run.dir / "journal.jsonl"]:
        for r in journal.read(path):
            if r.get("kind") != "result" or r.get("phase") != "silence" or r.get("outcome") != "ok":
                continue
            key = ("job", r["job"]) if r.get("job") else ("host", r.get("host") or "")
            out.setdefault(key, r["ts"])
    return out


def outage(run: Run, baseline: Baseline, s: Snapshot) -> Outage:
    since = _since(run)
    down: list[Down] = []
    unreachable = tuple(h.name for h in s.hosts.values() if not h.reachable)
    for server, instances in baseline.host_instances.items():
        h = s.hosts.get(server)
        if h is None or not h.reachable:
            continue
        now = {i.host_name: i.state for i in h.host_instances if i.in_process}
        for name, before in instances.items():
            if before == "Running" and now.get(name) != "Running":
                down.append(Down(f"host instance {name} on {server}", before, str(now.get(name)),
                                 since.get(("host", server))))
        for svc, was in ((ENTSSO, baseline.entsso.get(server)), (RULE_ENGINE, baseline.rule_engine.get(server))):
            if was == "Running" and not h.service(svc).running:
                down.append(Down(f"{svc} on {server}", was, str(h.service(svc).status),
                                 since.get(("host", server))))
    if s.sql.reachable:
        for job, was_enabled in baseline.jobs_enabled.items():
            j = s.sql.jobs.get(job)
            if was_enabled and (j is None or not j.enabled):
                down.append(Down(f"SQL Agent job {job}", "enabled", "disabled" if j else "missing",
                                 since.get(("job", job))))
    view = s.cluster_view()
    resource = (f"{view.resource.state} on {view.resource.owner_node}" if view and view.resource else None)
    return Outage(tuple(down), s.sql.secret_server if s.sql.reachable else None, resource,
                  {h.name: (h.sso.version if h.sso else None) for h in s.hosts.values() if h.reachable}, unreachable)


def upgraded_nodes(run: Run, s: Snapshot) -> str:
    """After a backout, which nodes stay upgraded (a backout does not downgrade SSO): one sentence."""
    stay = [h.name for h in s.nodes if h.reachable and h.sso and h.sso.version == run.target_version(h.name)]
    others = [h.name for h in s.nodes if h.name not in stay]
    if not stay:
        return "No node was upgraded: every node runs the version it ran before the change."
    kept = ", ".join(f"{n} ({run.target_version(n)})" for n in stay)
    return (f"{kept} stay{'s' if len(stay) == 1 else ''} upgraded" + (f"; {', '.join(others)} not" if others else "")
            + ": SSO is not downgraded by a backout.")


def continue_line(run: Run) -> str:
    """What to do next, for an unfinished change: the command, alone at the end of its line."""
    return f"Continue this change with: {run.resume_command()}"


def record_line(run: Run) -> str | None:
    record = run.change_record or (run.history().record if run._snapshot is not None and run.options.change_ticket
                                   else None)
    return f"The change's record (its baseline): {record.path} on {record.kept_on}" if record else None


def phase_number(name: str) -> int | None:
    return change.PHASE_NUMBERS.get(name)
