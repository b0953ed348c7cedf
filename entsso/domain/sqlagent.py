"""SQL Server Agent jobs of the BizTalk group (msdb): enabled or not, running or not, last outcome;
whether SQL Agent itself runs; disabling, stopping and running jobs as SQL Agent does it (asynchronously)."""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any
from collections.abc import Iterable

from entsso.remote import tsql
from entsso.domain.poll import Poller
from entsso.remote.sql import SqlError
from entsso.remote.sqlestate import Executes
from entsso.domain.errors import DomainError
from entsso.domain.outcome import Outcome

NOT_RUNNING = "refused because the job is not currently running"  # sp_stop_job's 22022 for an idle job
ALREADY_RUNNING = "refused because the job is already running"  # sp_start_job's 22022 for a running one

RUN_STATUS = {0: "Failed", 1: "Succeeded", 2: "Retry", 3: "Canceled", 4: "InProgress"}


class JobNotFound(DomainError, LookupError):
    """A job the inventory names is not on the instance that should run it."""


class JobNotChanged(DomainError, RuntimeError):
    """A job did not reach the state asked of it (enabled, disabled, idle)."""


@dataclass(frozen=True)
class Job:
    name: str
    exists: bool
    enabled: bool
    running: bool
    last_outcome: str | None  # Succeeded, Failed, … (sysjobhistory step 0), None if never run
    last_run: str | None  # yyyymmdd hhmmss as msdb keeps it
    last_message: str | None
    last_instance_id: int | None = None  # sysjobhistory.instance_id of the last outcome row
    failed_step: str | None = None  # the last run's failed step (step_name), when its outcome is Failed
    failed_step_message: str | None = None  # that step's sysjobhistory.message


def _last_run(date: int | str | None, time: int | str | None) -> str | None:  # msdb's yyyymmdd, hhmmss
    if not date:
        return None
    return f"{int(date):08d} {int(time or 0):06d}"


def jobs(sql: Executes, names: Iterable[str]) -> dict[str, Job]:
    """The named jobs (a missing one is reported with exists=False), in one statement."""
    rows = {r["name"]: r for r in sql.execute(tsql.JOBS, database="msdb").rows}
    out: dict[str, Job] = {}
    for name in names:
        r = rows.get(name)
        if r is None:
            out[name] = Job(name, False, False, False, None, None, None)
            continue
        status = r.get("last_run_status")
        last_id = int(r["last_instance_id"]) if r.get("last_instance_id") is not None else None
        step_id = r.get("failed_step_instance_id")
        # a step row belongs to the last run when it comes after the run before it: SQL Agent writes a run's
        # step rows, then its outcome (step 0) row, so the failed step of a failed last run is the last step
        # row before that outcome row
        this_run = status is not None and int(status) == 0 and step_id is not None and last_id is not None \
            and int(step_id) < last_id
        out[name] = Job(name, True, bool(r["enabled"]), bool(r["running"]),
                        RUN_STATUS.get(int(status)) if status is not None else None,
                        _last_run(r.get("last_run_date"), r.get("last_run_time")), r.get("last_message"),
                        last_id, r.get("failed_step") if this_run else None,
                        r.get("failed_step_message") if this_run else None)
    return out


# KB 952555 ("Maintain and troubleshoot BizTalk Server databases"): every BizTalk job runs successfully but
# MessageBox_Message_ManageRefCountLog (it runs continuously) and MessageBox_Message_Cleanup, which "shouldn't be
# enabled" (ManageRefCountLog starts it)
CLEANUP_PREFIX = "MessageBox_Message_Cleanup"
KB_952555 = ("KB 952555, \"Maintain and troubleshoot BizTalk Server databases\": \"All BizTalk SQL Server Agent jobs "
             "except the MessageBox_Message_ManageRefCountLog_BizTalkMsgBoxDb SQL Server Agent job should be running "
             "successfully\", and MessageBox_Message_Cleanup \"shouldn't be enabled\"")


def job_health(job: Job, continuous: Iterable[str] = ()) -> str | None:
    """What KB 952555 finds wrong with a BizTalk job, or None: MessageBox_Message_Cleanup enabled, or the
    last run of an enabled job (but the continuously running ones) Failed, with its failing step's message.
    A disabled job's old failure is not judged (it does not run), nor a job that never ran."""
    if not job.exists:
        return None
    if job.name.startswith(CLEANUP_PREFIX):
        return "enabled: ManageRefCountLog starts it every 10 seconds, it must not run on a schedule" \
            if job.enabled else None
    if not job.enabled or job.name.lower() in {c.lower() for c in continuous} or job.last_outcome != "Failed":
        return None
    step = (f"; the failing step {job.failed_step!r}: {job.failed_step_message}" if job.failed_step else
            f"; {job.last_message}" if job.last_message else "")
    return f"its last run ({job.last_run}, msdb's local time) Failed{step}"


