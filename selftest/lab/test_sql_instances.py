"""Names and instances through the real client stack: an estate whose databases are SSODB_PRD and
BizTalkMgmtDb_PRD on three SQL Server instances (SQL1: the management database, DTA and the job that
backs them up; SQL2\\SSO: SSODB; SQL3: the MessageBox and its jobs), each a lab engine behind its own TDS
endpoint, reached by the suite's SqlServer (pyodbc, FreeTDS, TLS validated against the lab CA). What is
asserted is what each engine received and answered: every statement carries the inventory's names and
runs on the instance that holds its database, jobs are read and changed in their own instance's msdb,
grants are asked where they apply, and the Backup BizTalk Server job's view is checked against the
placement. The pure parts (rendering, job placement by name, the inventory's checks) are in
selftest/unit/test_sql_instances.py."""
from __future__ import annotations

from collections import deque
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Iterator

import pytest
import yaml

from entsso.domain import backup, permissions, sqlagent, sso
from entsso.remote import tsql
from entsso.inventory import load_inventory
from entsso.lab.clock import Clock
from entsso.lab.inventory import lab_inventory
from entsso.lab.pki import LabCA
from entsso.lab.sqlengine import SqlEngine
from entsso.lab.tds import TdsEndpoint
from entsso.remote.sql import SqlLoginFailed, SqlServer, SqlSettings, SqlUnknownObject
from entsso.remote.sqlestate import DatabaseNames, SqlEstate, SqlInstance, misplaced, server_name, single
from selftest.lab.test_sqlengine import PASSWORD, USER

pytest.importorskip("pyodbc")

NAMES = {"ssodb": "SSODB_PRD", "management": "BizTalkMgmtDb_PRD"}
CUSTOM = DatabaseNames(ssodb="SSODB_PRD", management="BizTalkMgmtDb_PRD")
BACKUP = "Backup BizTalk Server (BizTalkMgmtDb)"
DTA = "DTA Purge and Archive (BizTalkDTADb)"
UPDATE_STATS = "MessageBox_UpdateStats_BizTalkMsgBoxDb"
PURGE = "PurgeSubscriptionsJob_BizTalkMsgBoxDb"
# the login lacks sp_stop_job everywhere, and SSOX_Servers where SSODB is (HAS_PERMS_BY_NAME answers 0)
DENIED = ["msdb.dbo.sp_stop_job", "SSODB_PRD.dbo.SSOX_Servers"]
# label -> (server, instance, the engine's scenario, hosted databases (None: the first's), remote databases)
LAYOUT: dict[str, tuple[str, str | None, dict[str, Any], list[str] | None, dict[str, str]]] = {
    "SQL1": ("SQL1", None, {"jobs": {BACKUP: True, DTA: True}}, None,
             {"SSODB_PRD": "SQL2\\SSO", "BizTalkMsgBoxDb": "SQL3"}),
    "SQL2\\SSO": ("SQL2", "SSO", {}, ["SSODB_PRD"], {}),
    "SQL3": ("SQL3", None, {"jobs": {UPDATE_STATS: True, PURGE: True}}, ["BizTalkMsgBoxDb"], {}),
}


@pytest.fixture(scope="module")
def estate_sql() -> Iterator[SimpleNamespace]:
    """Three engines, each behind its own endpoint (one CA and certificate for 127.0.0.1)."""
    ca = LabCA("entsso lab CA")
    cert = ca.issue("SQL1", addresses=["127.0.0.1"])
    clock = Clock(speed=200)
    engines: dict[str, SqlEngine] = {}
    endpoints: dict[str, TdsEndpoint] = {}
    for label, (server, instance, extra, hosted, remote) in LAYOUT.items():
        sc = {"server": server, "instance": instance, "database_names": NAMES, "agent_running": False,
              "denied": DENIED if hosted is None or "SSODB_PRD" in hosted else DENIED[:1], **extra}
        engines[label] = SqlEngine(sc, "SSOCLUSTER", clock, hosted=hosted, remote=remote)
        endpoints[label] = TdsEndpoint(engines[label], "127.0.0.1", 0, USER, PASSWORD, certificate=cert)
        endpoints[label].start()
    yield SimpleNamespace(ca=ca, engines=engines, endpoints=endpoints)
    for label in LAYOUT:
        endpoints[label].stop()
        engines[label].close()


def server(lab: SimpleNamespace, label: str) -> SqlServer:
    """The suite's SqlServer as the lab's inventory sets it up: pyodbc, FreeTDS, TLS against the lab CA."""
    host, instance = LAYOUT[label][0], LAYOUT[label][1]
    return SqlServer(SqlSettings(server=host, instance=instance, driver="FreeTDS", ca_file=str(lab.ca.ca_path),
                                 lab_address="127.0.0.1", lab_port=lab.endpoints[label].port, auth="sql",
                                 username=USER, login_timeout=5), PASSWORD)


