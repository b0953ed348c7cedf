"""Names and instances from the inventory (entsso/sqlestate.py, tsql.render): every statement carries the
inventory's database names and runs on the instance that holds its database; a job runs where its
database is; the Backup BizTalk Server job's view (ServerName) is checked against that placement; and
the inventory refuses a placement that cannot be right, naming the field and the fix."""
from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from entsso import backup, permissions, sqlagent, sso, tsql
from entsso.inventory import DEFAULT_JOBS
from entsso.lock import EstateLock
from entsso.run import Options, build_run
from entsso.sql import SqlServer, SqlSettings
from entsso.sqlestate import DatabaseNames, Misplaced, SqlEstate, SqlInstance, job_database, misplaced, single
from selftest.unit.test_inventory import DELETE, doc_with, refused, write  # noqa: F401
from selftest.unit.test_inventory import secrets_env  # noqa: F401 - the inventory's variables set
from entsso.inventory import load_inventory

CUSTOM = DatabaseNames(ssodb="SSODB_PRD", management="BizTalkMgmtDb_PRD", msdb="msdb")
STATEMENTS = {n: getattr(tsql, n) for n in dir(tsql) if n.isupper() and isinstance(getattr(tsql, n), str)}


class Cursor:
    """Records each statement and database, answers one row per SELECT."""

    def __init__(self, log: list[tuple[str, str]], database: str, answer) -> None:  # type: ignore[no-untyped-def]
        self.log, self.database, self.answer = log, database, answer
        self.description: Any = None
        self.messages: list[Any] = []
        self._rows: list[tuple[Any, ...]] = []

    def execute(self, sql: str, *params: Any) -> None:
        self.log.append((self.database, sql))
        cols, rows = self.answer(sql, self.database)
        self.description = [(c,) for c in cols] if cols else None
        self._rows = rows

    def fetchall(self) -> list[tuple[Any, ...]]:
        return self._rows

    def nextset(self) -> bool:
        return False

    def close(self) -> None:
        pass


def recording(label: str, log: list[tuple[str, str, str]], answer=None) -> SqlServer:  # type: ignore[no-untyped-def]
    answer = answer or (lambda sql, db: ([], []))
    inner: list[tuple[str, str]] = []

    class Conn:
        def __init__(self, database: str) -> None:
            self.database = database

        def cursor(self) -> Cursor:
            c = Cursor(inner, self.database, answer)
            original = c.execute

            def execute(sql: str, *params: Any) -> None:
                original(sql, *params)
                log.append((label, self.database, sql))
            c.execute = execute  # type: ignore[method-assign]
            return c

        def close(self) -> None:
            pass

    return SqlServer(SqlSettings(server=label), connector=Conn)


def two_instances(log: list[tuple[str, str, str]], answer=None) -> SqlEstate:  # type: ignore[no-untyped-def]
    main = SqlInstance("SQL1", recording("SQL1", log, answer), CUSTOM, ["BizTalkMgmtDb_PRD"])
    sso_inst = SqlInstance("SQL2\\SSO", recording("SQL2\\SSO", log, answer), CUSTOM, ["SSODB_PRD"])
    mbox = SqlInstance("SQL3", recording("SQL3", log, answer), CUSTOM, ["BizTalkMsgBoxDb"])
    return SqlEstate(CUSTOM, [main, sso_inst, mbox], {"rules_database_cleanup_biztalkruleenginedb": "SQL3"})


@pytest.mark.parametrize("name", sorted(STATEMENTS))
def test_every_statement_rendered_with_the_inventorys_names_names_no_default_database(name):
    rendered = tsql.render(STATEMENTS[name], CUSTOM)
    for default in ("SSODB.", "BizTalkMgmtDb."):
        assert default.lower() not in rendered.lower().replace("ssodb_prd.", "").replace("biztalkmgmtdb_prd.", "")
    assert tsql.render(STATEMENTS[name], DatabaseNames()) == STATEMENTS[name]  # the defaults: unchanged


def test_a_name_that_is_not_an_identifier_is_never_written_into_t_sql():
    with pytest.raises(ValueError, match="not a database name"):
        tsql.render(tsql.SECRET_SERVER, DatabaseNames(ssodb="SSODB]; DROP TABLE x; --"))


def test_each_statement_runs_on_the_instance_of_its_database_with_its_name():
    log: list[tuple[str, str, str]] = []
    estate = two_instances(log)
    sso.secret_server(estate)
    backup.last_full_set(estate.management)
    estate.execute(tsql.NOW)
    assert [(inst, db) for inst, db, _ in log] == [("SQL2\\SSO", "SSODB_PRD"), ("SQL1", "BizTalkMgmtDb_PRD"),
                                                   ("SQL1", "master")]
    assert "FROM SSODB_PRD.dbo.SSOX_GlobalInfo" in log[0][2]
    assert "FROM BizTalkMgmtDb_PRD.dbo.adm_BackupHistory" in log[1][2]


