"""Every statement of entsso/remote/tsql.py against the objects the lab declares for msdb, BizTalkMgmtDb, SSODB
and master (the lab being the witness of the real schemas, each object cited in docs/domain-notes.md):
each table a statement reads exists there with the columns it names, under a three-part name; each
procedure is one the lab models, called with parameters its Microsoft/BizTalk page documents."""
from __future__ import annotations

import re
from pathlib import Path
import pytest
import sqlglot
from sqlglot import exp

from entsso.remote import tsql
from entsso.lab.clock import Clock
from entsso.lab.sqlengine import _EXEC_RE, _split_batch, SqlEngine

ROOT = Path(__file__).resolve().parents[2]
STATEMENTS = {n: getattr(tsql, n) for n in dir(tsql) if n.isupper() and isinstance(getattr(tsql, n), str)}
LAB_ONLY = {"lab_groupdatabases"}  # the lab's own source of the group's databases (docs/lab.md), read by no statement

# The parameters each procedure's page documents (Microsoft Learn "sp_update_job", "sp_start_job",
# "sp_stop_job", "sp_getapplock", "sp_releaseapplock"; BizTalk's sp_ForceFullBackup takes none).
DOCUMENTED_PARAMETERS = {
    "msdb.dbo.sp_update_job": {"@job_id", "@job_name", "@new_name", "@enabled", "@description", "@start_step_id",
                               "@category_name", "@owner_login_name", "@notify_level_eventlog",
                               "@notify_level_email", "@notify_level_netsend", "@notify_level_page",
                               "@notify_email_operator_name", "@notify_netsend_operator_name",
                               "@notify_page_operator_name", "@delete_level", "@automatic_post"},
    "msdb.dbo.sp_start_job": {"@job_name", "@job_id", "@error_flag", "@server_name", "@step_name", "@output_flag"},
    "msdb.dbo.sp_stop_job": {"@job_name", "@job_id", "@originating_server", "@server_name"},
    "BizTalkMgmtDb.dbo.sp_ForceFullBackup": set(),
    "sp_getapplock": {"@Resource", "@LockMode", "@LockOwner", "@LockTimeout", "@DbPrincipal"},
    "sp_releaseapplock": {"@Resource", "@LockOwner", "@DbPrincipal"},
}
# run in the session's current database by design (the estate lock lives in SSODB)
CURRENT_DATABASE_PROCEDURES = {"sp_getapplock", "sp_releaseapplock"}


def declared(schema: str) -> dict[str, dict[str, set[str]]]:
    """database (lower) -> object (lower) -> its columns (lower), as the lab's engine declares them."""
    engine = SqlEngine({"biztalk_schema": schema, "agent_running": False}, "SSOCLUSTER", Clock(speed=200))
    try:
        out: dict[str, dict[str, set[str]]] = {}
        for database in ("master", "msdb", "BizTalkMgmtDb", "SSODB"):
            objects = [r[0] for r in engine._db.execute(
                f'SELECT name FROM "{database}".sqlite_master WHERE type IN (\'table\', \'view\')')
                if not r[0].startswith("sqlite_")]
            out[database.lower()] = {
                o.lower(): {c[1].lower() for c in engine._db.execute(f'PRAGMA "{database}".table_info("{o}")')}
                for o in objects}
        return out
    finally:
        engine.close()


SCHEMAS = {"2010": declared("2010"), "2006": declared("2006")}


def selects(sql: str) -> list[exp.Expression]:
    return [sqlglot.parse_one(s, read="tsql") for s in _split_batch(sql)
            if s.split(None, 1)[0].upper() in ("SELECT", "WITH")]


def execs(sql: str) -> list[tuple[str, set[str]]]:
    out = []
    for s in _split_batch(sql):
        m = _EXEC_RE.match(s)
        if m:
            out.append((m.group(2), {p for p in re.findall(r"(@\w+)\s*=", m.group(3))}))
    return out