@pytest.fixture
def estate(estate_sql: SimpleNamespace) -> Iterator[SqlEstate]:
    """The estate as an inventory with sql.databases and sql.instances builds it (entsso.change.run)."""
    holds = {"SQL1": ["BizTalkMgmtDb_PRD"], "SQL2\\SSO": ["SSODB_PRD"], "SQL3": ["BizTalkMsgBoxDb"]}
    e = SqlEstate(CUSTOM, [SqlInstance(label, server(estate_sql, label), CUSTOM, holds[label]) for label in LAYOUT])
    for engine in estate_sql.engines.values():
        engine.received.clear()
    yield e
    e.close()


def received(lab: SimpleNamespace) -> dict[str, list[tuple[str, str]]]:
    """Each engine's batches since the test began: (database, statement)."""
    return {label: list(engine.received) for label, engine in lab.engines.items()}


def test_each_statement_runs_on_the_instance_of_its_database_with_its_name(estate_sql, estate):
    assert sso.secret_server(estate) == "SSOCLUSTER"  # served by SQL2\SSO's SSODB_PRD
    assert backup.last_full_set(estate.management) == 1  # SQL1's seeded full set
    assert estate.execute(tsql.NOW).rows[0]["now_utc"] is not None
    got = received(estate_sql)
    assert [(db, sql) for db, sql in got["SQL2\\SSO"]] == [("SSODB_PRD", tsql.render(tsql.SECRET_SERVER, CUSTOM))]
    assert [db for db, _ in got["SQL1"]] == ["BizTalkMgmtDb_PRD", "master"]
    assert "FROM BizTalkMgmtDb_PRD.dbo.adm_BackupHistory" in got["SQL1"][0][1]
    assert got["SQL1"][1][1] == tsql.NOW
    assert got["SQL3"] == []


def test_the_default_names_are_not_the_estates(estate_sql):
    """An estate without sql.databases against these instances: SQL Server's answers, as the run reports them."""
    sql2 = server(estate_sql, "SQL2\\SSO")
    estate_sql.engines["SQL2\\SSO"].received.clear()
    try:
        # DATABASE=SSODB at login: 4060, then 18456 (FreeTDS shows the 18456)
        with pytest.raises(SqlLoginFailed, match=r"Login failed for user 'entsso'\. \(18456\)"):
            sso.secret_server(single(sql2))
        assert estate_sql.engines["SQL2\\SSO"].received == deque()  # refused at login: no batch ran
        with pytest.raises(SqlUnknownObject, match=r"Invalid object name 'SSODB\.dbo\.SSOX_GlobalInfo'"):
            sql2.execute(tsql.SECRET_SERVER)  # a three-part name from master: 208
        assert sql2.execute(tsql.render(tsql.SECRET_SERVER, CUSTOM)).scalar() == "SSOCLUSTER"
    finally:
        sql2.close()


def test_job_control_reads_and_acts_in_each_instances_own_msdb(estate_sql, estate):
    jobs = [UPDATE_STATS, BACKUP, DTA]
    found = sqlagent.jobs_everywhere(estate, jobs)
    assert {n: (j.exists, j.enabled) for n, j in found.items()} == {n: (True, True) for n in jobs}
    got = received(estate_sql)
    assert {label: {db for db, _ in batches} for label, batches in got.items()} == {
        "SQL1": {"msdb"}, "SQL2\\SSO": set(), "SQL3": {"msdb"}}
    try:
        for job in jobs:
            assert sqlagent.ensure_job_enabled(estate.job_instance(job), job, False).changed
        dumps = {label: e.dump()["jobs"] for label, e in estate_sql.engines.items()}
        assert {n: j["enabled"] for n, j in dumps["SQL3"].items()} == {UPDATE_STATS: False, PURGE: True}
        assert {n: j["enabled"] for n, j in dumps["SQL1"].items()} == {BACKUP: False, DTA: False}
        assert dumps["SQL2\\SSO"] == {}
        updates = {label: e.counters["procedures"].get("sp_update_job", 0) for label, e in estate_sql.engines.items()}
        assert updates["SQL1"] >= 2 and updates["SQL3"] >= 1 and updates["SQL2\\SSO"] == 0
    finally:
        for job in jobs:
            sqlagent.ensure_job_enabled(estate.job_instance(job), job, True)


def test_grants_are_asked_on_each_instance_for_its_own_databases(estate_sql, estate):
    on = {inst.label: {g.object_name: g.granted for g in permissions.grants(inst, inst.holds)}
          for inst in estate.instances}
    assert {label: {o.split(".", 1)[0] for o in objs} for label, objs in on.items()} == {
        "SQL1": {"msdb", "BizTalkMgmtDb_PRD"}, "SQL2\\SSO": {"msdb", "SSODB_PRD"}, "SQL3": {"msdb"}}
    # each engine answered for its own databases under the estate's names
    assert on["SQL2\\SSO"]["SSODB_PRD.dbo.SSOX_GlobalInfo"] is True
    assert on["SQL1"]["BizTalkMgmtDb_PRD.dbo.adm_BackupHistory"] is True
    assert on["SQL1"]["BizTalkMgmtDb_PRD.dbo.adm_ForceFullBackup"] is None  # BizTalk 2010+: the twin is absent
    assert permissions.missing([permissions.Grant("SELECT", "BizTalkMgmtDb_PRD.dbo.adm_ForceFullBackup", None)]) == []
    assert all(db == "master" for batches in received(estate_sql).values() for db, _ in batches)


