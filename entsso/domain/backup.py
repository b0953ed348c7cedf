"""The Backup BizTalk Server job's state: the force-full flag and, per database the job covers, the
newest complete full set that has it; the forced full backup of the change, proven by the job's own set
ids (never by backup times, which are SQL Server's local time); and the master secret backup file on a node."""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, UTC
from typing import Any
from collections.abc import Iterable, Mapping, Sequence

from entsso.domain import sqlagent
from entsso.remote import tsql
from entsso.domain.poll import Poller
from entsso.remote.sqlestate import Executes
from entsso.domain.errors import DomainError
from entsso.domain.outcome import Outcome

FORCE_FULL_STEP = "force a full BizTalk backup"  # the journalled step whose evidence is the proof
MAX_COLLISIONS = 3  # sp_start_job refused as "already running" this often in a row: something else keeps starting it
log = logging.getLogger("entsso.phases")  # beside the phase's own lines in the log and the report


@dataclass(frozen=True)
class DatabaseBackup:
    server: str
    database: str
    last_full_set: int | None  # the newest complete full set (adm_BackupHistory.BackupSetId) with a row for it


@dataclass(frozen=True)
class ForceFullFlag:
    """The Backup BizTalk Server job's force-full flag and the table this BizTalk version keeps it in."""

    table: str | None  # "adm_BackupSettings" (BizTalk 2010 and later), "adm_ForceFullBackup", None: neither
    set: bool | None  # None: not found, or the table has no row


FLAG_TABLES = ("adm_BackupSettings", "adm_ForceFullBackup")
NO_FLAG_TABLE = ("BizTalkMgmtDb has neither adm_BackupSettings.ForceFull (BizTalk 2010 and later) nor "
                 "adm_ForceFullBackup (older BizTalk), so the Backup BizTalk Server job's force-full flag "
                 "cannot be read or set. Check that the SQL login reads the BizTalk management database "
                 "(sql.databases.management in the inventory) and that BizTalk's backup is configured in it")


@dataclass(frozen=True)
class BackupState:
    force_full: bool | None  # the force-full flag (None: could not be read)
    databases: tuple[DatabaseBackup, ...]  # admv_BackupDatabases: what the job backs up
    flag_table: str | None = "adm_BackupSettings"  # where the flag is kept (None: neither table exists)
    last_full_set: int | None = None  # the newest complete full set of the job, whatever it covers


@dataclass(frozen=True)
class FullSet:
    """One complete full set of the Backup BizTalk Server job: its id and a row per database."""

    set_id: int
    databases: dict[str, dict[str, Any]]  # database -> server, backup_file, recorded_at

    def missing(self, required: Iterable[str]) -> list[str]:
        have = {d.lower() for d in self.databases}
        return [d for d in required if d.lower() not in have]


