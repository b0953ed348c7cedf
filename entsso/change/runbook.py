"""The runbook's phases as sequences of operations. Fixtures call these; each step is journalled
(intent, then result with evidence), acts only when the estate is not already so, and is verified by
re-reading the facts. A failure stops the phase with a message that says what happened and what to do."""
from __future__ import annotations

import base64
import dataclasses
import hashlib
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator, TypeVar

import pytest

from entsso.domain import backup, biztalk, change, cluster, restart, services, sqlagent, sso
from entsso.estate import checks as gate
from entsso.change import window
from entsso.domain.biztalk import RULE_ENGINE
from entsso.estate.snapshot import HostFacts, Snapshot, on_hosts
from entsso.domain.poll import Poller, WaitTimedOut
from entsso.change.run import Baseline, Run
from entsso.remote.sql import SqlError
from entsso.domain.sso import ENTSSO
from entsso.remote.winrm import RemoteError

T = TypeVar("T")
log = logging.getLogger("entsso.phases")



class PhaseFailed(Exception):
    pass


def stop(run: Run, phase: str, message: str) -> None:
    """End the phase: journal it and fail the fixture (every later phase depends on it, so nothing after
    it changes the estate)."""
    with run.step_gate:  # atomic with step()'s check-and-intent: no step can start after this record
        run.stopped = (phase, message)
        run.journal.write("phase_stopped", phase=phase, message=message,
                          resume=run.resume_command())
    pytest.fail(f"[{phase}] {message}\nWhen fixed, continue the change with: {run.resume_command()}", pytrace=False)


# what operations raise when the estate refuses or does not answer; anything else is a bug, still stopped
EXPECTED_FAILURES = (RemoteError, SqlError, WaitTimedOut, backup.BackupFailed, LookupError, RuntimeError)


def step(run: Run, phase: str, name: str, host: str | None, action: Callable[[], T], **intent: Any) -> T:
    """One operation: journal the intent, run it, journal the result (or the failure) and return it.
    Once any step of the run has stopped it (a concurrent host's, say), no new step starts."""
    key = (phase, name, host)
    with run.step_gate:  # atomic with stop(): an intent is never journalled after the stop record
        stopped = run.stopped or (("interrupted", run.interrupted) if run.interrupted else None)
        if stopped is None:
            record = run.journal.intent(phase, name, host, **intent)
            run.in_flight[key] = record["ts"]
    if stopped is not None:
        pytest.fail(f"[{phase}] {name}{' on ' + host if host else ''} not started: the run "
                    + (f"was interrupted ({run.interrupted})" if stopped[0] == "interrupted"
                       else f"stopped in phase {stopped[0]}"), pytrace=False)
    log.info("%s%s: started", name, f" on {host}" if host else "")
    started = time.monotonic()
    failure: str | None = None
    try:
        result = action()
    except (KeyboardInterrupt, SystemExit) as exc:  # SIGINT/SIGTERM/SIGHUP while this step ran here
        run.journal.result(phase, name, host, "interrupted", error=f"interrupted ({run.interrupted or type(exc).__name__}) "
                           "while this step ran: its effect is unknown until the estate is read again",
                           seconds=round(time.monotonic() - started, 3), **intent)
        run.in_flight.pop(key, None)
        raise
    except Exception as exc:  # noqa: BLE001 - every failure is journalled and stops the run (pytest's own pass)
        known = isinstance(exc, EXPECTED_FAILURES)
        text = str(exc) if known else f"{type(exc).__name__}: {exc}"
        run.journal.result(phase, name, host, "failed", error=text,
                           seconds=round(time.monotonic() - started, 3), **intent)
        run.in_flight.pop(key, None)
        where = f"{name}{' on ' + host if host else ''}"
        if known:
            log.error("%s: failed: %s", where, exc)
            failure = f"{where} failed: {text}"
        else:
            log.exception("%s: unexpected error", where)
            failure = (f"{where} failed with an unexpected error ({text}). Check the host and the estate's "
                       "state before resuming, and report this error to the entsso-upgrade maintainers.")
    if failure is not None:
        # stopped outside the except block: the operator sees one message, not the cause's traceback
        # chained under "During handling of the above exception" (the journal and the log keep the cause)
        stop(run, phase, failure)
    outcome = _outcome(result)
    run.journal.result(phase, name, host, outcome, evidence=result,
                       seconds=round(time.monotonic() - started, 3), **intent)
    run.in_flight.pop(key, None)
    log.info("%s%s: %s in %.1f s", name, f" on {host}" if host else "", outcome, time.monotonic() - started)
    _console(run, f"  {host or 'SQL Server':<10} {name}{' (' + intent['job'] + ')' if intent.get('job') else ''}: "
                  f"{'done' if outcome == 'ok' else outcome} ({time.monotonic() - started:.1f} s)")
    return result


def _console(run: Run, line: str) -> None:
    """A line for the person at the console (entsso.change.operator), when there is one."""
    operator = getattr(run, "operator", None)
    if operator is not None:
        operator.tell(line)


def _outcome(result: Any) -> str:
    """'unchanged' when the operation reports it found the estate already so, else 'ok'."""
    if isinstance(result, bool):  # an operation that returns whether it changed anything
        return "ok" if result else "unchanged"
    flags: list[bool] = []

    def walk(o: Any) -> None:
        if isinstance(o, dict):
            if isinstance(o.get("changed"), bool):
                flags.append(o["changed"])
            for v in o.values():
                walk(v)
        elif isinstance(o, (list, tuple)):
            for v in o:
                walk(v)
        elif hasattr(o, "__dataclass_fields__"):
            walk(getattr(o, "__dict__", {}))

    walk(result)
    if isinstance(result, dict) and isinstance(result.get("exit_code"), int) and result["exit_code"] != 0:
        return f"exit code {result['exit_code']}"  # an installer's answer: the phase decides what it means
    return "unchanged" if flags and not any(flags) else "ok"


