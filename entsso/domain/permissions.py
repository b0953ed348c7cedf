"""What the run's SQL login may do: the grants the change needs, asked of SQL Server before anything
changes (HAS_PERMS_BY_NAME), so a missing one is a gate finding that names it, not a stop in phase 1.

The minimum grants are listed in docs/inventory.md ("SQL Server login"); sysadmin has them all.
"""
from __future__ import annotations

from dataclasses import dataclass
from collections.abc import Callable

from entsso.remote import tsql
from entsso.remote.sqlestate import Executes

# the force-full flag table has one of two names by BizTalk version: NULL (absent) for the other is expected
EITHER_OF = (".dbo.adm_backupsettings", ".dbo.adm_forcefullbackup")  # in the management database, whatever its name


@dataclass(frozen=True)
class Grant:
    permission: str  # EXECUTE | SELECT
    object_name: str  # three-part name
    granted: bool | None  # None: SQL Server does not show the object to this login (or it does not exist)

    def __str__(self) -> str:
        return f"{self.permission} on {self.object_name}"

    def fix(self, login: str | None) -> str:
        return f"GRANT {self.permission} ON {self.object_name} TO [{login or '<the run login>'}]"


def grants(sql: Executes, holds: Callable[[str], bool] | None = None) -> list[Grant]:
    """Every grant the run needs, as SQL Server answers for the current login; with `holds` (a database
    name -> whether this instance holds it), only those on objects of the instance's own databases."""
    rows = sql.execute(tsql.GRANTS).rows
    found = [Grant(str(r["permission"]), str(r["object_name"]),
                   None if r["granted"] is None else bool(r["granted"])) for r in rows]
    return [g for g in found if holds is None or holds(g.object_name.split(".", 1)[0])]


def missing(found: list[Grant]) -> list[Grant]:
    """The grants the login lacks: 0, or NULL for an object the run reads (SQL Server hides an object from a
    login without any permission on it). The flag table's absent twin is not missing (and neither flag table
    is the gate's force_full_flag_found finding, not a grant)."""
    return [g for g in found if not g.granted and not (g.granted is None and g.object_name.lower().endswith(EITHER_OF))]


@dataclass(frozen=True)
class JobControl:
    """Whether the login may enable and disable BizTalk's jobs on one instance (msdb's sp_update_job rule)."""

    instance: str
    login: str | None
    sysadmin: bool
    agent_operator: bool
    owners: dict[str, str | None]  # job -> the login that owns it

    def problem(self, jobs: list[str]) -> str | None:
        """None when sp_update_job @enabled will be accepted for every job in `jobs`; else why not, and the fix."""
        if self.sysadmin or self.agent_operator:
            return None
        login = (self.login or "").lower()
        foreign = {j: self.owners.get(j) for j in jobs if (self.owners.get(j) or "").lower() != login}
        if not foreign:
            return None
        named = ", ".join(f"{j!r} (owned by {o or 'an unknown login'})" for j, o in sorted(foreign.items()))
        who = self.login or "the run's login"
        return (f"the login {who} on {self.instance} is neither sysadmin nor in msdb's SQLAgentOperatorRole and does "
                f"not own {named}: sp_update_job would refuse to disable them with error 14525 in phase 1 (a GRANT "
                f"EXECUTE does not help). Have the DBA run, in msdb: ALTER ROLE SQLAgentOperatorRole ADD MEMBER "
                f"[{who}] (the role may change only @enabled, which is all the change does)")


def job_control(sql: Executes) -> JobControl:
    row = sql.execute(tsql.JOB_CONTROL, database="msdb").rows[0]
    owners = {str(r["name"]): r.get("owner") for r in sql.execute(tsql.JOB_OWNERS, database="msdb").rows}
    return JobControl(sql.name, row.get("login"), bool(row.get("sysadmin")), bool(row.get("agent_operator")), owners)
