"""The Backup BizTalk Server job's state: the force-full flag and the latest full backup of every
database the job covers (SSODB among them); and the master secret backup file on a node."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from entsso import sqlagent, tsql
from entsso.poll import Poller
from entsso.sql import SqlServer


@dataclass(frozen=True)
class DatabaseBackup:
    server: str
    database: str
    last_full: datetime | None  # the later of adm_BackupHistory and msdb.backupset, SQL Server's clock


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
    databases: tuple[DatabaseBackup, ...]
    flag_table: str | None = "adm_BackupSettings"  # where the flag is kept (None: neither table exists)


def _dt(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def force_full_flag(sql: SqlServer) -> ForceFullFlag:
    """Which table holds the flag (probed, never guessed: reading a missing one is error 208), and its value."""
    probe = sql.execute(tsql.FORCE_FULL_OBJECTS, database="BizTalkMgmtDb").rows[0]
    if probe.get("backup_settings") is not None:
        rows = sql.execute(tsql.FORCE_FULL_SETTINGS, database="BizTalkMgmtDb").rows
        return ForceFullFlag("adm_BackupSettings", bool(rows[0]["force_full"]) if rows else None)
    if probe.get("force_full_backup") is not None:
        rows = sql.execute(tsql.FORCE_FULL_LEGACY, database="BizTalkMgmtDb").rows
        return ForceFullFlag("adm_ForceFullBackup", bool(next(iter(rows[0].values()))) if rows else None)
    return ForceFullFlag(None, None)


def backup_state(sql: SqlServer) -> BackupState:
    flag = force_full_flag(sql)
    force = flag.set
    dbs = []
    for r in sql.execute(tsql.BACKUP_DATABASES, database="BizTalkMgmtDb").rows:
        times = [t for t in (_dt(r.get("last_full_history")), _dt(r.get("last_full_finish"))) if t]
        dbs.append(DatabaseBackup(r.get("server_name") or "", r["database_name"], max(times) if times else None))
    return BackupState(force, tuple(dbs), flag.table)


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
                            t.astimezone(timezone.utc) if t and t.tzinfo else t)


class BackupFailed(RuntimeError):
    pass


def full_backup_after(state: BackupState, since: datetime) -> list[str]:
    """The databases whose latest full backup is missing or older than `since` (SQL Server's clock)."""
    def utc(t: datetime) -> datetime:
        return t if t.tzinfo else t.replace(tzinfo=timezone.utc)

    return [d.database for d in state.databases if d.last_full is None or utc(d.last_full) < since]


def ensure_full_backup(sql: SqlServer, job_name: str, since: datetime, timeout: float, poll: Poller) -> dict[str, Any]:
    """Force a full backup set (sp_ForceFullBackup), run the Backup BizTalk Server job by hand and wait
    for it; verify every database got a full backup after `since` and the flag was consumed.
    Does nothing when that already holds (a resumed run)."""
    before = backup_state(sql)
    if before.flag_table is None:
        raise BackupFailed(NO_FLAG_TABLE + "; nothing was backed up.")
    if not before.force_full and before.databases and not full_backup_after(before, since):
        return {"changed": False, "databases": [d.database for d in before.databases]}
    sql.execute(tsql.FORCE_FULL_BACKUP, database="BizTalkMgmtDb")
    job = sqlagent.start_job_and_wait(sql, job_name, timeout, poll)
    if job.last_outcome != "Succeeded":
        raise BackupFailed(
            f"the job {job_name!r} ended {job.last_outcome}: {job.last_message or 'no message'}. "
            "Read its history (msdb.dbo.sysjobhistory) and the backup path's free space, fix it, then re-run: "
            "the force-full flag is still set, so the next run makes the full set.")
    after = backup_state(sql)
    stale = full_backup_after(after, since)
    if stale or after.force_full:
        raise BackupFailed(
            f"the job {job_name!r} succeeded but left {'the force-full flag set' if after.force_full else ''}"
            f"{' and ' if stale and after.force_full else ''}"
            f"{('no new full backup of ' + ', '.join(stale)) if stale else ''}. Check adm_BackupHistory and "
            "the job's BackupFull step before going on.")
    return {"changed": True, "job": job.name, "outcome": job.last_outcome,
            "databases": {d.database: d.last_full.isoformat() if d.last_full else None for d in after.databases}}
