"""The estate lock: two runs that may change one SSO system at once are refused.

A session-owned SQL Server application lock (sp_getapplock) on the SQL Server that holds SSODB, named
after the cluster: every admin box sees it, and SQL Server drops it when the holder's connection ends,
so a run that dies cannot leave a stale lock behind.
"""
from __future__ import annotations

from entsso import tsql
from entsso.sql import SqlServer, SqlSettings

GRANTED = (0, 1)


class EstateLocked(RuntimeError):
    pass


class EstateLock:
    def __init__(self, settings: SqlSettings, password: object, cluster_name: str) -> None:
        # its own connection: the lock lives exactly as long as this session
        self.sql = SqlServer(settings, password)
        self.resource = f"entsso-upgrade:{cluster_name.upper()}"
        self.held = False

    def acquire(self) -> None:
        code = self.sql.execute(tsql.GET_ESTATE_LOCK, (self.resource,), database="SSODB").scalar()
        if code not in GRANTED:
            self.sql.close()
            raise EstateLocked(
                f"another entsso-upgrade run holds the estate lock {self.resource!r} on SQL Server "
                f"{self.sql.name} (sp_getapplock returned {code}): only one change may run against an SSO "
                "system at a time. Wait for that run to finish (its report names it), or find its session "
                "with: SELECT request_session_id FROM sys.dm_tran_locks WHERE resource_type = 'APPLICATION'.")
        self.held = True

    def release(self) -> None:
        try:
            if self.held:
                self.sql.execute(tsql.RELEASE_ESTATE_LOCK, (self.resource,), database="SSODB")
        finally:
            self.held = False
            self.sql.close()