def poller(run: Run) -> Poller:
    return run.poller


def finished_before(run: Run, name: str) -> bool:
    """An earlier run of this change finished this phase: verify it (the tests do), do not redo it.
    Phase 1 is the exception until phase 3 is done: it is run again (each step reads first, so on a
    silenced estate it changes nothing) because BizTalk must be silent when the MSS is unclustered, and
    someone may have started a host instance since the change was prepared."""
    if not run.options.change_ticket:
        return False
    if run.options.apply:
        _refuse_a_lost_record(run, "continue")  # those phases were finished on another estate
    h = run.history()
    if name not in h.finished_phases:
        return False
    if name == "silence" and "uncluster" not in h.finished_phases:
        return False
    run.journal.write("phase_skipped", phase=name, reason=f"finished earlier in change {h.ticket} "
                      f"(runs {', '.join(h.runs) or 'on another admin box'})")
    return True


def prior_failover_evidence(run: Run) -> dict[str, Any]:
    """Per node, what this change's earlier runs saw when the group was owned there (their journals'
    results on this admin box); empty when they ran elsewhere (then phase 6 is run again)."""
    from entsso.change import journal

    per_node: dict[str, Any] = {}
    for p in run.history().local:
        for r in journal.read(run.dir.parent / p.run_id / "journal.jsonl"):
            if r.get("kind") != "result" or r.get("phase") != "failover" or r.get("outcome") == "failed":
                continue
            if r.get("step", "").startswith("move the SSO group"):
                per_node.setdefault(r["host"], {})["group"] = r.get("evidence") or {}
            elif r.get("step", "").startswith("read the adapter handlers"):
                per_node.setdefault(r["host"], {})["handlers"] = r.get("evidence") or []
    return {n: v for n, v in per_node.items() if "group" in v and "handlers" in v}


def recorded_backup_proof(run: Run) -> dict[str, Any] | None:
    """Phase 2's forced full set for this change (entsso.domain.backup's proof): this run's journal, else the
    change record on the estate, else this admin box's earlier runs of the ticket (newest first)."""
    from entsso.change import journal

    found = backup.recorded_proof(journal.read(run.dir / "journal.jsonl"))
    if found or not run.options.change_ticket:
        return found
    h = run.history()
    if h.record is not None and h.record.backup_proof:
        return h.record.backup_proof
    for p in reversed(h.local):
        found = backup.recorded_proof(journal.read(run.dir.parent / p.run_id / "journal.jsonl"))
        if found:
            return found
    return None


# --- the change record on the estate (entsso.domain.change) ------------------------------------------------
def record_change(run: Run) -> None:
    """Before phase 1 changes anything: the change and its baseline on the estate, beside the master
    secret backup on the primary (a later run, from any admin box, continues with this baseline). A
    change already recorded gets this run added. Verified by the size Write-File reports back."""
    h = run.history()
    base = run.change_record
    if base is None:
        base = change.ChangeRecord(ticket=run.options.change_ticket or "", status="open",
                                   baseline=run.baseline().to_dict(),
                                   change_started=run.change_started.isoformat(),
                                   gate_passed_by=h.gate_passed_by or run.id,
                                   runs=tuple(h.runs),
                                   phases_finished=tuple(p for p in change.PHASES if p in h.finished_phases))
    _write_record(run, "silence", "record the change and its baseline on the estate", base.with_run(run.id))
    r = run.change_record
    assert r is not None
    run.journal.write("change_recorded", ticket=r.ticket, baseline=r.baseline, change_started=r.change_started,
                      gate_passed_by=r.gate_passed_by, record=r.path, record_on=r.kept_on)


def _continue_record(run: Run) -> None:
    """A run that continues a change (its phase 1 already done) carries the change's record on: this
    run is added to it when the next phase finishes."""
    if run.change_record is not None or not (run.options.apply and run.options.change_ticket):
        return
    h = run.history()
    if h.record is not None:
        run.change_record = dataclasses.replace(h.record, runs=tuple(h.runs)).with_run(run.id)
    elif h.began and h.baseline is not None:  # recorded by this admin box; the estate's copy was not read
        run.change_record = change.ChangeRecord(
            ticket=run.options.change_ticket, status="open", baseline=h.baseline,
            change_started=h.change_started or run.change_started.isoformat(),
            gate_passed_by=h.gate_passed_by or run.id, runs=(*h.runs, run.id),
            phases_finished=tuple(p for p in change.PHASES if p in h.finished_phases),
            kept_on=run.primary_node(), path=run.change_record_path())


def _write_record(run: Run, phase_name: str, what: str, record: change.ChangeRecord) -> None:
    node = run.primary_node()
    path = run.change_record_path()
    data = record.to_bytes()

    def write() -> dict[str, Any]:
        doc = run.hosts[node].invoke("Write-File", {"path": path, "content_b64": base64.b64encode(data).decode()})
        if int(doc.get("size", -1)) != len(data):
            raise RuntimeError(f"the change record {path} on {node} has {doc.get('size')} bytes after writing "
                               f"{len(data)}; check the disk of {node}'s backup folder")
        return {"path": path, "size": len(data), "phases_finished": list(record.phases_finished),
                "status": record.status}

    step(run, phase_name, what, node, write, file=path)
    run.change_record = dataclasses.replace(record, kept_on=node, path=path)
    (run.dir / "change.json").write_bytes(data)


