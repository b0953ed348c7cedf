"""The lab's SQL Server through the suite's own SQL layer (entsso.remote.sql: pyodbc, FreeTDS, TDS with TLS from the lab CA):
every statement of entsso/remote/tsql.py, SQL Agent job control, the Backup BizTalk Server job, the errors the
suite classifies, and the counters the lab reports."""
from __future__ import annotations

import secrets
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable

import pytest
import yaml

from entsso.domain import backup, biztalk, permissions, sqlagent, sso
from entsso.remote import tsql
from entsso.lab.clock import Clock
from entsso.change.lock import EstateLock, EstateLockLost
from entsso.lab.sqlengine import BACKUP_JOB, EngineError, SqlEngine
from entsso.lab.pki import LabCA
from entsso.lab.tds import TdsEndpoint
from entsso.domain.poll import Poller
from entsso.remote.sql import SqlError, SqlLoginFailed, SqlPermissionDenied, SqlServer, SqlSettings, SqlUnreachable

SCENARIO = Path(__file__).resolve().parents[2] / "entsso" / "lab" / "scenarios" / "default.yml"
PASSWORD = "Sql-" + secrets.token_urlsafe(12)
USER = "entsso"
MONITOR_JOB = "Monitor BizTalk Server (BizTalkMgmtDb)"
DISABLED_JOB = "DTA Purge and Archive (BizTalkDTADb)"

# what each statement that returns rows must return
COLUMNS = {
    "BIZTALK_SERVERS": ["Name"],
    "ALL_JOBS": ["name", "enabled"],
    "GRANTS": ["permission", "object_name", "granted"],
    "ESTATE_LOCK_MODE": ["mode"],
    "NOW": ["now_utc", "now_local"],
    "SECRET_SERVER": ["secret_server"],
    "SSO_ADMIN_GROUP": ["admin_group"],
    "SERVER_NAME": ["server_name"],
    "SSO_SERVERS": ["server_name"],
    "GROUP_SSO_SERVER": ["sso_server"],
    "ADAPTER_HANDLERS": ["kind", "adapter", "host_name", "config_id"],
    "JOBS": ["name", "enabled", "last_instance_id", "last_run_status", "last_run_date", "last_run_time",
             "last_message", "failed_step", "failed_step_message", "failed_step_instance_id", "running"],
    "FORCE_FULL_OBJECTS": ["backup_settings", "force_full_backup"],
    "FORCE_FULL_SETTINGS": ["force_full"],
    "BACKUP_DATABASES": ["server_name", "database_name", "last_full_set"],
    "LAST_FULL_SET": ["set_id"],
    "FULL_SETS_AFTER": ["set_id", "database_name", "server_name", "backup_file", "recorded_at"],
    "GET_ESTATE_LOCK": ["result"],
    "AGENT_STATUS": ["service_name", "status"],
    "JOB_CONTROL": ["login", "sysadmin", "agent_operator"],
    "JOB_OWNERS": ["name", "owner"],
    "JOB_STEPS": ["step_id", "step_name", "run_status", "message"],
}
PROCEDURES = ("UPDATE_JOB", "START_JOB", "STOP_JOB", "FORCE_FULL_BACKUP", "RELEASE_ESTATE_LOCK")
# statements of an older BizTalk's schema only (sql.biztalk_schema: 2006): one column, its name undocumented
LEGACY = {"FORCE_FULL_LEGACY": None}


def scenario_sql(**overrides: Any) -> dict[str, Any]:
    doc = yaml.safe_load(SCENARIO.read_text())["sql"]
    doc.update(overrides)
    return doc


@pytest.fixture
def make_engine() -> Callable[..., SqlEngine]:
    engines: list[SqlEngine] = []

    def make(speed: float = 200, start: datetime | None = None, **overrides: Any) -> SqlEngine:
        e = SqlEngine(scenario_sql(**overrides), "SSOCLUSTER", Clock(speed=speed, start=start),
                      biztalk_servers=("BTS1", "BTS2"))
        engines.append(e)
        return e

    yield make
    for e in engines:
        e.close()


@pytest.fixture(scope="module")
def lab_ca(tmp_path_factory) -> tuple[LabCA, Any]:
    ca = LabCA("entsso lab CA")
    return ca, ca.issue("SQL1", addresses=["127.0.0.1"])


@pytest.fixture
def serve(lab_ca) -> Callable[[SqlEngine], TdsEndpoint]:
    endpoints: list[TdsEndpoint] = []
    ca, cert = lab_ca

    def start(engine: SqlEngine) -> TdsEndpoint:
        ep = TdsEndpoint(engine, "127.0.0.1", 0, USER, PASSWORD, certificate=cert)
        ep.ca_file = str(ca.ca_path)  # for client(): the CA the lab's inventory names
        ep.start()
        endpoints.append(ep)
        return ep

    yield start
    for ep in endpoints:
        ep.stop()


def client(ep: TdsEndpoint, password: str = PASSWORD) -> SqlServer:
    """The suite's SqlServer as the lab's inventory sets it up: pyodbc, FreeTDS, TLS against the lab CA."""
    return SqlServer(SqlSettings(server="SQL1", driver="FreeTDS", ca_file=ep.ca_file, lab_address="127.0.0.1",
                                 lab_port=ep.port, auth="sql", username=USER, login_timeout=5), password)


@pytest.fixture
def lab_sql(make_engine, serve) -> Callable[..., tuple[SqlEngine, SqlServer]]:
    made: list[SqlServer] = []

    def make(**kw: Any) -> tuple[SqlEngine, SqlServer]:
        engine = make_engine(**kw)
        sql = client(serve(engine))
        made.append(sql)
        return engine, sql

    yield make
    for s in made:
        s.close()


def jobs(sql: SqlServer) -> dict[str, dict[str, Any]]:
    return {r["name"]: r for r in sql.execute(tsql.JOBS, database="msdb").rows}


