"""The estate lock: two runs that may change one SSO system at once are refused.

A session-owned SQL Server application lock (sp_getapplock) on the SQL Server that holds SSODB, named
after the cluster: every admin box sees it, and SQL Server drops it when the holder's connection ends,
so a run that dies cannot leave a stale lock behind. The holder journals who took it (run, change,
operator, admin box, process), so a refused run names it when it shares that admin box's reports folder.
"""
from __future__ import annotations

import os
import socket
import time
from contextlib import suppress
from dataclasses import replace
from pathlib import Path
from typing import Any

from entsso.change import journal
from entsso.remote import tsql
from entsso.remote.sql import SqlError, SqlServer, SqlSettings

GRANTED = (0, 1)


class EstateLocked(RuntimeError):
    pass


class EstateLockLost(EstateLocked):
    """The lock's session ended (network drop, failover, idle timeout, a DBA's KILL): another run may now
    hold the estate."""


class EstateLock:
    def __init__(self, settings: SqlSettings, password: object, cluster_name: str, database: str = "SSODB") -> None:
        # its own connection: the lock lives exactly as long as this session. Never re-established, by us
        # (reconnect=False) or by the driver's idle-connection resiliency (ConnectRetryCount=0): a new
        # session would not hold the lock.
        self.sql = SqlServer(replace(settings, connect_retry_count=0), password, reconnect=False)
        self._settings, self._password = settings, password  # retake(): a new session after SQL Server moved
        self.resource = f"entsso-upgrade:{cluster_name.upper()}"
        self.database = database  # SSODB as the inventory names it, on its own instance (settings)
        self.held = False
        self.session_ended = False  # verify() found the lock's session gone (SQL Server failed over, the network)

    def acquire(self, reports: Path | None = None) -> None:
        """Take the lock, or raise EstateLocked naming its holder (found in `reports`, the runs' folder)."""
        code = self.sql.execute(tsql.GET_ESTATE_LOCK, (self.resource,), database=self.database).scalar()
        if code not in GRANTED:
            self.sql.close()
            holder = find_holder(reports, self.resource) if reports is not None else None
            if holder is not None:
                who = (f"run {holder.get('run')} (change {holder.get('ticket') or '?'}) of {holder.get('operator')} "
                       f"on the admin box {holder.get('admin_box')}, since {holder.get('ts')} "
                       f"(its report: {Path(reports or '.') / str(holder.get('run')) / 'report.html'})")
                raise EstateLocked(
                    f"the estate lock {self.resource!r} on SQL Server {self.sql.name} is held by {who}: only one "
                    "change may run against an SSO system at a time. Wait for that run to finish, or ask "
                    f"{holder.get('operator')} about it; nothing was changed by this run.")
            raise EstateLocked(
                f"another entsso-upgrade run holds the estate lock {self.resource!r} on SQL Server "
                f"{self.sql.name} (sp_getapplock returned {code}), and no run in this admin box's reports folder "
                "holds it: it runs from another admin box or reports folder. Only one change may run against an "
                "SSO system at a time. Wait for that run to finish (its report names it), or find its session "
                "with: SELECT request_session_id FROM sys.dm_tran_locks WHERE resource_type = 'APPLICATION'.")
        self.held = True

    def verify(self) -> None:
        """Raise EstateLockLost unless this run's session still holds the lock (checked before each phase)."""
        advice = ("Nothing more is changed by this run. Check that no other entsso-upgrade run is changing this "
                  "estate (SELECT request_session_id FROM sys.dm_tran_locks WHERE resource_type = 'APPLICATION' "
                  "on the SSODB server), then continue the change with the command below: it takes the lock again.")
        if not self.held:
            raise EstateLockLost(f"the estate lock {self.resource!r} is not held by this run. {advice}")
        try:
            mode = self.sql.execute(tsql.ESTATE_LOCK_MODE, (self.resource,), database=self.database).scalar()
        except SqlError as exc:
            self.held, self.session_ended = False, True
            raise EstateLockLost(f"the estate lock {self.resource!r} on SQL Server {self.sql.name} is lost: its "
                                 f"session ended ({exc}). {advice}") from None
        if mode != "Exclusive":
            self.held = False
            raise EstateLockLost(f"the estate lock {self.resource!r} on SQL Server {self.sql.name} is lost: its "
                                 f"session no longer holds it (APPLOCK_MODE {mode}). {advice}")

    def retake(self) -> dict[str, Any]:
        """After SQL Server itself moved (the MSS inside its role, --allow-sql-failover: issue 26) the lock's
        session is gone: take the lock again in a new session, or raise EstateLocked naming whoever took it
        meanwhile. The verify() before and after says what was lost and what is held."""
        before = self.lost()
        with suppress(SqlError):
            self.sql.close()
        self.held = False
        self.sql = SqlServer(replace(self._settings, connect_retry_count=0), self._password, reconnect=False)
        self.acquire()
        self.verify()
        return {"resource": self.resource, "lost_before": before is not None, "held": self.held}

    def regain(self, timeout: float, interval: float = 0.5) -> dict[str, Any]:
        """The lock was lost with its session (SQL Server failed over: a FCI or AG failover drops every session
        and answers again tens of seconds later): take it again in a new session as soon as SQL Server answers,
        for up to `timeout` seconds. Raises EstateLocked naming whoever took it meanwhile, or EstateLockLost
        when SQL Server has not answered in time. Safe because nothing of this run changed the estate without
        the lock, and another run could not have begun a change in the gap: its gate refuses an estate with this
        ticket's change unfinished (entsso.estate.checks.no_unfinished_change)."""
        deadline, attempts, last = time.monotonic() + timeout, 0, ""
        while True:
            attempts += 1
            try:
                taken = self.retake()
                self.session_ended = False
                return {**taken, "attempts": attempts}
            except EstateLockLost as exc:  # SQL Server went again between taking and checking
                last = str(exc)
            except EstateLocked:  # someone else holds it now: never continue under their change
                raise
            except SqlError as exc:
                last = str(exc)
            if time.monotonic() + interval > deadline:
                raise EstateLockLost(
                    f"the estate lock {self.resource!r} is lost with its session and SQL Server {self.sql.name} has "
                    f"not answered again within {timeout:g} s ({last}). Nothing more is changed by this run. Once "
                    "SQL Server answers, continue the change with the command below: it takes the lock again.")
            time.sleep(interval)

    def lost(self) -> str | None:
        """verify()'s message, or None while the lock is held."""
        try:
            self.verify()
        except EstateLockLost as exc:
            return str(exc)
        return None

    def release(self) -> None:
        try:
            if self.held:
                with suppress(SqlError):  # the session is gone, and the lock with it
                    self.sql.execute(tsql.RELEASE_ESTATE_LOCK, (self.resource,), database=self.database)
        finally:
            self.held = False
            self.sql.close()


def owner_record() -> dict[str, Any]:
    """Who takes the lock: journalled by the holder with its run (entsso.plugin)."""
    import getpass

    return {"operator": getpass.getuser(), "admin_box": socket.gethostname(), "pid": os.getpid()}


def find_holder(reports: Path, resource: str) -> dict[str, Any] | None:
    """The run in `reports` that journalled taking `resource` and did not journal releasing it: the latest
    whose process still lives (a run of this admin box that died lost its SQL session, and so the lock)."""
    best: dict[str, Any] | None = None
    here = socket.gethostname()
    for path in Path(reports).glob("*/journal.jsonl"):
        held: dict[str, Any] | None = None
        for record in journal.read(path):
            if record.get("resource") != resource:
                continue
            if record.get("kind") == "estate_locked":
                held = record
            elif record.get("kind") == "estate_unlocked":
                held = None
        if held is None or (held.get("admin_box") == here and not _alive(held.get("pid"))):
            continue
        if best is None or str(held.get("ts")) > str(best.get("ts")):
            best = held
    return best


def _alive(pid: object) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