def test_a_job_runs_where_its_database_is_or_where_the_inventory_says():
    estate = two_instances([])
    where = {job: estate.job_instance(job).label for job in DEFAULT_JOBS}
    assert where["MessageBox_Message_ManageRefCountLog_BizTalkMsgBoxDb"] == "SQL3"
    assert where["PurgeSubscriptionsJob_BizTalkMsgBoxDb"] == "SQL3"
    assert where["Rules_Database_Cleanup_BizTalkRuleEngineDb"] == "SQL3"  # named in the inventory
    assert where["Backup BizTalk Server (BizTalkMgmtDb)"] == "SQL1"
    assert where["DTA Purge and Archive (BizTalkDTADb)"] == "SQL1"  # its database is on sql.server
    groups = {inst.label: jobs for inst, jobs in estate.jobs_by_instance(DEFAULT_JOBS)}
    assert set(groups) == {"SQL1", "SQL3"} and sum(len(j) for j in groups.values()) == len(DEFAULT_JOBS)
    assert job_database("DTA Purge and Archive (BizTalkDTADb)", ["BizTalkDTADb"]) == "BizTalkDTADb"
    assert job_database("MessageBox_UpdateStats_BizTalkMsgBoxDb2", ["BizTalkMsgBoxDb"]) is None


def test_job_control_reads_and_acts_in_each_instances_own_msdb():
    log: list[tuple[str, str, str]] = []

    def answer(sql: str, db: str):  # type: ignore[no-untyped-def]
        if "FROM msdb.dbo.sysjobs" in sql:
            return (["name", "enabled", "last_instance_id", "last_run_status", "last_run_date", "last_run_time",
                     "last_message", "running"], [("MessageBox_UpdateStats_BizTalkMsgBoxDb", 1, 1, 1, 20260101, 0,
                                                   "ok", 0), ("Backup BizTalk Server (BizTalkMgmtDb)", 1, 1, 1,
                                                              20260101, 0, "ok", 0)])
        return [], []
    estate = two_instances(log, answer)
    found = sqlagent.jobs_everywhere(estate, ["MessageBox_UpdateStats_BizTalkMsgBoxDb",
                                              "Backup BizTalk Server (BizTalkMgmtDb)"])
    assert all(j.exists for j in found.values())
    assert {(inst, db) for inst, db, _ in log} == {("SQL1", "msdb"), ("SQL3", "msdb")}


def test_grants_are_asked_on_each_instance_for_its_own_databases():
    rows = [(p, o, 1) for p, o in (("EXECUTE", "msdb.dbo.sp_update_job"), ("SELECT", "SSODB_PRD.dbo.SSOX_GlobalInfo"),
                                   ("SELECT", "BizTalkMgmtDb_PRD.dbo.adm_BackupHistory"))]

    def answer(sql: str, db: str):  # type: ignore[no-untyped-def]
        return (["permission", "object_name", "granted"], rows) if "HAS_PERMS_BY_NAME" in sql else ([], [])
    estate = two_instances([], answer)
    on = {inst.label: [g.object_name for g in permissions.grants(inst, inst.holds)] for inst in estate.instances}
    assert on["SQL1"] == ["msdb.dbo.sp_update_job", "BizTalkMgmtDb_PRD.dbo.adm_BackupHistory"]
    assert on["SQL2\\SSO"] == ["msdb.dbo.sp_update_job", "SSODB_PRD.dbo.SSOX_GlobalInfo"]
    # the flag table's absent twin is not a missing grant, whatever the management database is called
    twin = permissions.Grant("SELECT", "BizTalkMgmtDb_PRD.dbo.adm_ForceFullBackup", None)
    assert permissions.missing([twin]) == []


def test_msdb_grants_are_asked_only_where_the_run_controls_jobs():
    rows = [(p, o, 0) for p, o in (("EXECUTE", "msdb.dbo.sp_update_job"), ("SELECT", "SSODB_PRD.dbo.SSOX_GlobalInfo"))]

    def answer(sql: str, db: str):  # type: ignore[no-untyped-def]
        return (["permission", "object_name", "granted"], rows) if "HAS_PERMS_BY_NAME" in sql else ([], [])
    estate = two_instances([], answer)
    jobs = ["Backup BizTalk Server (BizTalkMgmtDb)"]  # runs on SQL1; SQL2\SSO and SQL3 run none
    lacking = {inst.label: [g.object_name for g in permissions.missing(permissions.grants(inst, estate.asks_grants(inst, jobs)))]
               for inst in estate.instances}
    assert lacking == {"SQL1": ["msdb.dbo.sp_update_job"], "SQL2\\SSO": ["SSODB_PRD.dbo.SSOX_GlobalInfo"], "SQL3": []}
    # a MessageBox job placed on SQL3 makes SQL3's msdb grants count
    jobs.append("MessageBox_UpdateStats_BizTalkMsgBoxDb")
    assert [g.object_name for g in permissions.missing(permissions.grants(estate.instances[2], estate.asks_grants(estate.instances[2], jobs)))] \
        == ["msdb.dbo.sp_update_job"]


