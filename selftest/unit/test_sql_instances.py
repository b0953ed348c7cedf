"""Names and instances from the inventory (entsso/remote/sqlestate.py, tsql.render), the parts decided before any
statement runs: every statement rendered with the inventory's database names; the instance of each job by
its name or the inventory; the Backup BizTalk Server job's view rows (ServerName) checked against the
placement, whatever name an instance is known by; and the inventory refusing a placement that cannot be
right, naming the field and the fix. What the instances receive and answer (routing, msdb, grants, the
view as SQL1 serves it) runs against lab engines over pyodbc and TDS: selftest/lab/test_sql_instances.py."""
from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from entsso.remote import tsql
from entsso.inventory import DEFAULT_JOBS
from entsso.change.lock import EstateLock
from entsso.change.run import Options, build_run
from entsso.remote.sql import SqlServer, SqlSettings
from entsso.remote.sqlestate import (DatabaseNames, Executes, Misplaced, SqlEstate, SqlInstance, job_database, misplaced,
                                     single)
from selftest.unit.test_inventory import DELETE, doc_with, refused, write  # noqa: F401
from selftest.unit.test_inventory import secrets_env  # noqa: F401 - the inventory's variables set
from entsso.inventory import load_inventory

CUSTOM = DatabaseNames(ssodb="SSODB_PRD", management="BizTalkMgmtDb_PRD", msdb="msdb")
STATEMENTS = {n: getattr(tsql, n) for n in dir(tsql) if n.isupper() and isinstance(getattr(tsql, n), str)}


def unconnected(label: str) -> SqlServer:
    """A SqlServer that is never connected: placement is decided before any statement runs."""
    host, _, instance = label.partition("\\")
    return SqlServer(SqlSettings(server=host, instance=instance or None))


def three_instances() -> SqlEstate:
    main = SqlInstance("SQL1", unconnected("SQL1"), CUSTOM, ["BizTalkMgmtDb_PRD"])
    sso_inst = SqlInstance("SQL2\\SSO", unconnected("SQL2\\SSO"), CUSTOM, ["SSODB_PRD"])
    mbox = SqlInstance("SQL3", unconnected("SQL3"), CUSTOM, ["BizTalkMsgBoxDb"])
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


def test_a_job_runs_where_its_database_is_or_where_the_inventory_says():
    estate = three_instances()
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


def row(database: str, server: str) -> Any:
    return SimpleNamespace(database=database, server=server)


def test_view_rows_are_checked_against_the_placement_by_any_name_an_instance_is_known_by():
    estate = three_instances()
    names = {"SQL1": "SQL1", "SQL2\\SSO": "SQL2\\SSO", "SQL3": "SQL3"}
    view = [row("BizTalkMgmtDb_PRD", "SQL1"), row("SSODB_PRD", "sql2.corp.example\\SSO"),
            row("BizTalkMsgBoxDb", "SQL3"), row("BizTalkDTADb", "SQL9")]  # DTA: not the run's business
    assert misplaced(estate, view, names) == []
    wrong = misplaced(estate, [row("SSODB_PRD", "SQL1")], names)
    assert wrong == [Misplaced("SSODB_PRD", "SQL1", "SQL2\\SSO", "SQL2\\SSO")]
    one = single(unconnected("SQL1"), CUSTOM)
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


def test_a_server_an_instance_and_an_estate_each_run_t_sql_for_the_facts():
    """Facts and operations take `Executes`: any of the three, as the runbook hands them (sqlestate.Executes)."""
    estate = three_instances()
    for runner in (estate.main.server, estate.main, estate):
        assert isinstance(runner, Executes), runner
    assert not isinstance(CUSTOM, Executes)