def _record_phase_done(run: Run, name: str) -> None:
    """A finished phase in the change record (phase 7's finish, or a backout's, closes the change)."""
    if not run.options.apply or run.change_record is None:
        return
    status = {"resume": "completed", "backout": "backed-out"}.get(name)
    if status and run.change_record.status == status:
        return  # closed already (a second backout): nothing to write
    what = (f"mark the change {status} on the estate" if status
            else f"record phase {change.PHASE_NUMBERS.get(name, '?')} done on the estate")
    _write_record(run, name, what, run.change_record.with_phase(
        name, status=status, backup_proof=getattr(run, "backup_proof", None) if name == "backup" else None))
    if status:
        run.journal.write("change_completed", ticket=run.options.change_ticket, status=status,
                          record=run.change_record.path)


@contextmanager
def phase(run: Run, name: str, *, finishes: bool = True) -> Iterator[None]:
    """Account one phase: wall time, WinRM calls and SQL statements, outcome (summary.json, the report).
    `finishes=False` for the first part of a phase made of two fixtures (phase 2: secret, then databases):
    only the last part marks the phase finished, here and in the change record."""
    started, wall = time.monotonic(), datetime.now(timezone.utc)
    calls0, statements0 = run.calls.count(), run.statements.count()
    run.current_phase = name
    run.journal.write("phase_started", phase=name)
    if run.estate_lock is not None and (lost := run.estate_lock.lost()) is not None: stop(run, name, lost)
    if run.options.apply and run.options.change_ticket and name != "backout" and run.history().backed_out:
        stop(run, "gate", f"change {run.options.change_ticket} was backed out: it is never continued (its phases "
             "would act on an estate put back as before). Start the change again under a new ticket.")
    if name != "silence":
        _continue_record(run)
    estimate = window.estimates(run).get(name) if name in window.PHASES else None
    number = change.PHASE_NUMBERS.get(name)
    if name not in run.phase_stats:  # phase 2's second part: announced once
        title = change.TITLES.get(name) or change.ALL_TITLES.get(name, name)
        _console(run, f"\n[phase {number}/7] {title}" if number else f"\n[{title}]")
    outcome = "failed"
    try:
        if run.options.apply and not run.options.backout:
            late = window.check(run, name)
            if late:
                run.journal.write("window_refused", phase=name, reason=late,
                                  window_ends=run.options.window_ends.isoformat() if run.options.window_ends else None)
                stop(run, name, f"phase {change.PHASE_NUMBERS.get(name)} ({name}) not started: {late}. Nothing in "
                     f"it was changed. Back the change out now: {run.backout_command()} — or continue it in a later "
                     "window with the command below.")
        yield
        if finishes:
            _record_phase_done(run, name)
        outcome = "done"
    except (KeyboardInterrupt, SystemExit):
        outcome = "interrupted"
        raise
    finally:
        stats = {"started": wall.isoformat(), "seconds": round(time.monotonic() - started, 3),
                 "winrm_calls": run.calls.count() - calls0, "sql_statements": run.statements.count() - statements0,
                 "outcome": outcome, "estimate": estimate}
        prior = run.phase_stats.get(name)  # phase 2 is two fixtures (secret, then databases)
        if prior:
            stats = {**stats, "started": prior["started"],
                     **{k: round(prior[k] + stats[k], 3) for k in ("seconds", "winrm_calls", "sql_statements")}}
        run.phase_stats[name] = stats
        if outcome == "done" and estimate is not None and stats["seconds"] > estimate:
            log.warning("phase %s took %.0f s, past its estimate of %.0f s (the inventory's timeouts)",
                        name, stats["seconds"], estimate)
            run.journal.write("over_estimate", phase=name, seconds=stats["seconds"], estimate=estimate)
        run.journal.write("phase_finished", phase=name, **stats, complete=finishes)
        for listener in run.phase_listeners:  # e.g. the report is rewritten: a crash later keeps this phase
            try:
                listener()
            except Exception:  # noqa: BLE001 - evidence must not stop the change
                pass


def _refuse_a_lost_record(run: Run, action: str) -> None:
    """Stop before anything changes when this admin box's runs of the ticket recorded the change on an estate
    that, read in full, has no record of it: taking those runs' phases as done would skip them here."""
    lost = run.history().record_lost
    if lost is None:
        return
    ticket = run.options.change_ticket
    where = f"{lost.get('record') or 'the change record'} on {lost.get('record_on') or 'the primary node'}"
    run.journal.write("gate_refused", action=action, failed_tests=[],
                      findings=[f"change record of {ticket} missing from the estate"])
    stop(run, "gate", f"refusing to {action} for change {ticket}: this admin box's earlier runs of it recorded the "
         f"change as {where}, but no node of this estate holds that record now. Either this is another estate than "
         "those runs' (a new lab, another inventory), or the record was removed. Nothing was changed. A new change "
         "takes a new ticket (--change-ticket); if this is the same estate, find out what removed the record "
         "(docs/recovery.md) before you continue.")


