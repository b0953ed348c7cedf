"""SQL Server Agent jobs of the BizTalk group (msdb): enabled or not, running or not, last outcome."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from entsso import tsql
from entsso.poll import Poller
from entsso.sql import SqlServer

RUN_STATUS = {0: "Failed", 1: "Succeeded", 2: "Retry", 3: "Canceled", 4: "InProgress"}


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


def _last_run(date: object, time: object) -> str | None:
    if not date:
        return None
    return f"{int(date):08d} {int(time or 0):06d}"


def jobs(sql: SqlServer, names: Iterable[str]) -> dict[str, Job]:
    """The named jobs (a missing one is reported with exists=False), in one statement."""
    rows = {r["name"]: r for r in sql.execute(tsql.JOBS, database="msdb").rows}
    out: dict[str, Job] = {}
    for name in names:
        r = rows.get(name)
        if r is None:
            out[name] = Job(name, False, False, False, None, None, None)
            continue
        status = r.get("last_run_status")
        out[name] = Job(name, True, bool(r["enabled"]), bool(r["running"]),
                        RUN_STATUS.get(int(status)) if status is not None else None,
                        _last_run(r.get("last_run_date"), r.get("last_run_time")), r.get("last_message"),
                        int(r["last_instance_id"]) if r.get("last_instance_id") is not None else None)
    return out


def ensure_job_enabled(sql: SqlServer, name: str, enabled: bool) -> bool:
    """Enable or disable a job (sp_update_job); returns whether it changed anything."""
    current = jobs(sql, [name])[name]
    if not current.exists:
        raise LookupError(f"SQL Agent job {name!r} does not exist on {sql.name}; fix the inventory's job list")
    if current.enabled == enabled:
        return False
    sql.execute(tsql.UPDATE_JOB, (name, 1 if enabled else 0), database="msdb")
    after = jobs(sql, [name])[name]
    if after.enabled != enabled:
        raise RuntimeError(f"SQL Agent job {name!r} is still {'disabled' if enabled else 'enabled'} after "
                           f"sp_update_job on {sql.name}; check the login's rights in msdb (SQLAgentOperatorRole)")
    return True


def start_job_and_wait(sql: SqlServer, name: str, timeout: float, poll: Poller) -> Job:
    """sp_start_job returns once the job has *started*: wait for its outcome row (step 0) to appear."""
    before = jobs(sql, [name])[name]
    if not before.exists:
        raise LookupError(f"SQL Agent job {name!r} does not exist on {sql.name}")
    if before.running:
        raise RuntimeError(f"SQL Agent job {name!r} is already running on {sql.name}; wait for it to finish "
                           "(msdb.dbo.sysjobactivity) and re-run")
    sql.execute(tsql.START_JOB, (name,), database="msdb")

    def finished() -> Job | None:
        j = jobs(sql, [name])[name]
        return j if (not j.running and j.last_instance_id != before.last_instance_id) else None

    job = poll.until(finished, timeout, what=f"SQL Agent job {name!r} on {sql.name} to finish")
    return job