def _dt(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def force_full_flag(sql: Executes) -> ForceFullFlag:
    """Which table holds the flag (probed, never guessed: reading a missing one is error 208), and its value."""
    probe = sql.execute(tsql.FORCE_FULL_OBJECTS, database="BizTalkMgmtDb").rows[0]
    if probe.get("backup_settings") is not None:
        rows = sql.execute(tsql.FORCE_FULL_SETTINGS, database="BizTalkMgmtDb").rows
        return ForceFullFlag("adm_BackupSettings", bool(rows[0]["force_full"]) if rows else None)
    if probe.get("force_full_backup") is not None:
        rows = sql.execute(tsql.FORCE_FULL_LEGACY, database="BizTalkMgmtDb").rows
        return ForceFullFlag("adm_ForceFullBackup", bool(next(iter(rows[0].values()))) if rows else None)
    return ForceFullFlag(None, None)


def _int(value: Any) -> int | None:
    return None if value is None else int(value)


def last_full_set(sql: Executes) -> int | None:
    return _int(sql.execute(tsql.LAST_FULL_SET, database="BizTalkMgmtDb").scalar())


def full_sets_after(sql: Executes, set_id: int | None) -> list[FullSet]:
    """The job's complete full sets newer than `set_id` (all of them for None), oldest first."""
    sets: dict[int, FullSet] = {}
    for r in sql.execute(tsql.FULL_SETS_AFTER, (set_id if set_id is not None else -1,),
                         database="BizTalkMgmtDb").rows:
        one = sets.setdefault(int(r["set_id"]), FullSet(int(r["set_id"]), {}))
        at = _dt(r.get("recorded_at"))
        one.databases[r["database_name"]] = {"server": r.get("server_name") or "", "backup_file": r.get("backup_file"),
                                             "recorded_at": at.isoformat() if at else None}
    return [sets[k] for k in sorted(sets)]


def backup_state(sql: Executes) -> BackupState:
    flag = force_full_flag(sql)
    dbs = tuple(DatabaseBackup(r.get("server_name") or "", r["database_name"], _int(r.get("last_full_set")))
                for r in sql.execute(tsql.BACKUP_DATABASES, database="BizTalkMgmtDb").rows)
    return BackupState(flag.set, dbs, flag.table, last_full_set(sql))


def utc_offset_minutes(sql: Executes) -> int:
    """SQL Server's local clock minus UTC (GETDATE() - SYSUTCDATETIME()), to the nearest 15 minutes: what a
    reader needs beside the job's recorded times, which are local with @UseLocalTime = 1."""
    now = sql.execute(tsql.NOW).rows[0]
    delta = _dt(now["now_local"]) - _dt(now["now_utc"])  # type: ignore[operator]
    return int(round(delta / timedelta(minutes=15))) * 15


@dataclass(frozen=True)
class SecretBackupFile:
    host: str
    path: str
    exists: bool
    size: int
    last_write_utc: datetime | None


def parse_secret_backup(host: str, doc: dict[str, Any]) -> SecretBackupFile | None:
    b = doc.get("secret_backup")
    if not b:
        return None
    t = _dt(b.get("last_write_utc"))
    return SecretBackupFile(host, b["path"], bool(b.get("exists")), int(b.get("size") or 0),
                            t.astimezone(UTC) if t and t.tzinfo else t)


class BackupFailed(DomainError, RuntimeError):
    pass


def recorded_proof(records: Iterable[Mapping[str, Any]]) -> dict[str, Any] | None:
    """The newest forced full set proven by a journal: the evidence of the last successful backup step."""
    proof = None
    for r in records:
        if (r.get("kind") == "result" and r.get("step") == FORCE_FULL_STEP and r.get("outcome") in ("ok", "unchanged")
                and isinstance(r.get("evidence"), dict) and r["evidence"].get("set_id") is not None):
            proof = r["evidence"]
    return proof


def _databases(state: BackupState, required: Sequence[str]) -> list[str]:
    """What a full set of this change must cover: the required databases, then every one the job lists."""
    out = list(required)
    for d in state.databases:
        if d.database.lower() not in {x.lower() for x in out}:
            out.append(d.database)
    return out


def _evidence(job: str | None, outcome: str | None, flag_table: str | None, before: int | None, full: FullSet,
              offset: int, changed: bool) -> dict[str, Any]:
    return {"changed": changed, "job": job, "outcome": outcome, "flag_table": flag_table,
            "flag_set_by_sp_ForceFullBackup": True, "flag_consumed": True,
            "before_set_id": before, "set_id": full.set_id, "databases": full.databases,
            "recorded_at_clock": "BackupDateTime as the job recorded it: UTC, or SQL Server's local time with "
                                 "@UseLocalTime = 1",
            "sql_utc_offset_minutes": offset}


def ensure_full_backup(sql: Executes, job_name: str, required: Sequence[str], timeout: float, poll: Poller,
                       proven: Mapping[str, Any] | None = None, job_sql: Executes | None = None) -> Outcome:
    """A full backup of every database the change depends on, made in this change: note the newest
    complete full set, set the force-full flag (sp_ForceFullBackup; read back as set), run the Backup
    BizTalk Server job by hand and wait for it, then require a newer complete full set with a row for each
    of `required` (SSODB and BizTalkMgmtDb, whether or not the job's view lists them) and of every database
    the job lists, and the flag consumed. The returned evidence is the proof (journalled by the step).
    `proven`: the proof a resumed run's predecessor journalled; if that set still holds, nothing is redone.
    `sql`: the management database's instance; `job_sql`: the instance whose msdb has the job (the same one
    unless the inventory says otherwise)."""
    flag = force_full_flag(sql)
    if flag.table is None:
        raise BackupFailed(NO_FLAG_TABLE + "; nothing was backed up.")
    state = backup_state(sql)
    wanted = _databases(state, required)
    if proven and proven.get("set_id") is not None and flag.set is False:
        earlier = next((f for f in full_sets_after(sql, proven.get("before_set_id"))
                        if f.set_id == proven["set_id"]), None)
        if earlier is not None and not earlier.missing(wanted):
            return Outcome(False, {**proven, "changed": False},
                           f"full set {proven['set_id']} of this change still holds")
    agent = job_sql or sql
    deadline = time.monotonic() + timeout
    waited: list[dict[str, Any]] = []  # runs already going that were let finish first (never this change's proof)
    collisions: list[str] = []
    for _attempt in range(MAX_COLLISIONS + 1):
        idle, went = sqlagent.wait_idle(agent, job_name, deadline, poll)
        if went is not None:
            waited.append(went)
            log.info("the Backup BizTalk Server job %r was already running on %s: waited %.0f s for it to end "
                     "(its run is not this change's backup; up to timeouts.backup_job, %.0f s)", job_name,
                     agent.name, went["seconds"], timeout)
        # the set newest before *this* run, and the flag set just before it starts: a run that began before
        # (its schedule's) may have taken an earlier flag and made a full set, which is never counted as ours
        before = last_full_set(sql)
        sql.execute(tsql.FORCE_FULL_BACKUP, database="BizTalkMgmtDb")
        if force_full_flag(sql).set is not True:
            raise BackupFailed(f"sp_ForceFullBackup ran but {flag.table}.ForceFull still reads unset; check the "
                               "login's EXECUTE right on BizTalkMgmtDb.dbo.sp_ForceFullBackup (BTS_BACKUP_USERS) "
                               "and re-run")
        refused = sqlagent.try_start_job(agent, job_name)
        if refused is None:
            break
        collisions.append(refused)  # 22022: its schedule (or someone) started it an instant before: wait for it
        log.info("sp_start_job of %r met a run that had just started (22022: %s); waiting for it, then starting "
                 "this change's own run", job_name, refused)
    else:
        raise BackupFailed(f"the job {job_name!r} on {agent.name} was started by someone else {len(collisions)} "
                           f"times as this change started it (22022: {collisions[-1]}); nothing of this change was "
                           "backed up. Find what starts it (its schedule, another operator) and re-run.")
    job = sqlagent.wait_for_run(agent, job_name, idle, deadline, poll)
    steps = sqlagent.run_steps(agent, job_name, idle.last_instance_id, job.last_instance_id)
    failed = next((st for st in steps if st.outcome != "Succeeded"), None)
    if job.last_outcome != "Succeeded" or failed is not None:
        raise BackupFailed(_failed_run(job_name, job, failed, full_sets_after(sql, before)))
    sets = full_sets_after(sql, before)
    consumed = force_full_flag(sql).set is False
    if not sets:
        raise BackupFailed(
            f"the job {job_name!r} succeeded but wrote no complete full set after set {before} "
            f"(BizTalkMgmtDb.dbo.adm_BackupHistory, BackupType 'db', SetComplete 1)"
            f"{'' if consumed else ' and left the force-full flag set'}. Check the job's BackupFull step before "
            "going on.")
    newest = sets[-1]
    missing = newest.missing(wanted)
    if missing or not consumed:
        listed = {d.database.lower() for d in state.databases}
        what = [f"{d} (not in admv_BackupDatabases: add it to adm_OtherBackupDatabases)"
                if d.lower() not in listed else d for d in missing]
        raise BackupFailed(
            f"the job {job_name!r} made full set {newest.set_id} but "
            + (f"it has no row for {', '.join(what)}" if missing else "")
            + (" and " if missing and not consumed else "")
            + ("left the force-full flag set" if not consumed else "")
            + ". Check adm_BackupHistory and the job's BackupFull step before going on.")
    proof = _evidence(job.name, job.last_outcome, flag.table, before, newest, utc_offset_minutes(sql), True)
    proof["steps"] = [{"step": st.name, "outcome": st.outcome} for st in steps]
    proof["waited_for_runs_going"] = waited  # said in the journal and the report: bounded by timeouts.backup_job
    proof["start_collisions"] = len(collisions)
    return Outcome(True, proof)


def _failed_run(job_name: str, job: sqlagent.Job, failed: sqlagent.JobStep | None, sets: list[FullSet]) -> str:
    """Why this change's run is no backup, by its steps: the failing step and its message. A full set made
    before a later step failed is named, and not taken: BizTalk's databases are restored together only to a
    log mark (MarkAndBackupLog), so a full set without its marked log backup is no consistent restore point."""
    if failed is None:
        return (f"the job {job_name!r} ended {job.last_outcome}: {job.last_message or 'no message'}. Read its history "
                "(msdb.dbo.sysjobhistory) and the backup path's free space, fix it, then re-run: the force-full flag "
                "is still set, so the next run makes the full set.")
    made = (f" Its BackupFull step made full set {sets[-1].set_id}, but without the marked log backup after it the "
            "BizTalk databases cannot be restored to one consistent point (\"Backing Up and Restoring BizTalk "
            "Server Databases\": log marks), so it is not taken as this change's backup."
            if sets and failed.name != "BackupFull" else
            " The force-full flag is still set, so the next run makes the full set.")
    return (f"the job {job_name!r} ended {job.last_outcome}: its step {failed.step_id} ({failed.name}) "
            f"{failed.outcome}: {failed.message or 'no message'}.{made} Read the step's history "
            "(msdb.dbo.sysjobhistory) and the backup path (free space, access), fix it, then re-run.")


def databases_in_backup_set(sql: Executes, required: list[str]) -> dict[str, Any]:
    """Which of `required` the Backup BizTalk Server job backs up (its view, admv_BackupDatabases: SSODB is there
    only through its adm_OtherBackupDatabases row): phase 2 proves a full set of each."""
    listed = [str(r["database_name"]) for r in sql.execute(tsql.BACKUP_DATABASES, database="BizTalkMgmtDb").rows]
    return {"listed": listed, "missing": [d for d in required if d.lower() not in {x.lower() for x in listed}]}


def missing_from_backup_set(doc: dict[str, Any]) -> str | None:
    if not doc["missing"]:
        return None
    return (f"the Backup BizTalk Server job does not back up {', '.join(doc['missing'])} (its set: "
            f"{', '.join(doc['listed']) or 'empty'}): phase 2 could not prove a backup of it. Add it the way BizTalk "
            "documents (SSODB: a row in adm_OtherBackupDatabases, \"Backing Up and Restoring BizTalk Server "
            "Databases\"), then rehearse again")