def require_ready(run: Run, action: str) -> None:
    """The gate before the first change: the readiness checks hold and no test before this failed.
    A change whose gate passed before it acted (its record says which run) does not ask again: the
    estate is mid-change by design (SSODB may name a node, the group may be offline); each step
    re-verifies its own state. Another ticket's unfinished change on the estate refuses this one."""
    h = run.history()
    _refuse_a_lost_record(run, action)
    others = gate.no_unfinished_change(run.snapshot(), run.options.change_ticket, run.inventory_command)
    if others:
        run.journal.write("gate_refused", action=action, findings=[str(f) for f in others], failed_tests=[])
        stop(run, "gate", f"refusing to {action} for change {run.options.change_ticket}:\n"
             + "\n".join(f"  - {f}" for f in others) + "\nNothing was changed for this ticket.")
    if h.gate_passed_by and not h.completed:
        run.journal.write("gate_passed", action=action, by=h.gate_passed_by)
        return
    findings = gate.readiness(run.snapshot(), run)
    failed = list(run.failed_tests)
    if failed or findings:
        lines = [f"  - test failed: {t}" for t in failed] + [f"  - {f}" for f in findings]
        run.journal.write("gate_refused", action=action, failed_tests=failed, findings=[str(f) for f in findings])
        half = gate.half_done(run.snapshot(), run)
        advice = ("\nNothing was changed. Fix these, then run the gate again (pytest tests_pre)." if not half else
                  f"\nNothing was changed by this run, but the estate looks like a change stopped part-way: "
                  f"{half}. If this ticket's change did that, continue it with the command that started it "
                  f"({run.resume_command()}) from the admin box that ran it, or put the estate back by hand "
                  "(docs/recovery.md) and run the gate again.")
        stop(run, "gate", f"refusing to {action}: the estate is not ready:\n" + "\n".join(lines) + advice)
    run.journal.write("gate_passed", action=action, by=run.id)


def _observe(run: Run) -> Snapshot:
    """A fresh snapshot for a phase's verification: a host or SQL Server that does not answer (or answers
    nonsense) is itself a reason to stop — a phase is verified on the whole estate or not at all."""
    s = run.snapshot(fresh=True)
    _require(run, run.current_phase, [gate.host_reachable(s, h) for h in s.hosts] + [gate.sql_reachable(s)])
    return s


def _require(run: Run, phase: str, findings: list[gate.Finding]) -> None:
    findings = [f for f in findings if f]
    if findings:
        stop(run, phase, "the phase did not verify:\n" + "\n".join(f"  - {f}" for f in findings))


# --- phase 1 ------------------------------------------------------------------------------------------
def silence(run: Run, baseline: Baseline) -> Snapshot:
    timeouts = run.inventory.timeouts

    def server(host: str) -> None:
        instances = [(name, "Stopped") for name in baseline.host_instances.get(host, {})]
        step(run, "silence", "stop host instances", host,
             lambda: biztalk.ensure_host_instances(run.hosts[host], instances, timeouts.service_stop),
             host_instances=[n for n, _ in instances])
        step(run, "silence", "stop Rule Engine Update and ENTSSO", host,
             lambda: services.ensure_services(run.hosts[host], [(RULE_ENGINE, "Stopped"), (ENTSSO, "Stopped")],
                                              timeouts.service_stop))

    def jobs() -> None:
        for job in run.job_names:
            step(run, "silence", "disable job", None,
                 lambda job=job: sqlagent.ensure_job_enabled(run.sql.job_instance(job), job, False), job=job)
        # disabling stops no run: stop what still runs (ManageRefCountLog never ends on its own), but let a
        # Backup BizTalk Server run from its schedule finish; then wait until none runs
        backup_job = run.inventory.sql.backup_job
        step(run, "silence", "stop the jobs still running", None,
             lambda: sqlagent.ensure_jobs_idle_everywhere(run.sql, run.job_names, timeouts.backup_job, run.poller,
                                                          wait_for=[backup_job]), jobs=list(run.job_names))

    with ThreadPoolExecutor(max_workers=2) as pool:
        sql_work = pool.submit(jobs)
        on_hosts(run.biztalk_servers, server)
        sql_work.result()
    s = _observe(run)
    _require(run, "silence",
             [gate.host_instance_stopped(s, srv, name) for srv, inst in baseline.host_instances.items() for name in inst]
             + [gate.service_stopped(s, b, RULE_ENGINE) for b in run.biztalk_servers]
             + [gate.service_stopped(s, b, ENTSSO) for b in run.biztalk_servers]
             + [gate.job_disabled(s, j) for j in run.job_names])
    return s


# --- phase 2 ------------------------------------------------------------------------------------------
def back_up_secret(run: Run, s: Snapshot) -> Snapshot:
    mss = run.primary_node()
    path = run.secret_backup_file()
    existing = gate.secret_backed_up(s, mss, run.change_started)
    if existing is not None:  # not yet backed up in this change
        cfg = run.inventory.secret_backup
        reminder = cfg.reminder.format(ticket=run.options.change_ticket or "", run=run.id)
        step(run, "backup", "back up the master secret", mss,
             lambda: sso.backup_secret(run.hosts[mss], path, run.inventory.secrets.secret_password, reminder),
             file=path)
    copy = step(run, "backup", "copy the secret backup off the node", mss, lambda: _copy_off_node(run, mss, path),
                file=path)
    s = _observe(run)
    _require(run, "backup", [gate.secret_backed_up(s, mss, run.change_started)])
    if s.hosts[mss].secret_backup and s.hosts[mss].secret_backup.size != copy["size"]:
        stop(run, "backup", f"the off-node copy {copy['copy']} has {copy['size']} bytes but {path} on {mss} has "
             f"{s.hosts[mss].secret_backup.size}; copy it by hand before going on")
    return s