def test_msdb_grants_are_asked_only_where_the_run_controls_jobs(estate):
    jobs = [BACKUP]  # runs on SQL1; SQL2\SSO and SQL3 run none of the run's jobs

    def lacking(inst: SqlInstance) -> list[str]:
        return [g.object_name for g in permissions.missing(permissions.grants(inst, estate.asks_grants(inst, jobs)))]
    assert {inst.label: lacking(inst) for inst in estate.instances} == {
        "SQL1": ["msdb.dbo.sp_stop_job"], "SQL2\\SSO": ["SSODB_PRD.dbo.SSOX_Servers"], "SQL3": []}
    jobs.append(UPDATE_STATS)  # a MessageBox job: SQL3's msdb grants now count
    assert lacking(estate.instances[2]) == ["msdb.dbo.sp_stop_job"]


def test_the_backup_jobs_view_is_checked_against_the_inventorys_placement(estate_sql, estate):
    view = backup.backup_state(estate.management).databases  # SQL1's admv_BackupDatabases
    assert {(d.database, d.server) for d in view} == {
        ("BizTalkMgmtDb_PRD", "SQL1"), ("BizTalkDTADb", "SQL1"), ("SSODB_PRD", "SQL2\\SSO"),
        ("BizTalkMsgBoxDb", "SQL3")}
    names = {inst.label: server_name(inst) for inst in estate.instances}
    assert names == {"SQL1": "SQL1", "SQL2\\SSO": "SQL2\\SSO", "SQL3": "SQL3"}
    assert misplaced(estate, view, names) == []
    # an inventory that puts SSODB on SQL1 (no sql.instances): the view says otherwise
    one = single(estate.main.server, CUSTOM)
    assert [str(m) for m in misplaced(one, view, {"SQL1": server_name(one.main)})] == [
        "SSODB_PRD: the Backup BizTalk Server job backs it up on SQL2\\SSO, the inventory puts it on SQL1 (SQL1)"]


def test_the_lab_inventory_names_the_databases_as_the_scenario_does(tmp_path: Path, monkeypatch):
    from selftest.unit.test_inventory import ENV, fake_lab, write

    for name in ENV:  # the variables the inventory names, as the launcher exports them
        monkeypatch.setenv(name, "x")

    lab = fake_lab()
    lab.scenario["sql"]["database_names"] = dict(NAMES)
    lab.scenario["sql"]["second_instance"] = {"server": "SQL2", "instance": "SSO"}
    lab.sql_addresses, lab.sql_endpoints = ["127.0.0.6", "127.0.0.7"], [None, SimpleNamespace(port=41434)]
    doc = lab_inventory(lab)
    assert yaml.safe_load(yaml.safe_dump(doc))["sql"]["databases"] == NAMES
    inv = load_inventory(write(tmp_path, doc, "lab-inventory.yml"))
    assert (inv.sql.databases.ssodb, inv.sql.databases.management, inv.sql.databases.msdb) == (
        "SSODB_PRD", "BizTalkMgmtDb_PRD", "msdb")
    assert [(i.label(), i.databases) for i in inv.sql.instances] == [("SQL2\\SSO", ["SSODB_PRD"])]
    # a scenario that names them by their default names: the inventory names them as the estate does
    lab.scenario["sql"]["second_instance"]["databases"] = ["SSODB", "BizTalkMsgBoxDb"]
    assert lab_inventory(lab)["sql"]["instances"][0]["databases"] == ["SSODB_PRD", "BizTalkMsgBoxDb"]


@pytest.mark.parametrize("value, words", [
    ({"msdb": "msdb_PRD"}, "unknown key(s) msdb; the lab knows management, ssodb"),
    ({"ssodb": "SSODB-PRD"}, "sql.database_names.ssodb: 'SSODB-PRD' is not a database name"),
    ({"ssodb": "BizTalkMgmtDb"}, "gives two databases one name"),
    ({"ssodb": "X", "management": "x"}, "gives two databases one name"),
])
def test_a_name_the_lab_cannot_serve_is_refused_naming_the_key(value: Any, words: str):
    from entsso.lab.server import ScenarioError, check_scenario

    with pytest.raises(ValueError) as refused:
        SqlEngine({"database_names": value, "agent_running": False}, "SSOCLUSTER", Clock(speed=200))
    assert words in str(refused.value)
    check_scenario({"sql": {"database_names": NAMES}})
    if "msdb" in value:  # the scenario's schema refuses it before any engine starts
        with pytest.raises(ScenarioError, match="msdb"):
            check_scenario({"sql": {"database_names": value}})