def schema_of(name: str) -> dict[str, dict[str, set[str]]]:
    return SCHEMAS["2006"] if name == "FORCE_FULL_LEGACY" else SCHEMAS["2010"]


@pytest.mark.parametrize("name", sorted(n for n in STATEMENTS if selects(STATEMENTS[n])))
def test_statement_reads_only_declared_tables_and_columns(name):
    schema = schema_of(name)
    for tree in selects(STATEMENTS[name]):
        tables: dict[str, set[str]] = {}
        for t in tree.find_all(exp.Table):
            assert t.catalog, f"{name}: {t.sql('tsql')} is not a three-part name"
            database = schema.get(t.catalog.lower())
            assert database is not None, f"{name}: database {t.catalog} is not one the lab declares"
            columns = database.get(t.name.lower())
            assert columns is not None, f"{name}: {t.catalog}.{t.db}.{t.name} is not declared by the lab"
            tables[(t.alias or t.name).lower()] = columns
        for c in tree.find_all(exp.Column):
            if c.table:
                assert c.name.lower() in tables[c.table.lower()], f"{name}: column {c.table}.{c.name} not declared"
            else:
                assert any(c.name.lower() in cols for cols in tables.values()), f"{name}: column {c.name} not declared"


@pytest.mark.parametrize("name", sorted(n for n in STATEMENTS if execs(STATEMENTS[n])))
def test_procedure_is_modelled_and_called_with_documented_parameters(name):
    for procedure, params in execs(STATEMENTS[name]):
        assert procedure in DOCUMENTED_PARAMETERS, f"{name}: {procedure} is not a procedure the lab models"
        assert "." in procedure or procedure in CURRENT_DATABASE_PROCEDURES, f"{name}: {procedure} not three-part"
        undocumented = {p.lower() for p in params} - {p.lower() for p in DOCUMENTED_PARAMETERS[procedure]}
        assert not undocumented, f"{name}: {procedure} has no parameter {sorted(undocumented)}"


def test_every_statement_is_checked_here():
    checked = {n for n, sql in STATEMENTS.items() if selects(sql) or execs(sql)}
    assert checked == set(STATEMENTS)


def test_the_two_biztalk_schemas_differ_only_in_the_force_full_table():
    a, b = SCHEMAS["2010"]["biztalkmgmtdb"], SCHEMAS["2006"]["biztalkmgmtdb"]
    assert set(a) - set(b) == {"adm_backupsettings"} and set(b) - set(a) == {"adm_forcefullbackup"}
    assert a["adm_backupsettings"] == {"usecompression", "forcefull"}


def domain_notes_objects() -> dict[str, str]:
    """object name (lower) -> its source, from docs/domain-notes.md's table of the objects the lab declares."""
    text = (ROOT / "docs" / "domain-notes.md").read_text()
    section = text.split("## Objects the lab declares", 1)
    assert len(section) == 2, "docs/domain-notes.md has no 'Objects the lab declares' section"
    out: dict[str, str] = {}
    for line in section[1].splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")] if line.startswith("|") else []
        if len(cells) >= 3 and cells[0].startswith("`"):
            for name in re.findall(r"`([\w.]+)`", cells[0]):
                out[name.split(".")[-1].lower()] = cells[2]
    return out


@pytest.mark.parametrize("schema", ["2010", "2006"])
def test_domain_notes_cite_a_source_for_every_object_the_lab_declares(schema):
    cited = domain_notes_objects()
    for database, objects in SCHEMAS[schema].items():
        for obj in objects:
            if obj in LAB_ONLY:
                continue
            assert cited.get(obj), f"docs/domain-notes.md cites no source for {database}.{obj}"


def test_domain_notes_cite_every_procedure_the_statements_call():
    cited = domain_notes_objects()
    for procedure in DOCUMENTED_PARAMETERS:
        assert cited.get(procedure.split(".")[-1].lower()), f"no source cited for {procedure}"
