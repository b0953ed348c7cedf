"""The lab's Backup BizTalk Server job, step by step, and its own schedule (SqlEngine calls these with itself).

BizTalk 2010 and later create the job with four steps, each "on failure: quit the job reporting failure":
Set Compression Option, BackupFull (sp_BackupAllFull_Schedule: a full set only when the force-full flag is
set or the frequency's full is due, else nothing), MarkAndBackupLog (sp_MarkAll: a marked log backup of
every database, every run) and Clear Backup History. SQL Agent writes a sysjobhistory row per step that ran
(step_id, step_name, run_status, message), then the outcome row (step_id 0). A run can therefore make the
full set and fail at the log step: the partial failure the suite must judge by its steps (docs/domain-notes.md).
The schedule (`sql.backup_schedule_minutes`) starts the job every N estate minutes while it is enabled and
idle, as its default 15-minute schedule does; a fault (`job_collision`) starts a scheduled run at a chosen
moment, e.g. an instant before the suite's own sp_start_job.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

SqlEngine = Any  # entsso.lab.sqlengine.SqlEngine, which imports this module (no import back: no cycle)
AGENT_USER = "NT SERVICE\\SQLSERVERAGENT"  # SQL Server Agent's service account, as the engine runs jobs

BACKUP_STEPS = ("Set Compression Option", "BackupFull", "MarkAndBackupLog", "Clear Backup History")
BACKUP_STEP_LABELS = {name: f"step {i} ({name})" for i, name in enumerate(BACKUP_STEPS, start=1)}
# a T-SQL step's history message when it succeeds, run as the Agent's service account (the form SQL Agent
# writes, "Executed as user: <account>. … The step succeeded."; composed here, UNCONFIRMED word for word)
STEP_SUCCEEDED = "Executed as user: {user}. The step succeeded."


# --- control (faults) ----------------------------------------------------------------------------
def collide_on_start(e: SqlEngine, job_name: str, times: int = 1) -> None:
    """The next `times` sp_start_job of `job_name` find a run its schedule started an instant before."""
    with e._lock:
        e._collisions[job_name.lower()] = e._collisions.get(job_name.lower(), 0) + max(0, int(times))

def collide(e: SqlEngine, job_id: str, name: str) -> None:
    """sp_start_job's hook (lock held): a collision queued for this job starts the scheduled run first."""
    if e._collisions.get(name.lower()) and name.lower() not in e._running:
        e._collisions[name.lower()] -= 1
        e._start_run(job_id, name, "(schedule)")

# --- the schedule --------------------------------------------------------------------------------
def schedule_tick(e: SqlEngine, backup_job: str) -> None:
    """Called by SQL Agent's schedule loop (lock held): start the backup job when its time has come, it is
    enabled and not running (SQL Agent skips a run while one is going, and a disabled job's schedule)."""
    if e._next_backup_due is None or e.backup_every_sec is None:
        return
    if e.clock.elapsed() < e._next_backup_due:
        return
    while e._next_backup_due <= e.clock.elapsed():
        e._next_backup_due += e.backup_every_sec
    row = e._db.execute("SELECT job_id, name, enabled FROM msdb.sysjobs WHERE name = ?",
                           (backup_job,)).fetchone()
    if row is not None and int(row[2]) == 1 and row[1].lower() not in e._running:
        e._start_run(row[0], row[1], "(schedule)")

# --- a run ---------------------------------------------------------------------------------------
def _step_row(e: SqlEngine, job_id: str, step: str, started: datetime, ok: bool, message: str) -> None:
    end = e._now_local()
    e._db.execute(
        "INSERT INTO msdb.sysjobhistory (job_id, step_id, step_name, sql_message_id, sql_severity, message, "
        "run_status, run_date, run_time, run_duration, operator_id_emailed, retries_attempted, server) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, 0, ?)",
        (job_id, BACKUP_STEPS.index(step) + 1, step, 0 if ok else 50000, 0 if ok else 16,
         message, 1 if ok else 0, _int_date(started), _int_time(started),
         _int_duration((end - started).total_seconds()), e.server_name))

def run(e: SqlEngine, job_id: str, name: str, started: datetime,
                    failure: str | None) -> tuple[bool, str, bool]:
    """One run, step by step. A stop takes effect between two databases (a BACKUP runs to its end): the
    set stays incomplete and the flag set. A failure (job_fails) fails its step (`step`, else the first
    step that backs something up) after one per-database delay, writing nothing more.
    Returns (succeeded, the last step to run, stopped)."""
    with e._lock:
        fail_at = e._fail_step_now.pop(name.lower(), None)
        force = e._force_flag() == 1
        today = started.strftime("%Y-%m-%d")
        full_today = e._db.execute(
            "SELECT COUNT(*) FROM BizTalkMgmtDb.adm_BackupHistory WHERE BackupType = 'db' AND SetComplete = 1 "
            "AND BackupDateTime >= ?", (today,)).fetchone()[0] > 0
        full = force or not full_today
        databases = e._backup_databases()
    if failure is not None and fail_at is None:
        fail_at = "BackupFull" if full else "MarkAndBackupLog"
    succeeded = STEP_SUCCEEDED.format(user=AGENT_USER)
    for step in BACKUP_STEPS:
        label = BACKUP_STEP_LABELS[step]
        t0 = e._now_local()
        if failure is not None and step == fail_at:
            stopped = e._step(name, e.backup_sec_per_database)
            with e._lock:
                _step_row(e, job_id, step, t0, False, failure)
            return False, label, stopped
        kind = {"BackupFull": "db" if full else None, "MarkAndBackupLog": "lg"}.get(step)
        if kind is not None:
            with e._lock:
                set_id = e._next_set_id
                e._next_set_id += 1
            for d in databases:
                b0 = e._now_local()
                e._sleep(e.backup_sec_per_database)
                with e._lock:
                    e._record_backup(kind, d, b0, e._now_local(), set_id, complete=False)
                if e._stop_requests[name.lower()][0].is_set() or e._stopping.is_set():
                    return False, label, True
            with e._lock:
                e._db.execute("UPDATE BizTalkMgmtDb.adm_BackupHistory SET SetComplete = 1 "
                          "WHERE BackupSetId = ?", (set_id,))
                if kind == "db":
                    e._set_force_flag(0)  # the full set is complete: the flag is consumed
        with e._lock:
            _step_row(e, job_id, step, t0, True, succeeded)
    return True, BACKUP_STEP_LABELS[BACKUP_STEPS[-1]], False


def _int_date(t: datetime) -> int:
    """msdb's int date (yyyymmdd), as sysjobhistory.run_date keeps it; the engine uses the same."""
    return t.year * 10000 + t.month * 100 + t.day


def _int_time(t: datetime) -> int:
    return t.hour * 10000 + t.minute * 100 + t.second


def _int_duration(seconds: float) -> int:
    s = int(round(seconds))
    return (s // 3600) * 10000 + ((s % 3600) // 60) * 100 + s % 60