def wait_finished(sql: SqlServer, name: str, before_instance: int | None, timeout: float = 10.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        j = jobs(sql)[name]
        if not j["running"] and j["last_instance_id"] != before_instance:
            return j
        time.sleep(0.02)
    raise AssertionError(f"job {name} did not finish within {timeout}s")


# ------------------------------------------------------------------------------------------ statements


def test_adm_server_lists_the_groups_biztalk_servers(lab_sql):
    _, sql = lab_sql()
    assert [r["Name"] for r in sql.execute(tsql.BIZTALK_SERVERS).rows] == ["BTS1", "BTS2"]


def test_every_tsql_statement_is_covered_here():
    statements = {n for n in dir(tsql) if n.isupper() and isinstance(getattr(tsql, n), str)}
    assert statements == set(COLUMNS) | set(PROCEDURES) | set(LEGACY)


@pytest.mark.parametrize("name", sorted(COLUMNS) + sorted(LEGACY))
def test_statement_returns_its_columns(lab_sql, name):
    engine, sql = lab_sql(biztalk_schema="2006") if name in LEGACY else lab_sql(
        failed_jobs={BACKUP_JOB: {"step": "MarkAndBackupLog", "message": "x"}}) if name == "JOB_STEPS" else lab_sql()
    if name == "SSO_SERVERS":  # the lab's server registers its hosts (entsso.lab.server.Lab)
        engine.register_sso_servers(["NODE1"])
    if name == "GROUP_SSO_SERVER":  # and the group's row
        engine.set_group("BizTalk Group", "SSOCLUSTER")
    if name == "ADAPTER_HANDLERS":  # and the group's handlers (biztalk.adapter_handlers of the scenario)
        engine.set_adapter_handlers([("receive", "FILE", "ReceiveHost", "5D0B6E1A-0C2B-4B7E-9F7A-1D2E3F405060")])
    params = {"GET_ESTATE_LOCK": ("entsso-upgrade:SSOCLUSTER",), "FULL_SETS_AFTER": (0,),
              "ESTATE_LOCK_MODE": ("entsso-upgrade:SSOCLUSTER",), "JOB_STEPS": (BACKUP_JOB, 0, 10**9)}.get(name, ())
    rows = sql.execute(getattr(tsql, name), params, database="BizTalkMgmtDb").rows
    assert rows, f"{name} returned no row"
    if name in LEGACY:
        assert len(rows[0]) == 1
    else:
        assert list(rows[0]) == COLUMNS[name]


def test_now_reads_the_lab_clock_as_datetimes(lab_sql):
    start = datetime(2031, 3, 4, 5, 6, 7, tzinfo=timezone.utc)
    _, sql = lab_sql(start=start)
    row = sql.execute(tsql.NOW).rows[0]
    assert isinstance(row["now_utc"], datetime)
    # the first TLS login of a worker loads the driver: a few hundred ms at speed 200 on a busy runner
    assert abs(row["now_utc"] - start.replace(tzinfo=None)) < timedelta(seconds=120)


@pytest.mark.parametrize("offset", [600, -480, 0])
def test_getdate_is_the_servers_local_time_and_sysutcdatetime_utc(lab_sql, offset):
    _, sql = lab_sql(utc_offset_minutes=offset)
    row = sql.execute(tsql.NOW).rows[0]
    assert abs(row["now_local"] - row["now_utc"] - timedelta(minutes=offset)) < timedelta(seconds=5)
    assert backup.utc_offset_minutes(sql) == offset


def test_msdb_and_backup_history_times_are_local(lab_sql):
    """backupset's dates, its time_zone, sysjobhistory's run_date and adm_BackupHistory (as with
    @UseLocalTime = 1) are SQL Server's local time, not UTC."""
    engine, sql = lab_sql(utc_offset_minutes=600)
    sql.execute(tsql.FORCE_FULL_BACKUP, database="BizTalkMgmtDb")
    run_backup_job(sql)
    local = sql.execute(tsql.NOW).rows[0]["now_local"]
    row = sql.execute("SELECT TOP 1 backup_finish_date AS f, time_zone AS tz FROM msdb.dbo.backupset "
                      "ORDER BY backup_set_id DESC", database="msdb").rows[0]
    assert abs(row["f"] - local) < timedelta(minutes=5) and row["tz"] == 40
    recorded = sql.execute(tsql.FULL_SETS_AFTER, (0,), database="BizTalkMgmtDb").rows[-1]["recorded_at"]
    assert abs(recorded - local) < timedelta(minutes=5)
    run = jobs(sql)[BACKUP_JOB]
    assert run["last_run_date"] == int(local.strftime("%Y%m%d"))


def test_jobs_lists_every_scenario_job_with_its_enabled_flag(lab_sql):
    _, sql = lab_sql()
    got = {n: bool(r["enabled"]) for n, r in jobs(sql).items()}
    assert got == {n: bool(v) for n, v in scenario_sql()["jobs"].items()}


def test_backup_databases_cover_ssodb_with_yesterdays_full_set(lab_sql):
    _, sql = lab_sql()
    rows = {r["database_name"]: r for r in sql.execute(tsql.BACKUP_DATABASES, database="BizTalkMgmtDb").rows}
    assert set(rows) == set(scenario_sql()["databases"])
    assert rows["SSODB"]["last_full_set"] == 1  # the seed: yesterday's full set, then log sets
    assert sql.execute(tsql.LAST_FULL_SET, database="BizTalkMgmtDb").scalar() == 1


def test_secret_server_reads_what_the_estate_set(lab_sql):
    engine, sql = lab_sql()
    assert sql.execute(tsql.SECRET_SERVER, database="SSODB").scalar() == "SSOCLUSTER"
    engine.set_secret_server("NODE1")
    assert sql.execute(tsql.SECRET_SERVER, database="SSODB").scalar() == "NODE1"
    assert engine.get_secret_server() == "NODE1"


# ------------------------------------------------------------------------------------------ SQL Agent


def test_sp_update_job_disables_a_job(lab_sql):
    _, sql = lab_sql()
    sql.execute(tsql.UPDATE_JOB, (MONITOR_JOB, 0), database="msdb")
    assert jobs(sql)[MONITOR_JOB]["enabled"] == 0


def test_sp_update_job_enables_a_job(lab_sql):
    _, sql = lab_sql()
    sql.execute(tsql.UPDATE_JOB, (DISABLED_JOB, 1), database="msdb")
    assert jobs(sql)[DISABLED_JOB]["enabled"] == 1


def test_sp_start_job_returns_while_the_job_runs(lab_sql):
    _, sql = lab_sql(job_run_sec=400)  # 2 s real at speed 200
    res = sql.execute(tsql.START_JOB, (MONITOR_JOB,), database="msdb")
    assert any(f"Job '{MONITOR_JOB}' started successfully." in m for m in res.messages)
    assert jobs(sql)[MONITOR_JOB]["running"] == 1


def test_started_job_ends_with_a_success_row_in_history(lab_sql):
    _, sql = lab_sql()
    before = jobs(sql)[MONITOR_JOB]["last_instance_id"]
    sql.execute(tsql.START_JOB, (MONITOR_JOB,), database="msdb")
    done = wait_finished(sql, MONITOR_JOB, before)
    assert done["last_run_status"] == 1
    assert f"User {USER}" in done["last_message"]


def test_disabled_job_can_be_started_by_hand(lab_sql):
    _, sql = lab_sql()
    before = jobs(sql)[DISABLED_JOB]["last_instance_id"]
    sql.execute(tsql.START_JOB, (DISABLED_JOB,), database="msdb")
    assert wait_finished(sql, DISABLED_JOB, before)["last_run_status"] == 1


def test_failing_job_writes_failed_history_with_the_message(lab_sql):
    engine, sql = lab_sql()
    engine.fail_job(MONITOR_JOB, "Monitor found 3 orphaned instances")
    before = jobs(sql)[MONITOR_JOB]["last_instance_id"]
    sql.execute(tsql.START_JOB, (MONITOR_JOB,), database="msdb")
    done = wait_finished(sql, MONITOR_JOB, before)
    assert done["last_run_status"] == 0
    assert "Monitor found 3 orphaned instances" in done["last_message"]


def test_job_fails_only_the_given_number_of_times(lab_sql):
    engine, sql = lab_sql()
    engine.fail_job(MONITOR_JOB, "boom", times=1)
    for _ in range(2):
        before = jobs(sql)[MONITOR_JOB]["last_instance_id"]
        sql.execute(tsql.START_JOB, (MONITOR_JOB,), database="msdb")
        last = wait_finished(sql, MONITOR_JOB, before)
    assert last["last_run_status"] == 1


def test_starting_a_running_job_is_refused_with_22022(lab_sql):
    _, sql = lab_sql(job_run_sec=400)
    sql.execute(tsql.START_JOB, (MONITOR_JOB,), database="msdb")
    with pytest.raises(SqlError) as err:
        sql.execute(tsql.START_JOB, (MONITOR_JOB,), database="msdb")
    assert err.value.number == 22022 and "already running" in str(err.value)


@pytest.mark.parametrize("statement", ["START_JOB", "UPDATE_JOB"])
def test_unknown_job_is_error_14262(lab_sql, statement):
    _, sql = lab_sql()
    params = ("No Such Job",) if statement == "START_JOB" else ("No Such Job", 0)
    with pytest.raises(SqlError) as err:
        sql.execute(getattr(tsql, statement), params, database="msdb")
    assert err.value.number == 14262 and "No Such Job" in str(err.value)


# ------------------------------------------------------------------------------------------ backups


def run_backup_job(sql: SqlServer) -> dict[str, Any]:
    before = jobs(sql)[BACKUP_JOB]["last_instance_id"]
    sql.execute(tsql.START_JOB, (BACKUP_JOB,), database="msdb")
    return wait_finished(sql, BACKUP_JOB, before)


def test_forced_full_backup_is_a_newer_complete_set_of_every_database(lab_sql):
    _, sql = lab_sql()
    before = sql.execute(tsql.LAST_FULL_SET, database="BizTalkMgmtDb").scalar()
    sql.execute(tsql.FORCE_FULL_BACKUP, database="BizTalkMgmtDb")
    assert run_backup_job(sql)["last_run_status"] == 1
    sets = backup.full_sets_after(sql, before)
    assert len(sets) == 1 and sets[0].set_id > before
    assert sets[0].missing(scenario_sql()["databases"]) == []


def test_unforced_run_after_todays_full_set_makes_no_full_set(lab_sql):
    # at noon: an hour-old set is today's (between local midnight and 01:00 it would be yesterday's)
    _, sql = lab_sql(last_full_minutes_ago=60, start=datetime(2031, 3, 4, 12, 0, tzinfo=timezone.utc))
    before = sql.execute(tsql.LAST_FULL_SET, database="BizTalkMgmtDb").scalar()
    run_backup_job(sql)  # the job's own rule: a full set when forced or none today, else log backups
    assert backup.full_sets_after(sql, before) == []


REQUIRED = ["SSODB", "BizTalkMgmtDb"]


def fast_poller() -> Poller:
    return Poller(first=0.02, cap=0.05)


@pytest.mark.parametrize("offset", [600, -480])
def test_backup_from_before_the_change_is_never_the_proof(lab_sql, offset):
    """East of UTC a routine full set of an hour ago reads as hours *after* a UTC change start, west of
    UTC a fresh one reads as before it: the proof is a set id newer than the newest one before the run."""
    engine, sql = lab_sql(utc_offset_minutes=offset, last_full_minutes_ago=60)
    routine = sql.execute(tsql.LAST_FULL_SET, database="BizTalkMgmtDb").scalar()
    done = backup.ensure_full_backup(sql, BACKUP_JOB, REQUIRED, 20, fast_poller())
    proof = done.evidence
    assert done.changed is True and proof["before_set_id"] == routine
    assert proof["set_id"] > routine
    assert set(scenario_sql()["databases"]) <= set(proof["databases"])
    assert proof["sql_utc_offset_minutes"] == offset
    assert engine.dump()["counters"]["procedures"]["sp_ForceFullBackup"] == 1


def test_resumed_backup_with_its_proven_set_is_not_redone(lab_sql):
    engine, sql = lab_sql()
    proof = backup.ensure_full_backup(sql, BACKUP_JOB, REQUIRED, 20, fast_poller()).evidence
    again = backup.ensure_full_backup(sql, BACKUP_JOB, REQUIRED, 20, fast_poller(), proven=proof)
    assert again.changed is False and again.evidence["set_id"] == proof["set_id"] and again.outcome == "unchanged"
    assert engine.dump()["counters"]["procedures"]["sp_start_job"] == 1


def test_ssodb_missing_from_the_jobs_view_fails_the_forced_backup_by_name(lab_sql):
    _, sql = lab_sql(databases=["BizTalkMgmtDb", "BizTalkMsgBoxDb", "BizTalkDTADb"])
    with pytest.raises(backup.BackupFailed) as err:
        backup.ensure_full_backup(sql, BACKUP_JOB, REQUIRED, 20, fast_poller())
    assert "has no row for SSODB (not in admv_BackupDatabases: add it to adm_OtherBackupDatabases)" in str(err.value)


@pytest.mark.parametrize("schema, table", [("2010", "adm_BackupSettings"), ("2006", "adm_ForceFullBackup")])
def test_force_full_flag_is_set_by_the_procedure_where_the_schema_keeps_it(lab_sql, schema, table):
    _, sql = lab_sql(biztalk_schema=schema)
    assert backup.force_full_flag(sql) == backup.ForceFullFlag(table, False)
    sql.execute(tsql.FORCE_FULL_BACKUP, database="BizTalkMgmtDb")
    assert backup.force_full_flag(sql) == backup.ForceFullFlag(table, True)


@pytest.mark.parametrize("schema", ["2010", "2006"])
def test_backup_job_consumes_the_force_full_flag(lab_sql, schema):
    _, sql = lab_sql(biztalk_schema=schema)
    sql.execute(tsql.FORCE_FULL_BACKUP, database="BizTalkMgmtDb")
    run_backup_job(sql)
    assert backup.force_full_flag(sql).set is False


def test_biztalk_2010_schema_has_no_adm_forcefullbackup(lab_sql):
    """As a real BizTalkMgmtDb of BizTalk 2010 and later: the table the docs name is not there."""
    _, sql = lab_sql()
    with pytest.raises(SqlError) as err:
        sql.execute(tsql.FORCE_FULL_LEGACY, database="BizTalkMgmtDb")
    assert err.value.number == 208
    assert "Invalid object name 'BizTalkMgmtDb.dbo.adm_ForceFullBackup'." in str(err.value)
    assert sql.execute(tsql.FORCE_FULL_OBJECTS, database="BizTalkMgmtDb").rows[0]["force_full_backup"] is None


def test_biztalk_2006_schema_has_no_adm_backupsettings(lab_sql):
    _, sql = lab_sql(biztalk_schema="2006")
    with pytest.raises(SqlError) as err:
        sql.execute(tsql.FORCE_FULL_SETTINGS, database="BizTalkMgmtDb")
    assert "Invalid object name 'BizTalkMgmtDb.dbo.adm_BackupSettings'." in str(err.value)


def test_unknown_biztalk_schema_is_refused(make_engine):
    with pytest.raises(ValueError, match="sql.biztalk_schema: '2013' is not one of 2010, 2006"):
        make_engine(biztalk_schema="2013")


def test_unknown_sql_scenario_key_is_refused(make_engine):
    with pytest.raises(ValueError, match="unknown key.*utc_ofset_minutes"):
        make_engine(utc_ofset_minutes=60)


def test_failed_backup_run_leaves_the_flag_set(lab_sql):
    engine, sql = lab_sql()
    engine.fail_job(BACKUP_JOB, "BACKUP DATABASE is terminating abnormally.")
    sql.execute(tsql.FORCE_FULL_BACKUP, database="BizTalkMgmtDb")
    assert run_backup_job(sql)["last_run_status"] == 0
    assert backup.force_full_flag(sql).set is True


def test_backup_job_takes_log_backups_once_today_has_a_full_set(make_engine):
    engine = make_engine()
    engine.execute(tsql.FORCE_FULL_BACKUP, database="BizTalkMgmtDb")
    engine.execute(tsql.START_JOB, (BACKUP_JOB,), database="msdb")
    engine.wait_idle()
    fulls = engine.execute("SELECT COUNT(*) AS n FROM msdb.dbo.backupset WHERE type = 'D'").sets[0].rows[0][0]
    engine.execute(tsql.START_JOB, (BACKUP_JOB,), database="msdb")
    engine.wait_idle()
    assert engine.execute("SELECT COUNT(*) AS n FROM msdb.dbo.backupset WHERE type = 'D'").sets[0].rows[0][0] == fulls


def test_prepared_estate_has_a_full_set_after_the_lab_started(make_engine):
    engine = make_engine(full_backup_done=True)
    started = engine.clock.now().replace(tzinfo=None) + engine.utc_offset
    rows = engine.execute(tsql.FULL_SETS_AFTER, (0,), database="BizTalkMgmtDb").sets[0].rows
    newest = max(r[0] for r in rows)
    assert all(r[4] > started for r in rows if r[0] == newest)


def test_full_backup_files_are_named_like_the_real_job(make_engine):
    engine = make_engine()
    engine.execute(tsql.FORCE_FULL_BACKUP, database="BizTalkMgmtDb")
    engine.execute(tsql.START_JOB, (BACKUP_JOB,), database="msdb")
    engine.wait_idle()
    name = engine.execute("SELECT TOP 1 BackupFileName FROM BizTalkMgmtDb.dbo.adm_BackupHistory "
                          "WHERE DatabaseName = N'SSODB' AND BackupType = 'db' ORDER BY BackupId DESC").sets[0].rows[0][0]
    assert name.startswith("SQL1_SSODB_Full_BTS_") and name.endswith(".bak")


# ------------------------------------------------------------------------------------------ errors


@pytest.mark.parametrize("statement, number", [
    ("SET NOCOUNT ON; SELECT nope FROM msdb.dbo.sysjobs", 207),
    ("SELECT name FROM msdb.dbo.sysjobz", 208),
    ("EXEC msdb.dbo.sp_no_such_procedure @job_name = N'x'", 2812),
])
def test_sql_server_error_numbers_reach_the_suite(lab_sql, statement, number):
    _, sql = lab_sql()
    with pytest.raises(SqlError) as err:
        sql.execute(statement, database="msdb")
    assert err.value.number == number and not isinstance(err.value, SqlUnreachable)


def test_unknown_table_is_named_as_written(lab_sql):
    _, sql = lab_sql()
    with pytest.raises(SqlError) as err:
        sql.execute("SELECT name FROM msdb.dbo.sysjobz", database="msdb")
    assert "Invalid object name 'msdb.dbo.sysjobz'." in str(err.value)


def test_plain_writes_are_refused(lab_sql):
    _, sql = lab_sql()
    with pytest.raises(SqlError) as err:
        sql.execute("UPDATE BizTalkMgmtDb.dbo.adm_BackupSettings SET ForceFull = 1", database="BizTalkMgmtDb")
    assert err.value.number == 229


def test_wrong_password_is_a_login_failure(make_engine, serve):
    ep = serve(make_engine())
    with pytest.raises(SqlLoginFailed) as err:
        client(ep, password="not-the-password").execute(tsql.NOW)
    assert err.value.number == 18456 and "not-the-password" not in str(err.value)


def test_unavailable_sql_server_is_unreachable(make_engine, serve):
    engine = make_engine()
    ep = serve(engine)
    engine.set_unavailable(True)
    with pytest.raises(SqlUnreachable):
        client(ep).execute(tsql.NOW)


def test_open_connection_breaks_when_sql_server_goes_away(lab_sql):
    engine, sql = lab_sql()
    sql.execute(tsql.NOW)
    engine.set_unavailable(True)
    time.sleep(0.2)
    with pytest.raises(SqlUnreachable):
        sql.execute(tsql.NOW)


def test_sql_server_answers_again_once_available(lab_sql):
    engine, sql = lab_sql()
    engine.set_unavailable(True)
    with pytest.raises(SqlUnreachable):
        sql.execute(tsql.NOW)
    engine.set_unavailable(False)
    assert sql.execute(tsql.NOW).rows


def test_password_is_in_no_error_text(make_engine, serve):
    engine = make_engine()
    ep = serve(engine)
    texts: list[str] = []
    for password, statement in [(PASSWORD, "SELECT nope FROM msdb.dbo.sysjobs"),
                                (PASSWORD, "EXEC msdb.dbo.sp_nope"),
                                (PASSWORD + "x", tsql.NOW)]:
        try:
            client(ep, password).execute(statement)
        except SqlError as exc:
            texts += [str(exc), repr(exc), repr(exc.args), repr(exc.__cause__), repr(exc.__context__)]
    engine.set_unavailable(True)
    try:
        client(ep).execute(tsql.NOW)
    except SqlError as exc:
        texts += [str(exc), repr(exc)]
    assert len(texts) == 17
    assert not [t for t in texts if PASSWORD in t]


# ------------------------------------------------------------------------------------------ estate lock


def test_estate_lock_is_refused_to_a_second_session(make_engine, serve):
    ep = serve(make_engine())
    first, second = client(ep), client(ep)
    assert first.execute(tsql.GET_ESTATE_LOCK, ("r",), database="SSODB").scalar() == 0
    assert second.execute(tsql.GET_ESTATE_LOCK, ("r",), database="SSODB").scalar() == -1


def test_estate_lock_goes_with_the_holders_connection(make_engine, serve):
    ep = serve(make_engine())
    first, second = client(ep), client(ep)
    first.execute(tsql.GET_ESTATE_LOCK, ("r",), database="SSODB")
    first.close()
    deadline = time.monotonic() + 5
    while second.execute(tsql.GET_ESTATE_LOCK, ("r",), database="SSODB").scalar() != 0:
        assert time.monotonic() < deadline, "the lock outlived its session"
        time.sleep(0.02)


def test_released_estate_lock_can_be_taken_again(make_engine, serve):
    ep = serve(make_engine())
    first, second = client(ep), client(ep)
    first.execute(tsql.GET_ESTATE_LOCK, ("r",), database="SSODB")
    first.execute(tsql.RELEASE_ESTATE_LOCK, ("r",), database="SSODB")
    assert second.execute(tsql.GET_ESTATE_LOCK, ("r",), database="SSODB").scalar() == 0


# ------------------------------------------------------------------------------------------ counters


def test_reads_alone_change_nothing(lab_sql):
    engine, sql = lab_sql()
    for name in ("NOW", "SECRET_SERVER", "JOBS", "FORCE_FULL_OBJECTS", "FORCE_FULL_SETTINGS", "BACKUP_DATABASES"):
        sql.execute(getattr(tsql, name), database="msdb")
    counters = engine.dump()["counters"]
    assert counters["changes"] == 0 and counters["statements"] == 6


def test_changes_are_counted(lab_sql):
    engine, sql = lab_sql()
    sql.execute(tsql.UPDATE_JOB, (MONITOR_JOB, 0), database="msdb")
    sql.execute(tsql.FORCE_FULL_BACKUP, database="BizTalkMgmtDb")
    sql.execute(tsql.START_JOB, (MONITOR_JOB,), database="msdb")
    engine.set_secret_server("NODE1")
    dump = engine.dump()
    assert dump["counters"]["changes"] == 4
    assert dump["counters"]["procedures"] == {"sp_update_job": 1, "sp_ForceFullBackup": 1, "sp_start_job": 1}


def test_errors_are_counted(lab_sql):
    engine, sql = lab_sql()
    with pytest.raises(SqlError):
        sql.execute("SELECT nope FROM msdb.dbo.sysjobs")
    assert engine.dump()["counters"]["errors"] == 1


def test_dump_shows_jobs_flag_and_backups(make_engine):
    import json

    engine = make_engine(force_full_backup=True)
    dump = json.loads(json.dumps(engine.dump()))
    assert dump["force_full_backup"] == 1
    assert dump["jobs"][DISABLED_JOB]["enabled"] is False
    assert dump["backups"]["SSODB"]["last_full"] is not None
    assert dump["secret_server"] == "SSOCLUSTER"


def test_engine_error_carries_number_state_and_severity(make_engine):
    with pytest.raises(EngineError) as err:
        make_engine().execute(tsql.START_JOB, ("No Such Job",), database="msdb")
    assert (err.value.number, err.value.state, err.value.severity) == (14262, 1, 16)


# ------------------------------------------------------------------------------------------ the client


def test_client_login_failure_is_a_named_login_failure(make_engine, serve):
    sql = client(serve(make_engine()), password="wrong-" + PASSWORD)
    with pytest.raises(SqlLoginFailed) as err:
        sql.execute("SELECT 1 AS one")
    assert err.value.number == 18456 and f"Login failed for user '{USER}'." in str(err.value)
    assert PASSWORD not in str(err.value)


def test_client_nothing_listening_is_unreachable(make_engine, serve):
    ep = serve(make_engine())
    ep.stop()
    with pytest.raises(SqlUnreachable) as err:
        client(ep).execute("SELECT 1 AS one")
    assert err.value.sqlstate.startswith("08") and "unreachable" in str(err.value), err.value


def test_client_unknown_object_is_42S02(make_engine, serve):
    from entsso.remote.sql import SqlUnknownObject

    with pytest.raises(SqlUnknownObject) as err:
        client(serve(make_engine())).execute("SELECT name FROM dbo.sysjobz", database="msdb")
    assert err.value.sqlstate == "42S02" and err.value.number == 208


def test_client_walks_result_sets(make_engine, serve):
    res = client(serve(make_engine())).execute(
        "SELECT TOP 1 name FROM dbo.sysjobs ORDER BY name; SELECT 2 AS two", database="msdb")
    assert res.sets == [[{"name": "Backup BizTalk Server (BizTalkMgmtDb)"}], [{"two": 2}]]


# ------------------------------------------------------------------------------------------ jobs SQL Agent runs itself

REFCOUNT = "MessageBox_Message_ManageRefCountLog_BizTalkMsgBoxDb"
CLEANUP = "MessageBox_Message_Cleanup_BizTalkMsgBoxDb"


def wait_for(check: Callable[[], Any], timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = check()
        if got:
            return got
        time.sleep(0.02)
    raise AssertionError(f"not within {timeout}s")


def test_manage_refcountlog_runs_continuously_and_starts_message_cleanup(lab_sql):
    _, sql = lab_sql()
    assert jobs(sql)[REFCOUNT]["running"] == 1
    cleanup = wait_for(lambda: (lambda j: j if j["last_instance_id"] else None)(jobs(sql)[CLEANUP]))
    assert cleanup["enabled"] == 0  # neither enabled nor scheduled: started by ManageRefCountLog
    assert "invoked by User NT SERVICE\\SQLSERVERAGENT" in cleanup["last_message"]
    assert jobs(sql)[REFCOUNT]["running"] == 1


def test_disabling_a_running_job_does_not_stop_it(lab_sql):
    engine, sql = lab_sql()
    sql.execute(tsql.UPDATE_JOB, (REFCOUNT, 0), database="msdb")
    engine.clock.sleep(3 * 10)  # three of its 10-second rounds
    j = jobs(sql)[REFCOUNT]
    assert j["enabled"] == 0 and j["running"] == 1


def test_sp_stop_job_stops_a_run_which_ends_canceled(lab_sql):
    _, sql = lab_sql()
    sql.execute(tsql.UPDATE_JOB, (REFCOUNT, 0), database="msdb")
    before = jobs(sql)[REFCOUNT]["last_instance_id"]  # read before the stop: the run may end at once after it
    res = sql.execute(tsql.STOP_JOB, (REFCOUNT,), database="msdb")
    assert any(m.endswith(f"Job '{REFCOUNT}' stopped successfully.") for m in res.messages)
    j = wait_finished(sql, REFCOUNT, before)
    assert j["last_run_status"] == 3
    assert j["last_message"].startswith(f"The job was stopped prior to completion by User {USER}.")


def test_stopping_a_job_that_is_not_running_is_22022(lab_sql):
    _, sql = lab_sql()
    with pytest.raises(SqlError) as err:
        sql.execute(tsql.STOP_JOB, (MONITOR_JOB,), database="msdb")
    assert err.value.number == 22022
    assert f"Request to stop job {MONITOR_JOB} (from User {USER}) refused because the job is not currently running." \
        in str(err.value)


def test_enabled_manage_refcountlog_is_restarted_by_its_schedule(lab_sql):
    _, sql = lab_sql()
    before = jobs(sql)[REFCOUNT]["last_instance_id"]
    sql.execute(tsql.STOP_JOB, (REFCOUNT,), database="msdb")
    wait_finished(sql, REFCOUNT, before)
    assert wait_for(lambda: jobs(sql)[REFCOUNT]["running"] == 1)


def test_jobs_stopped_and_idle_after_disabling(lab_sql):
    _, sql = lab_sql()
    names = list(scenario_sql()["jobs"])
    for n in names:
        sql.execute(tsql.UPDATE_JOB, (n, 0), database="msdb")
    done = sqlagent.ensure_jobs_idle(sql, names, 20, fast_poller(), wait_for=[BACKUP_JOB])
    assert REFCOUNT in done["stopped"]
    time.sleep(0.3)  # longer than ManageRefCountLog's rounds and its schedule: nothing starts again
    assert not any(j["running"] for j in jobs(sql).values())


def test_backup_run_from_its_schedule_is_waited_for_not_stopped(lab_sql):
    engine, sql = lab_sql()
    sql.execute(tsql.NOW, database="msdb")  # connected first: a TLS login lasts estate seconds at speed 200
    engine.run_on_schedule(BACKUP_JOB)
    done = sqlagent.ensure_jobs_idle(sql, [BACKUP_JOB, MONITOR_JOB], 20, fast_poller(), wait_for=[BACKUP_JOB])
    assert done["waited_for"] == [BACKUP_JOB] and done["stopped"] == []
    last = jobs(sql)[BACKUP_JOB]
    assert last["last_run_status"] == 1 and "invoked by Schedule" in last["last_message"]


def test_forced_backup_waits_for_a_scheduled_run_instead_of_colliding(lab_sql):
    engine, sql = lab_sql()
    sql.execute(tsql.NOW, database="msdb")  # connected first: a TLS login lasts estate seconds at speed 200
    engine.run_on_schedule(BACKUP_JOB)
    done = backup.ensure_full_backup(sql, BACKUP_JOB, REQUIRED, 20, fast_poller())
    assert done.changed is True and done.evidence["outcome"] == "Succeeded"
    assert "invoked by User" in jobs(sql)[BACKUP_JOB]["last_message"]  # our run, after the schedule's


def test_sql_agent_stopped_runs_no_job_and_refuses_to_start_one(lab_sql):
    _, sql = lab_sql(agent_running=False)
    assert sqlagent.agent_status(sql) == "Stopped"
    assert not any(j["running"] for j in jobs(sql).values())
    for statement in (tsql.START_JOB, tsql.STOP_JOB):
        with pytest.raises(SqlError) as err:
            sql.execute(statement, (BACKUP_JOB,), database="msdb")
        assert err.value.number == 22022
        assert "SQLServerAgent is not currently running so it cannot be notified of this action." in str(err.value)


def test_sql_agent_runs_by_default(lab_sql):
    _, sql = lab_sql()
    assert sqlagent.agent_status(sql) == "Running"


def test_a_denied_procedure_is_error_229_with_sql_servers_text(lab_sql):
    _, sql = lab_sql(denied=["msdb.dbo.sp_update_job"])
    with pytest.raises(SqlPermissionDenied) as err:
        sql.execute(tsql.UPDATE_JOB, ("MessageBox_DeadProcesses_Cleanup_BizTalkMsgBoxDb", 0), database="msdb")
    assert err.value.number == 229
    assert ("The EXECUTE permission was denied on the object 'sp_update_job', database 'msdb', schema 'dbo'."
            in str(err.value))
    assert "GRANT EXECUTE ON msdb.dbo.sp_update_job TO [entsso]" in str(err.value)


def test_a_denied_table_is_error_229_on_select(lab_sql):
    _, sql = lab_sql(denied=["SSODB.dbo.SSOX_GlobalInfo"])
    with pytest.raises(SqlPermissionDenied) as err:
        sql.execute(tsql.SECRET_SERVER)
    assert "The SELECT permission was denied on the object 'SSOX_GlobalInfo', database 'SSODB', schema 'dbo'." \
        in str(err.value)


def test_has_perms_by_name_answers_0_for_a_denied_object_and_null_for_an_absent_one(lab_sql):
    _, sql = lab_sql(denied=["msdb.dbo.sp_update_job"])
    answers = {(r["permission"], r["object_name"]): r["granted"] for r in sql.execute(tsql.GRANTS).rows}
    assert answers[("EXECUTE", "msdb.dbo.sp_update_job")] == 0
    assert answers[("EXECUTE", "msdb.dbo.sp_start_job")] == 1
    assert answers[("SELECT", "BizTalkMgmtDb.dbo.adm_ForceFullBackup")] is None  # 2010 schema: no such table
    assert [str(g) for g in permissions.missing(permissions.grants(sql))] == ["EXECUTE on msdb.dbo.sp_update_job"]


def test_the_gates_sso_server_reads_are_among_the_grants_asked(lab_sql):
    # the gate reads SSOX_Servers (SSO servers sharing SSODB) and adm_Group (the group's SSO server): a login
    # without them is named with its GRANT before anything changes, not found by a 229 in the gate's reads
    _, sql = lab_sql(denied=["SSODB.dbo.SSOX_Servers", "BizTalkMgmtDb.dbo.adm_Group"])
    assert [str(g) for g in permissions.missing(permissions.grants(sql))] == [
        "SELECT on BizTalkMgmtDb.dbo.adm_Group", "SELECT on SSODB.dbo.SSOX_Servers"]
    with pytest.raises(SqlPermissionDenied):
        sso.registered_servers(sql)


def test_a_denied_name_the_lab_does_not_model_is_refused(make_engine):
    with pytest.raises(ValueError, match="sql.denied: msdb.dbo.sp_nope is not an object the lab models"):
        make_engine(denied=["msdb.dbo.sp_nope"])


def _estate_lock(ep: SqlEndpoint) -> EstateLock:
    return EstateLock(client(ep).settings, PASSWORD, "SSOCLUSTER")


def test_estate_lock_verifies_while_its_session_holds_it(make_engine, serve):
    lock = _estate_lock(serve(make_engine()))
    lock.acquire()
    try:
        lock.verify()
        assert lock.lost() is None
    finally:
        lock.release()


def test_estate_lock_lost_with_its_session_is_named_and_never_retaken_silently(make_engine, serve):
    engine = make_engine()
    lock = _estate_lock(serve(engine))
    lock.acquire()
    engine.set_unavailable(True)  # the network drops: SQL Server ends the session, and the lock with it
    time.sleep(0.2)
    engine.set_unavailable(False)
    with pytest.raises(EstateLockLost) as err:
        lock.verify()
    assert "the estate lock 'entsso-upgrade:SSOCLUSTER' on SQL Server SQL1 is lost: its session ended" in str(err.value)
    assert "sys.dm_tran_locks" in str(err.value)
    with pytest.raises(EstateLockLost):  # still lost: no new session quietly took over
        lock.verify()
    assert engine.dump()["app_locks"] == []
    lock.release()


def test_estate_lock_whose_session_was_ended_reports_nolock(make_engine, serve):
    engine = make_engine()
    lock = _estate_lock(serve(engine))
    lock.acquire()
    with engine._lock:
        engine._applocks.clear()  # a DBA's KILL would end the session; here only the lock goes
    with pytest.raises(EstateLockLost, match="no longer holds it \\(APPLOCK_MODE NoLock\\)"):
        lock.verify()
    lock.release()


def test_lock_connection_string_disables_the_drivers_reconnect():
    lock = EstateLock(SqlSettings(server="SQL01"), None, "SSOCLUSTER")
    assert "ConnectRetryCount=0" in lock.sql.settings.connection_string("SSODB")


def test_ssodb_lists_the_sso_servers_registered_within_ten_days(make_engine):
    from entsso.remote import tsql

    e = make_engine(utc_offset_minutes=-300)  # the expiry is SQL Server's local time, as GETDATE() is
    e.register_sso_servers(["NODE1", "SSOCLUSTER", "HIS1.contoso.local"])
    names = [r[0] for r in e.execute(tsql.SSO_SERVERS, database="SSODB").sets[0].rows]
    assert names == ["his1.contoso.local", "node1", "ssocluster"]
    e.register_sso_servers(["BTSOLD"], days_ago=10.01)  # a server gone for over ten days: expired
    assert "btsold" not in [r[0] for r in e.execute(tsql.SSO_SERVERS, database="SSODB").sets[0].rows]


def test_the_adapter_handlers_come_from_the_management_database_and_their_grants_are_asked(lab_sql):
    # phase 6 lists the handlers over ODBC (no BizTalk WMI on a host: that would be a second hop); a login
    # that may not read them is named by the gate with its GRANT, before anything changes
    engine, sql = lab_sql()
    engine.set_adapter_handlers([("send", "FILE", "SendHost", "5D0B6E1A-0C2B-4B7E-9F7A-1D2E3F405060"),
                                 ("receive", "WCF-SQL", "ReceiveHost", "0A0B0C0D-1111-2222-3333-444455556666")])
    assert [c.__dict__ for c in biztalk.handler_configs(sql)] == [
        {"kind": "receive", "adapter": "WCF-SQL", "host_name": "ReceiveHost",
         "config_id": "{0A0B0C0D-1111-2222-3333-444455556666}"},
        {"kind": "send", "adapter": "FILE", "host_name": "SendHost", "config_id": "{5D0B6E1A-0C2B-4B7E-9F7A-1D2E3F405060}"}]
    _, denied = lab_sql(denied=["BizTalkMgmtDb.dbo.adm_SendHandler"])
    assert [g.fix("entsso") for g in permissions.missing(permissions.grants(denied))] == [
        "GRANT SELECT ON BizTalkMgmtDb.dbo.adm_SendHandler TO [entsso]"]
    with pytest.raises(SqlPermissionDenied, match="adm_SendHandler"):
        biztalk.handler_configs(denied)


# --- who may change a job: msdb's sp_update_job refuses a job another login owns with 14525 unless the caller
# is sysadmin, or is in SQLAgentOperatorRole and changes only @enabled (msdb's sp_update_job source)
@pytest.mark.parametrize("roles, allowed", [
    (["sysadmin"], True), (["SQLAgentOperatorRole"], True), (["SQLAgentReaderRole"], False),
    (["SQLAgentUserRole"], False), ([], False)])
def test_sp_update_job_on_a_job_another_login_owns(lab_sql, roles, allowed):
    engine, sql = lab_sql(login_roles=roles, job_owner="sa")
    if allowed:
        sql.execute(tsql.UPDATE_JOB, (MONITOR_JOB, 0), database="msdb")
        assert jobs(sql)[MONITOR_JOB]["enabled"] == 0
    else:
        with pytest.raises(SqlError) as err:
            sql.execute(tsql.UPDATE_JOB, (MONITOR_JOB, 0), database="msdb")
        assert err.value.number == 14525
        assert "Only members of sysadmin role are allowed to update or delete jobs owned by a different login" \
            in str(err.value)
        assert jobs(sql)[MONITOR_JOB]["enabled"] == 1  # nothing changed


def test_the_owner_of_a_job_may_change_it_without_a_role(lab_sql):
    _, sql = lab_sql(login_roles=[], job_owner=USER)
    sql.execute(tsql.UPDATE_JOB, (MONITOR_JOB, 0), database="msdb")
    assert jobs(sql)[MONITOR_JOB]["enabled"] == 0


def test_the_operator_role_may_change_only_enabled(make_engine):
    engine = make_engine(login_roles=["SQLAgentOperatorRole"], job_owner="sa")
    engine.execute(f"EXEC msdb.dbo.sp_update_job @job_name = N'{MONITOR_JOB}', @enabled = 0", database="msdb",
                   login=USER)
    with pytest.raises(EngineError) as err:
        engine.execute(f"EXEC msdb.dbo.sp_update_job @job_name = N'{MONITOR_JOB}', @description = N'x'",
                       database="msdb", login=USER)
    assert err.value.number == 14525


@pytest.mark.parametrize("roles, sysadmin, operator", [
    (["sysadmin"], 1, 1), (["SQLAgentOperatorRole"], 0, 1), (["SQLAgentReaderRole"], 0, 0), ([], 0, 0)])
def test_role_membership_reads_as_sql_server_answers_it(lab_sql, roles, sysadmin, operator):
    _, sql = lab_sql(login_roles=roles)
    row = sql.execute("SELECT IS_SRVROLEMEMBER(N'sysadmin') AS sysadmin, "
                      "IS_ROLEMEMBER(N'SQLAgentOperatorRole') AS operator, SUSER_SNAME() AS login",
                      database="msdb").rows[0]
    assert (row["sysadmin"], row["operator"], row["login"]) == (sysadmin, operator, USER)
    elsewhere = sql.execute("SELECT IS_ROLEMEMBER(N'SQLAgentOperatorRole') AS operator", database="master").rows[0]
    assert elsewhere["operator"] is None  # SQL Agent's roles are msdb's