def row(database: str, server: str) -> Any:
    return SimpleNamespace(database=database, server=server)


def test_the_backup_jobs_view_is_checked_against_the_inventorys_placement():
    estate = two_instances([])
    names = {"SQL1": "SQL1", "SQL2\\SSO": "SQL2\\SSO", "SQL3": "SQL3"}
    view = [row("BizTalkMgmtDb_PRD", "SQL1"), row("SSODB_PRD", "sql2.corp.example\\SSO"),
            row("BizTalkMsgBoxDb", "SQL3"), row("BizTalkDTADb", "SQL9")]  # DTA: not the run's business
    assert misplaced(estate, view, names) == []
    wrong = misplaced(estate, [row("SSODB_PRD", "SQL1")], names)
    assert wrong == [Misplaced("SSODB_PRD", "SQL1", "SQL2\\SSO", "SQL2\\SSO")]
    one = single(recording("SQL1", []), CUSTOM)
    assert [str(m) for m in misplaced(one, [row("SSODB_PRD", "SQL2\\SSO")], {"SQL1": "SQL1"})] == [
        "SSODB_PRD: the Backup BizTalk Server job backs it up on SQL2\\SSO, the inventory puts it on SQL1 (SQL1)"]
    # BizTalk configured with the listener the inventory connects by: the same instance
    assert misplaced(one, [row("SSODB_PRD", "sql1")], {"SQL1": "SQLNODE1"}) == []


def test_the_estate_lock_is_taken_in_ssodb_as_the_inventory_names_it_on_its_instance(tmp_path: Path):
    inv = load_inventory(write(tmp_path, doc_with(**{
        "sql.databases": {"ssodb": "SSODB_PRD", "management": "BizTalkMgmtDb_PRD"},
        "sql.instances": [{"server": "SQL2", "instance": "SSO", "databases": ["SSODB_PRD"]}]})))
    run = build_run("r1", tmp_path / "run", Options(), inv)
    try:
        assert run.sql.ssodb.label == "SQL2\\SSO" and run.sql.management.label == "SQL1"
        assert run.sql.ssodb.settings.auth == "sql" and run.sql.ssodb.settings.username == "entsso"
        lock = EstateLock(run.sql.ssodb.settings, None, "SSOCLUSTER", run.sql.names.ssodb)
        assert lock.database == "SSODB_PRD" and lock.sql.settings.server == "SQL2"
        assert "DATABASE=SSODB_PRD" in lock.sql.settings.connection_string(lock.database)
    finally:
        run.sql.close()


@pytest.mark.parametrize("field, value, words", [
    ("sql.databases", {"management": "BizTalkMgmtDb-PRD"}, "sql.databases.management: 'BizTalkMgmtDb-PRD' is not a "
                                                          "database name the suite accepts"),
    ("sql.instances", [{"server": "SQL2", "databases": ["BizTalkMgmtDb"]}],
     "sql.instances[0].databases[0]: 'BizTalkMgmtDb' is the management database"),
    ("sql.instances", [{"server": "SQL2", "databases": ["SSODB"]}, {"server": "SQL3", "databases": ["SSODB"]}],
     "sql.instances[1].databases[0]: 'SSODB' is already placed on sql.instances[0]"),
    ("sql.instances", [{"server": "SQL1", "databases": ["SSODB"]}], "sql.instances[0].server: SQL1 is listed already"),
    ("sql.instances", [{"server": "SQL2", "databases": ["msdb"]}], "every instance has its own msdb"),
    ("sql.instances", [{"server": "SQL2", "databases": ["SSODB"], "jobs": ["Nightly"]}],
     "sql.instances[0].jobs[0]: 'Nightly' is not in sql.jobs"),
    ("sql.instances", [{"server": "SQL2", "databases": []}], "sql.instances[0].databases: the list is empty"),
])
def test_a_placement_that_cannot_be_right_is_refused_by_field(tmp_path: Path, field: str, value: Any, words: str):
    assert words in refused(tmp_path, doc_with(**{field: value}))


def test_the_outline_shows_each_instance_and_what_it_holds(tmp_path: Path):
    from entsso.inventory import check_inventory, outline

    inv = check_inventory(write(tmp_path, doc_with(**{
        "sql.instances": [{"server": "SQL2", "instance": "SSO", "databases": ["SSODB"]}]})))
    assert "  and SQL Server SQL2\\SSO: databases SSODB" in outline(inv)