def ensure_job_enabled(sql: Executes, name: str, enabled: bool) -> Outcome:
    """Enable or disable a job (sp_update_job)."""
    current = jobs(sql, [name])[name]
    if not current.exists:
        raise JobNotFound(f"SQL Agent job {name!r} does not exist on {sql.name}; fix the inventory's job list")
    word = "enabled" if enabled else "disabled"
    if current.enabled == enabled:
        return Outcome(False, {"job": name, "enabled": enabled}, f"the job was already {word}")
    sql.execute(tsql.UPDATE_JOB, (name, 1 if enabled else 0), database="msdb")
    after = jobs(sql, [name])[name]
    if after.enabled != enabled:
        raise JobNotChanged(f"SQL Agent job {name!r} is still {'disabled' if enabled else 'enabled'} after "
                           f"sp_update_job on {sql.name}; check the login's rights in msdb (SQLAgentOperatorRole)")
    return Outcome(True, {"job": name, "enabled": enabled})


def agent_status(sql: Executes) -> str | None:
    """SQL Server Agent's service state as SQL Server reports it (Running, Stopped, …); None: no Agent."""
    rows = sql.execute(tsql.AGENT_STATUS).rows
    return str(rows[0]["status"]) if rows else None


def stop_job(sql: Executes, name: str) -> bool:
    """sp_stop_job; False when the job had already ended (22022 "not currently running")."""
    try:
        sql.execute(tsql.STOP_JOB, (name,), database="msdb")
    except SqlError as exc:
        if exc.number == 22022 and NOT_RUNNING in str(exc):
            return False
        raise
    return True


def ensure_jobs_idle(sql: Executes, names: Iterable[str], timeout: float, poll: Poller,
                     wait_for: Iterable[str] = ()) -> dict[str, Any]:
    """None of `names` running: stop what runs (sp_stop_job, again if a job started it anew, as
    ManageRefCountLog starts Message_Cleanup), except the jobs of `wait_for` (a Backup BizTalk Server run
    from its schedule is let finish, not cut off), then wait — polling the jobs — until none runs."""
    names = list(names)
    patient = {n.lower() for n in wait_for}
    stopped: list[str] = []
    waited: list[str] = []

    def idle() -> dict[str, Job] | None:
        now = jobs(sql, names)
        running = [j.name for j in now.values() if j.running]
        if not running:
            return now
        for name in running:
            if name.lower() in patient:
                if name not in waited:
                    waited.append(name)
            elif stop_job(sql, name):
                stopped.append(name)
        return None

    def still() -> str:
        return ", ".join(j.name for j in jobs(sql, names).values() if j.running) or "none"

    poll.until(idle, timeout, what=f"the SQL Agent jobs on {sql.name} to stop", describe=still)
    return {"changed": bool(stopped), "stopped": sorted(set(stopped)), "waited_for": waited,
            "stop_requests": len(stopped)}


@dataclass(frozen=True)
class JobStep:
    """One step of one run, as SQL Agent wrote it to msdb.dbo.sysjobhistory (step_id > 0)."""

    step_id: int
    name: str
    outcome: str  # Succeeded, Failed, Retry, Canceled, InProgress
    message: str


def run_steps(sql: Executes, name: str, after: int | None, upto: int | None) -> list[JobStep]:
    """The step rows of the run whose outcome row is `upto`: those written after the outcome row `after` (the
    run before it), in order. SQL Agent writes a run's step rows, then its outcome row."""
    rows = sql.execute(tsql.JOB_STEPS, (name, after if after is not None else -1, upto if upto is not None else -1),
                       database="msdb").rows
    return [JobStep(int(r["step_id"]), str(r["step_name"]), RUN_STATUS.get(int(r["run_status"]), "?"),
                    str(r.get("message") or "")) for r in rows]