def _copy_off_node(run: Run, host: str, path: str) -> dict[str, Any]:
    doc = run.hosts[host].invoke("Read-File", {"path": path})
    data = base64.b64decode(doc["content_b64"])
    # beside the reports folder, never in a run directory (those are attached to change tickets)
    folder = Path(run.inventory.secret_backup.copy_folder or (run.dir.parent.parent / "secret-backups" / run.id))
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / Path(path.replace("\\", "/")).name
    target.write_bytes(data)
    target.chmod(0o600)
    return {"copy": str(target), "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def force_full_backup(run: Run, s: Snapshot) -> Snapshot:
    job = run.inventory.sql.backup_job  # the inventory checks it is one of sql.jobs
    names = run.inventory.sql.databases
    required = [names.ssodb, names.management]  # the change depends on them, listed by the job or not
    proven = recorded_backup_proof(run)  # the set an earlier run of this change proved: redone only if it no longer holds
    proof = step(run, "backup", backup.FORCE_FULL_STEP, None,
                 lambda: backup.ensure_full_backup(run.sql.management, job, required,
                                                   run.inventory.timeouts.backup_job, run.poller, proven=proven,
                                                   job_sql=run.sql.job_instance(job)), job=job)
    run.backup_proof = proof  # kept in the change record when phase 2 is recorded done
    s = _observe(run)
    listed = [d.database for d in s.sql.backups.databases] if s.sql.backups else []
    dbs = required + [d for d in listed if d.lower() not in {r.lower() for r in required}]
    _require(run, "backup", [gate.full_backup_complete(s, d, proof) for d in dbs]
             + [gate.force_flag_consumed(s, proof)])
    return s


# --- phase 3: uncluster ---------------------------------------------------------------------------------
def uncluster(run: Run, s: Snapshot) -> Snapshot:
    """Make the primary node the MSS outside the cluster. Order matters (docs/architecture.md): the
    `-updatedb` runs while the clustered ENTSSO still answers (ssomanage needs a running SSO server, and
    ENTSSO cannot start on the primary while SSODB names an offline cluster name as its MSS)."""
    t = run.inventory.timeouts
    primary, others = run.primary_node(), [n for n in run.nodes if n != run.primary_node()]
    host = run.hosts[primary]
    if (sso.secret_server(run.sql) or "").upper() != primary.upper():
        # ssomanage needs a running SSO server: the clustered one, while it still answers
        step(run, "uncluster", "point the primary's SSO tools at the cluster name", primary,
             lambda: sso.ensure_tools_server(host, run.cluster_name))
    step(run, "uncluster", f"move the master secret server to {primary}", primary,
         lambda: sso.ensure_secret_server(host, run.sql, primary), secret_server=primary)
    step(run, "uncluster", "take the ENTSSO cluster resource offline", primary,
         lambda: cluster.ensure_resource_state(host, run.resource, "Offline", t.group_move))
    step(run, "uncluster", "start ENTSSO on the primary through the SCM", primary,
         lambda: services.ensure_services(host, [(ENTSSO, "Running")], t.service_start))
    step(run, "uncluster", "point the primary's SSO tools at itself", primary,
         lambda: sso.ensure_tools_server(host, primary))

    def secondary(node: str) -> None:
        step(run, "uncluster", f"point SSO tools at {primary}", node,
             lambda: sso.ensure_tools_server(run.hosts[node], primary))
        step(run, "uncluster", "start ENTSSO through the SCM", node,
             lambda: services.ensure_services(run.hosts[node], [(ENTSSO, "Running")], t.service_start))

    on_hosts(others, secondary)
    s = _observe(run)
    _require(run, "uncluster", unclustered_findings(run, s))
    return s


def unclustered_findings(run: Run, s: Snapshot) -> list[gate.Finding | None]:
    primary = run.primary_node()
    out: list[gate.Finding | None] = []
    if (s.sql.secret_server or "").upper() != primary.upper():
        out.append(gate.Finding("unclustered", "SSODB secret server", repr(s.sql.secret_server), repr(primary)))
    view = s.cluster_view()
    if view and view.resource and view.resource.state != "Offline":
        out.append(gate.Finding("unclustered", f"cluster resource {run.resource}", view.resource.state, "Offline"))
    for n in run.nodes:
        h = s.hosts[n]
        out.append(gate.service_running(s, n, ENTSSO))
        if h.reachable and h.sso and h.sso.secret_server is None and n != primary \
                and (h.sso.tools_server or "").upper() == primary.upper():
            continue  # its tools ask the primary: a second hop to read back; SSODB's row is checked above
        if h.reachable and h.sso and (h.sso.secret_server or "").upper() != primary.upper():
            out.append(gate.Finding("unclustered", f"SSO on {n}", f"secret server {h.sso.secret_server!r} "
                                    f"({h.sso.displaydb_error or 'answered'})", repr(primary)))
    if s.hosts[primary].sso and not s.hosts[primary].sso.holds_secret:
        out.append(gate.Finding("unclustered", primary, "no master secret", "the MSS to hold the secret"))
    return out


# --- phase 4: upgrade -----------------------------------------------------------------------------------
def upgrade(run: Run, s: Snapshot) -> Snapshot:
    """Each node on its own, the primary (now the MSS) first; a node is done before the next starts."""
    order = [run.primary_node()] + [n for n in run.nodes if n != run.primary_node()]
    for node in order:
        _upgrade_node(run, node)
    s = _observe(run)
    _require(run, "upgrade", [gate.version_is(s, n, run.target_version(n)) for n in run.nodes]
             + [gate.service_running(s, n, ENTSSO) for n in run.nodes])
    return s


def _node_version(run: Run, node: str) -> str | None:
    from entsso.estate.snapshot import gather_hosts

    h = gather_hosts(run, [node])[node]
    return h.sso.version if h.reachable and h.sso else None


def _node_facts(run: Run, node: str) -> HostFacts:
    from entsso.estate.snapshot import gather_hosts

    return gather_hosts(run, [node])[node]


def _wait_for_restart(run: Run, node: str, watch: restart.RestartWatch, timeout: float) -> dict[str, Any]:
    """Until the node has gone down and come back (entsso.domain.restart): never at the first answer of a node
    whose restart has not happened yet."""
    def back() -> dict[str, Any] | None:
        h = _node_facts(run, node)
        return watch.evidence(h) if watch.observe(h) else None

    return run.poller_slow.until(back, timeout, what=f"{node} to go down and come back from its restart",
                                 describe=lambda: watch.last)


def _upgrade_node(run: Run, node: str) -> None:
    cfg = run.inventory.upgrade_for(node)
    target, t = cfg.target_version, run.inventory.timeouts
    before = _node_facts(run, node)
    installed = before.sso.version if before.reachable and before.sso else None
    if sso.version_tuple(installed) >= sso.version_tuple(target):
        run.journal.result("upgrade", "upgrade SSO", node, "unchanged", version=target)
    elif cfg.mode == "manual":
        media = cfg.package_path or r"<BizTalk media>\Platform\SSO64\Setup.exe"
        text = (f"\n>>> OPERATOR: on {node}, run ESSO Setup from the BizTalk media "
                f"({media}), choose Upgrade, and finish it.\n"
                f">>> The suite waits up to {t.upgrade:.0f} s for {node} to report Enterprise SSO {target}; "
                "nothing else changes meanwhile.")
        run.journal.write("operator_instruction", phase="upgrade", step="tell the operator to upgrade SSO",
                          host=node, message=text.strip(), target=target)
        run.operator.instruct(node, text, target)

        silent_since: list[float] = []
        waited_from, seen = time.monotonic(), [object(), -15.0]
        reported: list[str | None] = []  # each version the node reported, in order, once per change

        def done() -> str | None:
            v = _node_version(run, node)
            if not reported or reported[-1] != v:
                reported.append(v)
            if v is None:  # Setup may restart the node; longer than a reboot is not that
                silent_since[:1] = silent_since[:1] or [time.monotonic()]
                if time.monotonic() - silent_since[0] > t.reboot:
                    raise RuntimeError(f"{node} has not answered WinRM for {t.reboot:.0f} s while its SSO "
                                       "upgrade was awaited; check the node's console and Setup's log")
            else:
                silent_since.clear()
            if sso.version_tuple(v) >= sso.version_tuple(target):
                run.operator.tell(f"    {node} reports SSO {v}: upgraded")
                return v
            elapsed = time.monotonic() - waited_from
            if v != seen[0] or elapsed - seen[1] >= 15:  # a change, or every 15 s: not the same line each second
                seen[:] = [v, elapsed]
                run.operator.tell(f"    … {node} reports SSO {v or '(no answer)'}, waiting for {target} "
                                  f"({elapsed:.0f} s of at most {t.upgrade:.0f} s)")
            return None

        step(run, "upgrade", "wait for the operator's upgrade", node,
             lambda: {"version": run.poller_slow.until(done, t.upgrade, what=f"{node} to report SSO {target}",
                                                       seen=lambda: _versions_seen(reported))})
    else:
        log = cfg.log_path or r"C:\Windows\Temp\entsso-update.log"
        result = step(run, "upgrade", "install the SSO update package", node,
                      lambda: sso.install_update(run.hosts[node], cfg.package_path, cfg.arguments or "", log,
                                                 t.upgrade), package=cfg.package_path)
        code = int(result.get("exit_code", -1))
        meaning = sso.MSI_CODES.get(code, "not a Windows Installer success code")
        if code == 1641 and not run.options.allow_reboot:
            # the installer itself has begun the restart: nothing to ask of the node, only to wait for it
            stop(run, "upgrade", f"{node}: the update installed and the installer is restarting {node} itself "
                 f"(exit code {code}: {meaning}); no restart was asked of it. Wait until {node} is back and "
                 "answers WinRM, then resume (or resume with --allow-reboot, and the run waits for it).")
        if code == 3010 and not run.options.allow_reboot:
            stop(run, "upgrade", f"{node}: the update installed but needs a reboot (exit code {code}: {meaning}). "
                 f"Reboot {node} yourself and resume, or resume with --allow-reboot.")
        if code in (3010, 1641):
            # the boot time from before the install: a 1641 restart may already be under way
            watch = restart.RestartWatch(node, before.last_boot_utc if before.reachable else None)
            if code == 3010:
                step(run, "upgrade", "restart the node", node, lambda: run.hosts[node].invoke("Restart-Node", {}))
            step(run, "upgrade", "wait for the node to come back", node,
                 lambda: _wait_for_restart(run, node, watch, t.reboot))
        elif code != 0:
            stop(run, "upgrade", sso.installer_failure(node, code, log, result.get("version_after"), cfg.package_path))
    step(run, "upgrade", "start ENTSSO through the SCM", node,
         lambda: services.ensure_services(run.hosts[node], [(ENTSSO, "Running")], t.service_start))


def _versions_seen(reported: list[str | None]) -> str:
    """What a node reported while its upgrade was awaited, in words: 'it reported 10.0.1000.0 the whole time'."""
    words = [v or "no answer" for v in reported]
    if not words or words == ["no answer"]:
        return "it did not answer WinRM the whole time"
    if len(words) == 1:
        return f"it reported {words[0]} the whole time"
    return f"it reported {', then '.join(words)} (the last)"


# --- phase 5: recluster ---------------------------------------------------------------------------------
def recluster(run: Run, s: Snapshot, phase_name: str = "recluster") -> Snapshot:
    t = run.inventory.timeouts
    primary = run.primary_node()
    host = run.hosts[primary]
    step(run, phase_name, f"move the master secret server back to {run.cluster_name}", primary,
         lambda: sso.ensure_secret_server(host, run.sql, run.cluster_name), secret_server=run.cluster_name)
    # ENTSSO started through the SCM must stop before the cluster runs it again; the instance the cluster
    # itself runs or is starting (a resumed run may find the resource online on a node) is left to the
    # cluster: an SCM stop of it would trip the resource's restart policy (restarts, then a failover)
    clustered_on = cluster.cluster_runs_entsso_on(_observe(run).cluster_view())
    on_hosts([n for n in run.nodes if n.upper() != clustered_on],
             lambda n: step(run, phase_name, "stop the SCM-started ENTSSO", n,
                            lambda: services.ensure_services(run.hosts[n], [(ENTSSO, "Stopped")], t.service_stop)))
    # Microsoft's procedure for a clustered MSS: on each node in turn, own the group, cycle the resource
    # offline→online, restore the master secret there. The primary last, so the group ends on it.
    password = run.inventory.secrets.secret_password
    path = run.secret_backup_file()
    for node in [n for n in run.nodes if n != primary] + [primary]:
        if (phase_name, "restore the master secret", node) in run.done_steps():
            continue
        step(run, phase_name, f"move the SSO group to {node}", primary,
             lambda node=node: _move_group(run, primary, node))
        step(run, phase_name, "take the ENTSSO resource offline", node,
             lambda: cluster.ensure_resource_state(host, run.resource, "Offline", t.group_move))
        step(run, phase_name, "bring the ENTSSO resource online", node,
             lambda: cluster.ensure_resource_state(host, run.resource, "Online", t.group_move))
        if node != primary:
            step(run, phase_name, "put this change's secret backup on the node", node,
                 lambda node=node: _copy_backup_to(run, primary, node, path))
        step(run, phase_name, "restore the master secret", node,
             lambda node=node: sso.restore_secret(run.hosts[node], path, password), file=path)
    on_hosts(run.nodes, lambda n: step(run, phase_name, f"point SSO tools at {run.cluster_name}", n,
                                       lambda: sso.ensure_tools_server(run.hosts[n], run.cluster_name)))
    s = _observe(run)
    _require(run, phase_name, reclustered_findings(run, s))
    return s


def _move_group(run: Run, via: str, node: str) -> dict[str, Any]:
    """Move the SSO group to `node` through `via`; a refused move says why when the cluster shows it (a
    node paused or lost since the gate) and what to do. Nothing moved: the group stays where it was."""
    try:
        return cluster.ensure_group_owner(run.hosts[via], run.group, node, run.inventory.timeouts.group_move)
    except RemoteError as exc:
        try:
            why = cluster.why_cannot_own(_node_facts(run, via).cluster, node)
        except Exception:  # noqa: BLE001 - the move's own error is what to report then
            why = None
        if why is None:
            raise
        raise RuntimeError(f"{why}. (The move was refused: {exc})") from exc


def _copy_backup_to(run: Run, source: str, node: str, path: str) -> dict[str, Any]:
    doc = run.hosts[source].invoke("Read-File", {"path": path})
    return run.hosts[node].invoke("Write-File", {"path": path, "content_b64": doc["content_b64"]})


def reclustered_findings(run: Run, s: Snapshot) -> list[gate.Finding | None]:
    primary = run.primary_node()
    view = s.cluster_view()
    out: list[gate.Finding | None] = [gate.ssodb_names_cluster(s, run), gate.resource_online(s, run)]
    if view and view.group and (view.group.owner_node or "").upper() != primary.upper():
        out.append(gate.Finding("reclustered", f"cluster group {run.group}", f"owned by {view.group.owner_node}",
                                f"owned by the primary {primary}"))
    for h in s.hosts:
        if h in run.nodes:
            out.append(gate.sso_server_uses_cluster(s, h, run))
            out.append(gate.node_holds_secret(s, h))
    return out


# --- phase 6: fail over -----------------------------------------------------------------------------------
def fail_over(run: Run, s: Snapshot) -> dict[str, Any]:
    """Own the group on every node in turn; on each owner read the adapter handlers' properties through
    that node's own SSO service (the clustered ENTSSO, the master secret server then); end on the node that
    owned the group when the change began. The handlers are listed once from BizTalkMgmtDb, from the admin
    box; each read is local to the owner (ISSOConfigStore in run-time mode): no BizTalk on the nodes, no
    second hop (docs/inventory.md)."""
    start_owner = run.baseline().group_owner or run.primary_node()
    seen: dict[str, Any] = {}
    order = [n for n in run.nodes if n != start_owner] + [start_owner]
    configs = step(run, "failover", "list the adapter handlers from BizTalkMgmtDb", None,
                   lambda: [c.__dict__ for c in biztalk.handler_configs(run.sql)])
    wanted = tuple(biztalk.HandlerConfig(**c) for c in configs)
    for node in order:
        moved = step(run, "failover", f"move the SSO group to {node}", node,
                     lambda node=node: _move_group(run, node, node))
        handlers = step(run, "failover", "read the adapter handlers' properties through SSO", node,
                        lambda node=node: [h.__dict__ for h in biztalk.adapter_handlers(run.hosts[node], wanted)])
        seen[node] = {"group": moved, "handlers": handlers}
        unreadable = [h for h in handlers if not h["readable"]]
        if unreadable:
            h = unreadable[0]
            stop(run, "failover", f"with the group on {node}, {len(unreadable)} adapter handler(s) could not be read "
                 f"through SSO on {node} (e.g. {h['kind']} {h['adapter']}: {h['error_code']} {h['error']}). Check "
                 f"ENTSSO on {node} and the master secret there (restore it from this change's backup), then resume.")
    run.failover_evidence = seen
    return {"snapshot": _observe(run), "per_node": seen, "start_owner": start_owner}


# --- phase 7: put BizTalk back ------------------------------------------------------------------------------
def resume_biztalk(run: Run, baseline: Baseline, phase_name: str = "resume") -> Snapshot:
    t = run.inventory.timeouts

    def server(host: str) -> None:
        wanted_services = [(ENTSSO, "Running")] if baseline.entsso.get(host) == "Running" else []
        if baseline.rule_engine.get(host) == "Running":
            wanted_services.append((RULE_ENGINE, "Running"))
        step(run, phase_name, "start ENTSSO and Rule Engine Update as before", host,
             lambda: services.ensure_services(run.hosts[host], wanted_services, t.service_start))
        instances = [(n, "Running") for n, st in baseline.host_instances.get(host, {}).items() if st == "Running"]
        step(run, phase_name, "start the host instances that ran", host,
             lambda: biztalk.ensure_host_instances(run.hosts[host], instances, t.service_start))

    def jobs() -> None:
        for job, enabled in baseline.jobs_enabled.items():
            if enabled:
                step(run, phase_name, "re-enable job", None,
                     lambda job=job: sqlagent.ensure_job_enabled(run.sql.job_instance(job), job, True), job=job)

    with ThreadPoolExecutor(max_workers=2) as pool:
        sql_work = pool.submit(jobs)
        on_hosts(run.biztalk_servers, server)
        sql_work.result()
    s = _observe(run)
    _require(run, phase_name, gate.matches_baseline(s, baseline))
    return s


# --- backout: the estate back in service from any stop of the change -----------------------------------
def back_out(run: Run, baseline: Baseline) -> Snapshot:
    """From wherever the change stopped: the MSS clustered on the cluster name with the master secret
    restored on every node (this change's backup), the SSO tools pointed back, the group on the node that
    owned it before, BizTalk exactly as the baseline. Nodes already upgraded stay upgraded (ESSO is not
    downgraded: docs/recovery.md). Every step reads first, so a second backout changes nothing."""
    t = run.inventory.timeouts
    h = run.history()
    _refuse_a_lost_record(run, "back out")
    if not h.began:
        stop(run, "backout", f"no change {run.options.change_ticket} on this estate to back out (no change record "
             "on the nodes and no run of it on this admin box); nothing was changed")
    if h.completed and not h.backed_out:
        stop(run, "backout", f"change {run.options.change_ticket} is complete (phase 7 verified BizTalk as before); "
             "there is nothing to back out, and ESSO is not downgraded")
    s = _observe(run)
    if not _clustered_as_before(run, s):
        mss = run.primary_node()
        _require(run, "backout", [gate.secret_backed_up(s, mss, run.change_started)])  # the secret to restore
        s = recluster(run, s, "backout")
    owner = baseline.group_owner or run.primary_node()
    step(run, "backout", f"move the SSO group back to {owner}", owner,
         lambda: cluster.ensure_group_owner(run.hosts[owner], run.group, owner, t.group_move))
    s = resume_biztalk(run, baseline, "backout")
    s = _observe(run)
    _require(run, "backout", backed_out_findings(run, s, baseline))
    return s


def _clustered_as_before(run: Run, s: Snapshot) -> bool:
    """SSODB names the cluster, the resource is Online and no node runs ENTSSO outside the cluster."""
    view = s.cluster_view()
    if (s.sql.secret_server or "").upper() != run.cluster_name.upper():
        return False
    if not (view and view.resource and view.resource.state == "Online"):
        return False
    owner = (view.resource.owner_node or "").upper()
    return not any(s.hosts[n].service(ENTSSO).running for n in run.nodes if n.upper() != owner) and all(
        gate.sso_server_uses_cluster(s, n, run) is None for n in run.nodes)


def backed_out_findings(run: Run, s: Snapshot, baseline: Baseline) -> list[gate.Finding | None]:
    out: list[gate.Finding | None] = [gate.ssodb_names_cluster(s, run), gate.resource_online(s, run)]
    for n in run.nodes:
        out.append(gate.sso_server_uses_cluster(s, n, run))
        out.append(gate.node_holds_secret(s, n))
    view = s.cluster_view()
    owner = baseline.group_owner
    if owner and view and view.group and (view.group.owner_node or "").upper() != owner.upper():
        out.append(gate.Finding("backed_out", f"cluster group {run.group}", f"owned by {view.group.owner_node}",
                                f"owned by {owner}, as before the change"))
    return out + list(gate.matches_baseline(s, baseline))
