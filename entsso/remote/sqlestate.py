"""BizTalk's databases where the inventory puts them: their names, and the SQL instance of each database
and of each SQL Agent job (docs/inventory.md, `sql.databases` and `sql.instances`).

entsso/remote/tsql.py is written with BizTalk's default names (SSODB, BizTalkMgmtDb, msdb), which stand for the
roles. Every statement goes through a `SqlInstance`, which renders those names to the inventory's
(`tsql.render`) and runs the statement on its instance; `SqlEstate.execute(..., database=<role>)` picks the
instance that holds that database (msdb and master: the management database's instance). A job runs on
the instance whose msdb holds it: the one the inventory names for it, else the one that holds the
database its name ends with (`…_BizTalkMsgBoxDb`, `… (BizTalkDTADb)`: BizTalk creates each job on its
database's instance), else the management database's.

The common estate has one instance and needs none of this in its inventory: every database and job is
on `sql.server`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol, runtime_checkable

from entsso.remote import tsql
from entsso.remote.sql import Result, SqlServer, StatementLog


@runtime_checkable
class Executes(Protocol):
    """Anything that runs T-SQL: a `SqlServer` (the statement as written), a `SqlInstance` (with the
    inventory's database names) or a `SqlEstate` (on the instance that holds `database`). Facts and operations
    take one of these; `name` is what their messages call it."""

    @property
    def name(self) -> str: ...

    def execute(self, sql: str, params: Sequence[Any] = (), *, database: str = "master") -> Result: ...


@dataclass(frozen=True)
class DatabaseNames:
    ssodb: str = "SSODB"
    management: str = "BizTalkMgmtDb"
    msdb: str = "msdb"

    def physical(self, database: str) -> str:
        """The inventory's name for a database written with its default name (others unchanged)."""
        role = tsql.ROLE_OF.get(database.lower())
        return getattr(self, role) if role else database


DEFAULT_NAMES = DatabaseNames()


def job_database(job: str, databases: Iterable[str]) -> str | None:
    """The database a BizTalk job works on, by the name BizTalk gives it (…_<database>, … (<database>))."""
    known = sorted(databases, key=len, reverse=True)
    for d in known:
        if job.lower().endswith("_" + d.lower()) or job.lower().endswith(f"({d.lower()})"):
            return d
    return None


class SqlInstance:
    """One SQL Server instance with the inventory's database names: renders and runs statements there."""

    def __init__(self, label: str, server: SqlServer, names: DatabaseNames, databases: Sequence[str] = ()) -> None:
        self.label = label  # the inventory's name for it: sql.server, or sql.instances[i]'s server\instance
        self.server = server
        self.names = names
        self.databases = tuple(databases)  # the BizTalk databases the inventory puts here (msdb, master: all)

    @property
    def name(self) -> str:
        return self.server.name

    @property
    def settings(self) -> Any:
        return self.server.settings

    @property
    def statements(self) -> StatementLog:
        return self.server.statements

    def holds(self, database: str) -> bool:
        physical = self.names.physical(database).lower()
        return physical in ("master", self.names.msdb.lower()) or physical in {d.lower() for d in self.databases}

    def execute(self, sql: str, params: Sequence[Any] = (), *, database: str = "master") -> Result:
        return self.server.execute(tsql.render(sql, self.names), params, database=self.names.physical(database),
                                   repeatable=sql in tsql.SAFE_TO_REPEAT)

    def close(self) -> None:
        self.server.close()

    def __repr__(self) -> str:
        return f"SqlInstance({self.label!r}: {', '.join(self.databases)})"


@dataclass
class SqlEstate:
    """Every SQL instance of the estate; the first holds the management database."""

    names: DatabaseNames
    instances: list[SqlInstance]
    job_instances: dict[str, str] = field(default_factory=dict)  # job (lower) -> instance label, named in the inventory

    @property
    def main(self) -> SqlInstance:
        return self.instances[0]

    # the SqlServer face of the main instance, for code that needs one instance's settings and log
    @property
    def name(self) -> str:
        return self.main.name

    @property
    def settings(self) -> Any:
        return self.main.settings

    @property
    def statements(self) -> StatementLog:
        return self.main.statements

    @property
    def _password(self) -> Any:
        return self.main.server._password

    def instance_of(self, database: str) -> SqlInstance:
        """The instance that holds `database` (a role's default name or the inventory's name)."""
        physical = self.names.physical(database).lower()
        for inst in self.instances[1:]:
            if physical in {d.lower() for d in inst.databases}:
                return inst
        return self.main

    @property
    def ssodb(self) -> SqlInstance:
        return self.instance_of(self.names.ssodb)

    @property
    def management(self) -> SqlInstance:
        return self.main

    def job_instance(self, job: str) -> SqlInstance:
        label = self.job_instances.get(job.lower())
        if label is not None:
            return next(i for i in self.instances if i.label == label)
        placed = [d for i in self.instances[1:] for d in i.databases]
        database = job_database(job, placed)
        return self.instance_of(database) if database else self.main

    def asks_grants(self, inst: SqlInstance, jobs: Iterable[str]) -> Callable[[str], bool]:
        """Which databases' grants the run needs on `inst`: each database it holds, and msdb only where
        one of the run's jobs runs (an instance that runs none is never asked to stop or start a job)."""
        runs_jobs = inst in [i for i, _ in self.jobs_by_instance(jobs)] or inst is self.main
        msdb = self.names.msdb.lower()
        return lambda db: inst.holds(db) and (db.lower() != msdb or runs_jobs)

    def jobs_by_instance(self, jobs: Iterable[str]) -> list[tuple[SqlInstance, list[str]]]:
        """The jobs grouped by the instance that runs them, in instance order (empty groups left out)."""
        jobs = list(jobs)
        groups = [(inst, [j for j in jobs if self.job_instance(j) is inst]) for inst in self.instances]
        return [(inst, js) for inst, js in groups if js]

    def execute(self, sql: str, params: Sequence[Any] = (), *, database: str = "master") -> Result:
        return self.instance_of(database).execute(sql, params, database=database)

    def close(self) -> None:
        for inst in self.instances:
            inst.close()


def single(server: SqlServer, names: DatabaseNames = DEFAULT_NAMES) -> SqlEstate:
    """An estate of one instance (tests, and the common estate)."""
    return SqlEstate(names, [SqlInstance(server.name, server, names,
                                         (names.ssodb, names.management))])


def server_name(inst: SqlInstance) -> str | None:
    """The instance's own name (SERVERPROPERTY('ServerName'): host, or host\\instance)."""
    value = inst.execute(tsql.SERVER_NAME).scalar()
    return None if value is None else str(value)


@dataclass(frozen=True)
class Misplaced:
    """A database the Backup BizTalk Server job's view (admv_BackupDatabases.ServerName) puts on another
    instance than the inventory's `sql.server` / `sql.instances`."""

    database: str
    view_server: str  # where BizTalk says it is
    inventory_instance: str  # where the inventory puts it (sql.server, or an entry of sql.instances)
    inventory_server_name: str | None  # that instance's own name

    def __str__(self) -> str:
        return (f"{self.database}: the Backup BizTalk Server job backs it up on {self.view_server}, the inventory "
                f"puts it on {self.inventory_instance} ({self.inventory_server_name or 'its name unknown'})")


def _same_server(a: str, b: str) -> bool:
    """Two names of one SQL instance: equal but for case and DNS suffix (SQL1 and sql1.corp.example), with
    the same instance part."""
    def split(n: str) -> tuple[str, str]:
        host, _, instance = n.strip().partition("\\")
        return host.split(".", 1)[0].split(",", 1)[0].lower(), instance.lower()
    return split(a) == split(b)


def known_as(inst: SqlInstance, own: str | None) -> list[str]:
    """The names an instance answers to: its own (SERVERPROPERTY), and the one the inventory connects by
    (a listener or failover cluster name: BizTalk is often configured with it)."""
    s = inst.settings
    return [n for n in (own, s.server + (f"\\{s.instance}" if s.instance else "")) if n]


def misplaced(estate: SqlEstate, view: Iterable[Any], names: dict[str, str | None]) -> list[Misplaced]:
    """The databases the run reads (SSODB, the management database, those the inventory places on another
    instance) whose view row names a server that is not the instance the inventory puts them on (`names`:
    label -> the instance's own name). The others are only BizTalk's job's business."""
    relevant = {estate.names.ssodb.lower(), estate.names.management.lower()}
    relevant |= {d.lower() for inst in estate.instances[1:] for d in inst.databases}
    out = []
    for row in view:
        if not row.server or row.database.lower() not in relevant:
            continue
        inst = estate.instance_of(row.database)
        if not any(_same_server(row.server, n) for n in known_as(inst, names.get(inst.label))):
            out.append(Misplaced(row.database, row.server, inst.label, names.get(inst.label)))
    return out