def wait_idle(sql: Executes, name: str, deadline: float, poll: Poller) -> tuple[Job, dict[str, Any] | None]:
    """The job once no run of it is going: a run already going (its schedule's, or someone's) is waited for,
    never stopped, up to `deadline` (monotonic). Returns the job and, when one was waited for, how long."""
    j = jobs(sql, [name])[name]
    if not j.exists:
        raise JobNotFound(f"SQL Agent job {name!r} does not exist on {sql.name}")
    if not j.running:
        return j, None
    started = time.monotonic()
    j = poll.until(lambda: (lambda now: now if not now.running else None)(jobs(sql, [name])[name]),
                   max(0.0, deadline - time.monotonic()),
                   what=f"the run of SQL Agent job {name!r} already going on {sql.name} to finish (it is never "
                        "stopped: a Backup BizTalk Server run cut off leaves its set incomplete)")
    return j, {"seconds": round(time.monotonic() - started, 1), "outcome": j.last_outcome, "run": j.last_run}


def try_start_job(sql: Executes, name: str) -> str | None:
    """sp_start_job; None once started, else the 22022 "already running" text (a run began since the job was
    last seen idle: its schedule fired, or someone started it)."""
    try:
        sql.execute(tsql.START_JOB, (name,), database="msdb")
    except SqlError as exc:
        if exc.number == 22022 and ALREADY_RUNNING in str(exc):
            return str(exc)
        raise
    return None


def wait_for_run(sql: Executes, name: str, before: Job, deadline: float, poll: Poller) -> Job:
    """The outcome of the run started after `before` (sp_start_job returns once the job has *started*)."""
    def finished() -> Job | None:
        j = jobs(sql, [name])[name]
        return j if (not j.running and j.last_instance_id != before.last_instance_id) else None

    return poll.until(finished, max(0.0, deadline - time.monotonic()),
                      what=f"SQL Agent job {name!r} on {sql.name} to finish")


def start_job_and_wait(sql: Executes, name: str, timeout: float, poll: Poller) -> Job:
    """sp_start_job returns once the job has *started*: wait for its outcome row (step 0) to appear.
    A run already going (from its schedule, or one a timed-out earlier run started) is waited for first,
    never collided with (sp_start_job would refuse it with 22022)."""
    deadline = time.monotonic() + timeout
    for _attempt in range(3):
        before, _waited = wait_idle(sql, name, deadline, poll)
        if try_start_job(sql, name) is None:
            return wait_for_run(sql, name, before, deadline, poll)
    raise JobNotChanged(f"SQL Agent job {name!r} on {sql.name} kept being started by someone else; "
                        "disable its schedule and re-run")


def jobs_everywhere(estate: Any, names: Iterable[str]) -> dict[str, Job]:
    """The named jobs, each read on the instance whose msdb holds it (entsso.remote.sqlestate.SqlEstate)."""
    out: dict[str, Job] = {}
    for inst, group in estate.jobs_by_instance(names):
        out.update(jobs(inst, group))
    return {n: out[n] for n in names if n in out}


def ensure_jobs_idle_everywhere(estate: Any, names: Iterable[str], timeout: float, poll: Poller,
                                wait_for: Iterable[str] = ()) -> Outcome:
    """ensure_jobs_idle on each instance for its own jobs (one after the other, each within `timeout`)."""
    done: dict[str, Any] = {"changed": False, "stopped": [], "waited_for": [], "stop_requests": 0}
    wait_for = list(wait_for)
    for inst, group in estate.jobs_by_instance(names):
        one = ensure_jobs_idle(inst, group, timeout, poll, wait_for=wait_for)
        done["changed"] = done["changed"] or one["changed"]
        done["stopped"] += one["stopped"]
        done["waited_for"] += one["waited_for"]
        done["stop_requests"] += one["stop_requests"]
    if len(estate.instances) > 1:
        done["instances"] = [inst.name for inst, _ in estate.jobs_by_instance(names)]
    return Outcome.of_document(done, "no job was running")


def rehearse_job_enabled(sql: Executes, name: str) -> Outcome:
    """sp_update_job with @enabled at the job's current value: the statement phase 1 and phase 7 send, accepted
    or refused as it will be then (14525 for a login that may not change the job), changing nothing."""
    current = jobs(sql, [name])[name]
    if not current.exists:
        raise JobNotFound(f"SQL Agent job {name!r} does not exist on {sql.name}; fix the inventory's job list")
    sql.execute(tsql.UPDATE_JOB, (name, 1 if current.enabled else 0), database="msdb")
    after = jobs(sql, [name])[name]
    if after.enabled != current.enabled:
        raise JobNotChanged(f"SQL Agent job {name!r} on {sql.name} changed from {current.enabled} to {after.enabled} "
                            "while its current value was set again")
    return Outcome(False, {"job": name, "enabled": bool(current.enabled)}, "set to the value it had")
