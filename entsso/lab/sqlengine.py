"""The lab's SQL Server: msdb's SQL Agent tables, BizTalkMgmtDb's backup tables and SSODB's global info,
kept in SQLite, queried in T-SQL.

SELECTs are translated from T-SQL to SQLite by sqlglot (three-part names become attached-database names,
TOP n becomes LIMIT, N'' literals plain strings, SYSUTCDATETIME()/GETDATE() read the lab clock); what SQLite
would take and SQL Server refuses (245, 8120, 8145) and IF/@@VERSION/DB_NAME() are in tsqlrules.py. The
stored procedures the suite calls (sp_update_job, sp_start_job, sp_stop_job, sp_ForceFullBackup,
sp_getapplock, sp_releaseapplock) are modelled in Python; a simulated SQL Agent runs jobs on threads in
estate time and writes sysjobactivity/sysjobhistory: those started by hand, an enabled ManageRefCountLog
continuously from the Agent's start (and the Message_Cleanup it starts every 10 s); the Backup BizTalk
Server job writes adm_BackupHistory and msdb's backupset as the real one does. BizTalkMgmtDb keeps the
force-full flag where the scenario's BizTalk version does (sql.biztalk_schema).

Plain INSERT/UPDATE/DELETE and DDL are refused with SQL Server's permission error 229/262: the suite's
login changes the estate only through the procedures, as the BizTalk documentation says to, and the
model's invariants (one activity row per run, flag consumed by the job) stay intact.
`sql.denied` names objects the login has no grant on: reading or executing one is error 229 with SQL
Server's text, and HAS_PERMS_BY_NAME answers 0 for it (1 for the rest, NULL for an absent object).
`sql.database_names` gives SSODB and the management database the estate's names: the engine keeps them
under their modelled names in SQLite and serves them only under the estate's (logins, three-part names,
USE, EXEC, OBJECT_ID, HAS_PERMS_BY_NAME, the backup view and history). `received` keeps the batches the
engine was sent, with their database, for tests that assert where each statement went.

The lab's SQL Server keeps the server's local time, as SQL Server does: `sql.utc_offset_minutes` east
of UTC. SYSUTCDATETIME()/GETUTCDATE() are UTC; GETDATE()/SYSDATETIME(), msdb's job dates, sysjobhistory's
run_date/run_time, backupset's dates (with time_zone, the offset in 15-minute steps) and
adm_BackupHistory.BackupDateTime (the job as with @UseLocalTime = 1) are local. Every datetime is stored
as naive text 'YYYY-MM-DD HH:MM:SS.ffffff' and handed back as a naive datetime (as pyodbc does for
datetime columns).
"""
from __future__ import annotations

import re
import sqlite3
import threading
import time
import uuid
import zlib
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta, UTC
from functools import lru_cache
from typing import Any
from collections.abc import Sequence

import sqlglot
from sqlglot import exp

from entsso.lab import backupjob, tsqlrules
from entsso.lab.backupjob import BACKUP_STEPS, STEP_SUCCEEDED
from entsso.lab.sqlerrors import EngineError

BACKUP_JOB = "Backup BizTalk Server (BizTalkMgmtDb)"
# Where BizTalkMgmtDb keeps the force-full flag (sql.biztalk_schema): BizTalk 2010 and later have
# adm_BackupSettings (UseCompression, ForceFull) and no adm_ForceFullBackup (the BizTalkMgmtDb schema,
# docs/domain-notes.md); older versions had the one-column table adm_ForceFullBackup, whose column no
# public source names: the lab calls it ForceFull (the suite reads that table with SELECT TOP 1 *).
FORCE_FULL_TABLES = {"2010": "adm_BackupSettings", "2006": "adm_ForceFullBackup"}
FORCE_FULL_COLUMN = "ForceFull"
# every key of a scenario's `sql` section (docs/lab.md); any other is refused, never ignored
SCENARIO_KEYS = frozenset({
    "server", "instance", "username", "databases", "backup_path", "jobs", "job_run_sec",
    "backup_sec_per_database", "force_full_backup", "full_backup_done", "biztalk_schema", "utc_offset_minutes",
    "last_full_minutes_ago", "agent_running", "denied", "second_instance", "database_names", "login_roles",
    "job_owner", "failed_jobs", "backup_schedule_minutes",
    # the endpoint's TLS (entsso.lab.server, tds.py) and the written inventory's driver and encryption
    "certificate_name", "certificate_issuer", "tds8", "driver", "encrypt"})
# the step a seeded failed run (sql.failed_jobs) failed at: the lab's name for a BizTalk job's first step
FAILED_STEP_NAME = "Step 1"
# sql.database_names: the names the estate gives SSODB and the management database (the inventory's
# sql.databases keys); the engine keeps each database under its modelled name and serves it under the
# estate's, so a statement naming the default name where the estate renamed it fails as on SQL Server
DATABASE_NAME_KEYS = {"ssodb": "SSODB", "management": "BizTalkMgmtDb"}
_DATABASE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
RECEIVED_KEPT = 10_000  # SqlEngine.received: the newest batches, for tests
# sql.second_instance: another SQL Server instance of the estate that holds some of the group's databases
# (SSODB, the MessageBox …) and the jobs BizTalk creates for them there (docs/lab.md)
SECOND_INSTANCE_KEYS = frozenset({"server", "instance", "databases"})
# The procedures the lab models, by three-part name (sp_getapplock/sp_releaseapplock run in any database).
JOB_OF_ANOTHER_LOGIN = ("Only members of sysadmin role are allowed to update or delete jobs owned by a different "
                        "login.")  # msdb's message 14525
SERVER_ROLES = frozenset({"sysadmin", "serveradmin", "securityadmin", "processadmin", "setupadmin", "bulkadmin",
                          "diskadmin", "dbcreator", "public"})
AGENT_ROLES = frozenset({"sqlagentuserrole", "sqlagentreaderrole", "sqlagentoperatorrole"})
PROCEDURES = ("msdb.dbo.sp_update_job", "msdb.dbo.sp_start_job", "msdb.dbo.sp_stop_job",
              "BizTalkMgmtDb.dbo.sp_ForceFullBackup")
# BizTalk's jobs that SQL Agent runs on its own: ManageRefCountLog "runs continuously by default" (its
# schedule restarts it within a minute when it is enabled and idle) and starts Message_Cleanup, which is
# neither enabled nor scheduled, about every 10 seconds (Learn, "Monitoring SQL Server Agent Jobs").
CONTINUOUS_PREFIX = "MessageBox_Message_ManageRefCountLog_"
SELF_STARTED_PREFIX = "MessageBox_Message_Cleanup_"
SELF_START_EVERY_SEC = 10
SCHEDULE_EVERY_SEC = 60
STOP_TAKES_SEC = 1  # sp_stop_job: the running step reaches a point where it can stop (a BACKUP finishes first)
AGENT_NOT_RUNNING = "SQLServerAgent is not currently running so it cannot be notified of this action."
MODELLED_DATABASES = ("master", "msdb", "BizTalkMgmtDb", "SSODB")
AGENT_USER = backupjob.AGENT_USER

PREPARED_SET_DELAY_SEC = 30  # estate seconds after the lab's start (see _seed)

_DT_FORMAT = "%Y-%m-%d %H:%M:%S.%f"
_DT_RE = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d{6}")


class StatementCancelled(Exception):
    """The client cancelled the running batch (TDS ATTENTION: a cancel or the driver's query timeout)."""


_WAITFOR = re.compile(r"(?i)WAITFOR\s+DELAY\s+'(\d{1,2}):(\d{2}):(\d{2})(?:\.(\d{1,3}))?'\s*;?\s*")


@dataclass
class ResultSet:
    columns: list[str]
    rows: list[tuple[Any, ...]]


@dataclass
class EngineResult:
    sets: list[ResultSet] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)
    # the return status of the batch's last EXEC (what an RPC's RETURNSTATUS token carries); None without one
    status: int | None = None


def to_sql_text(value: datetime) -> str:
    """A datetime as the lab stores it (naive UTC)."""
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value.strftime(_DT_FORMAT)


def _from_sql(value: Any) -> Any:
    if isinstance(value, str) and len(value) == 26 and _DT_RE.fullmatch(value):
        return datetime.strptime(value, _DT_FORMAT)
    return value


def _param(value: Any) -> Any:
    if isinstance(value, datetime):
        return to_sql_text(value)
    if isinstance(value, bool):
        return int(value)
    return value


# ---------------------------------------------------------------------------------------------- batches


_BLOCK_WORD = re.compile(r"(?i)(BEGIN|CASE|END)\b")


def _split_batch(sql: str) -> list[str]:
    """Statements of a batch, split at semicolons outside quotes, brackets and BEGIN … END blocks."""
    out, buf, i, n, depth = [], [], 0, len(sql), 0
    while i < n:
        c = sql[i]
        if c.isalpha() and (i == 0 or not (sql[i - 1].isalnum() or sql[i - 1] in "_@#")):
            m = _BLOCK_WORD.match(sql, i)
            if m:
                word = m.group(1).upper()
                if word == "BEGIN" and re.match(r"(?i)BEGIN\s+(TRAN|TRANSACTION|DISTRIBUTED)\b", sql[i:]):
                    pass  # BEGIN TRAN opens no block
                else:
                    depth += -1 if word == "END" else 1
                buf.append(m.group(0))
                i = m.end()
                continue
        if c in "'\"[":
            close = "]" if c == "[" else c
            j = i + 1
            while j < n:
                if sql[j] == close:
                    if close != "]" and j + 1 < n and sql[j + 1] == close:  # '' escapes a quote
                        j += 2
                        continue
                    break
                j += 1
            buf.append(sql[i:j + 1])
            i = j + 1
            continue
        if c == "-" and sql.startswith("--", i):
            j = sql.find("\n", i)
            i = n if j < 0 else j
            continue
        if c == ";" and depth <= 0:
            out.append("".join(buf))
            buf = []
        else:
            buf.append(c)
        i += 1
    out.append("".join(buf))
    stmts = []
    for s in (x.strip() for x in out):
        # "SET NOCOUNT ON" followed by a statement without a semicolon between them
        m = re.match(r"(?is)^set\s+nocount\s+(on|off)\s+(\S.*)$", s)
        if m:
            stmts.append(s[: m.start(2)].strip())
            s = m.group(2).strip()
        if s:
            stmts.append(s)
    return stmts


def _scan(sql: str):
    """Yield (kind, text) tokens: 'str' for quoted literals, 'other' for the rest (char by char runs)."""
    i, n, start = 0, len(sql), 0
    while i < n:
        c = sql[i]
        national = (c in "Nn" and i + 1 < n and sql[i + 1] == "'"
                    and (i == 0 or not (sql[i - 1].isalnum() or sql[i - 1] == "_")))
        if c == "'" or national:
            if start < i:
                yield "other", sql[start:i]
            j = i + (2 if c != "'" else 1)
            while j < n:
                if sql[j] == "'":
                    if j + 1 < n and sql[j + 1] == "'":
                        j += 2
                        continue
                    break
                j += 1
            yield "str", sql[i:j + 1]
            i = start = j + 1
            continue
        i += 1
    if start < n:
        yield "other", sql[start:]


def _count_params(sql: str) -> int:
    return sum(t.count("?") for k, t in _scan(sql) if k == "other")


def _literal(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, datetime):
        value = to_sql_text(value)
    return "'" + str(value).replace("'", "''") + "'"


def _unquote(token: str) -> str:
    t = token
    if t[:1] in "Nn" and t[1:2] == "'":
        t = t[1:]
    return t[1:-1].replace("''", "'")


_ARG_RE = re.compile(r"""(?is)\s*(@\w+\s*=\s*)?(N?'(?:[^']|'')*'|\?|-?\d+(?:\.\d+)?|NULL|@\w+|[\w.]+)"""
                     r"""\s*(?:OUTPUT|OUT)?\s*(,|$)""")
_EXEC_RE = re.compile(r"(?is)^exec(?:ute)?\s+(?:(@\w+)\s*=\s*)?([\w.\[\]]+)\s*(.*)$")


def _parse_args(text: str, params: list[Any], variables: dict[str, Any]) -> tuple[dict[str, Any], list[Any]]:
    """EXEC arguments: named (@p = value) and positional; values are ?, literals, NULL, numbers, @vars."""
    named: dict[str, Any] = {}
    positional: list[Any] = []
    matches = list(_ARG_RE.finditer(text))
    if text.strip() and sum(len(m.group(0)) for m in matches) < len(text.rstrip()):
        raise EngineError(102, 1, 15, f"Incorrect syntax near '{text.strip()[:30]}'.")
    for name, raw, _sep in (m.groups() for m in matches):
        raw = raw.strip()
        if raw == "?":
            if not params:
                raise EngineError(8178, 1, 16, "The parameterized query expects a parameter, which was not supplied.")
            value = params.pop(0)
        elif raw.upper() == "NULL":
            value = None
        elif raw.startswith("@"):
            value = variables.get(raw.lower())
        elif raw[:1] in "Nn'" and raw.endswith("'"):
            value = _unquote(raw)
        elif re.fullmatch(r"-?\d+", raw):
            value = int(raw)
        elif re.fullmatch(r"-?\d+\.\d+", raw):
            value = float(raw)
        else:
            value = raw  # a bare word (T-SQL allows unquoted strings as procedure arguments)
        if name:
            named[name.strip().rstrip("=").strip().lower()] = value
        else:
            positional.append(value)
    return named, positional


# ---------------------------------------------------------------------------------------------- translation


_UTC_FUNCTIONS = ("SYSUTCDATETIME", "GETUTCDATE")
_LOCAL_FUNCTIONS = ("SYSDATETIME", "GETDATE")


def database_names(value: Any) -> dict[str, str]:
    """sql.database_names as {modelled name: the estate's name} (`{ssodb: SSODB_PRD}` -> `{SSODB: SSODB_PRD}`)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValueError(f"scenario sql.database_names: {value!r} is not a mapping; write e.g. "
                         "{ssodb: SSODB_PRD, management: BizTalkMgmtDb_PRD}")
    unknown = sorted(set(value) - set(DATABASE_NAME_KEYS))
    if unknown:
        raise ValueError(f"scenario sql.database_names: unknown key(s) {', '.join(map(str, unknown))}; the lab knows "
                         f"{', '.join(sorted(DATABASE_NAME_KEYS))} (it serves master and msdb under their own names)")
    out = {}
    for key, name in value.items():
        if not isinstance(name, str) or not _DATABASE_NAME.match(name):
            raise ValueError(f"scenario sql.database_names.{key}: {name!r} is not a database name the lab serves "
                             "(letters, digits and _, starting with a letter or _)")
        out[DATABASE_NAME_KEYS[key]] = name
    served = [out.get(d, d).lower() for d in MODELLED_DATABASES]
    if len(set(served)) != len(served):
        raise ValueError(f"scenario sql.database_names: {value!r} gives two databases one name (master, msdb, "
                         "SSODB and the management database each need their own)")
    return out


def split_instances(scenario_sql: dict) -> list[tuple[dict, list[str] | None, dict[str, str]]]:
    """The scenario's SQL instances as (the engine's scenario, hosted databases or None for all, remote
    databases -> their instance's name): one, or two with `sql.second_instance`, which holds its
    `databases` (default SSODB) and the jobs BizTalk creates for them (named …_<database> or … (<database>))."""
    second = scenario_sql.get("second_instance")
    if not second:
        return [(scenario_sql, None, {})]
    unknown = sorted(set(second) - SECOND_INSTANCE_KEYS)
    if unknown:
        raise ValueError(f"scenario sql.second_instance: unknown key(s) {', '.join(unknown)}; the lab knows "
                         f"{', '.join(sorted(SECOND_INSTANCE_KEYS))}")
    renamed = database_names(scenario_sql.get("database_names"))
    moved = [str(d) for d in (second.get("databases") or [renamed.get("SSODB", "SSODB")])]
    management = renamed.get("BizTalkMgmtDb", "BizTalkMgmtDb").lower()
    if any(d.lower() in ("master", "msdb", "biztalkmgmtdb", management) for d in moved):
        raise ValueError("scenario sql.second_instance.databases: master, msdb and BizTalkMgmtDb stay on the "
                         "first instance (the Backup BizTalk Server job runs there)")
    server = str(second.get("server") or "SQL2")
    name = f"{server}\\{second['instance']}" if second.get("instance") else server

    def on_second(job: str) -> bool:
        return any(job.lower().endswith((f"_{d.lower()}", f"({d.lower()})")) for d in moved)

    jobs = dict(scenario_sql.get("jobs") or {})
    first = {k: v for k, v in scenario_sql.items() if k != "second_instance"}
    first["jobs"] = {j: e for j, e in jobs.items() if not on_second(j)}
    other = {k: scenario_sql[k] for k in ("utc_offset_minutes", "agent_running", "job_run_sec", "denied",
                                          "username", "database_names") if k in scenario_sql}
    other.update({"server": server, "instance": second.get("instance"),
                  "jobs": {j: e for j, e in jobs.items() if on_second(j)}})
    return [(first, None, {d: name for d in moved}), (other, moved, {})]


def _no_database(name: str) -> EngineError:
    return EngineError(911, 1, 16, f"Database '{name}' does not exist. Make sure that the name is entered correctly.")


@lru_cache(maxsize=256)
def _translate(sql: str, database: str, databases: tuple[tuple[str, str], ...]) -> str:
    """T-SQL SELECT → SQLite, names mapped to the attached databases (`databases`: (the name the engine
    serves it under, lower; its attached name); `database`: the context's attached name)."""
    try:
        tree = sqlglot.parse_one(sql, read="tsql")
    except sqlglot.errors.ParseError as exc:
        raise EngineError(102, 1, 15,
                          f"Incorrect syntax near '{sql.strip()[:40]}'. ({str(exc).splitlines()[0]})") from None
    canon = dict(databases)
    tsqlrules.check_grouping(tree)
    tree = tsqlrules.strict_conversions(tree, _COLUMN_KINDS)

    def fix(node: exp.Expression) -> exp.Expression:
        if isinstance(node, exp.Table) and node.name:
            catalog, db = node.catalog, node.db
            named = catalog or (db if db and db.lower() != "dbo" and db.lower() in canon else None)
            if named is not None and named.lower() not in canon:
                raise EngineError(208, 1, 16,
                                  f"Invalid object name '{'.'.join(p for p in (catalog, db, node.name) if p)}'.")
            node.set("catalog", None)
            node.set("db", exp.to_identifier(canon[named.lower()] if named is not None else database))
            return node
        if isinstance(node, exp.National):
            return exp.Literal.string(node.this)
        if isinstance(node, (exp.Left, exp.Right)):  # LEFT/RIGHT(s, n): SQLite reads LEFT( as a join's keyword
            n = node.expression
            start = exp.Literal.number(1) if isinstance(node, exp.Left) else exp.Neg(this=n.copy())
            return exp.Anonymous(this="SUBSTR", expressions=[node.this.transform(fix), start, n])
        if isinstance(node, exp.CurrentUser):  # sqlglot reads T-SQL's SUSER_SNAME() as CURRENT_USER
            return exp.Anonymous(this="SUSER_SNAME")
        if isinstance(node, exp.Anonymous) and str(node.this).upper() in _UTC_FUNCTIONS:
            return exp.Anonymous(this="lab_utc_now")
        if isinstance(node, (exp.CurrentTimestamp, exp.CurrentDatetime)) or (
                isinstance(node, exp.Anonymous) and str(node.this).upper() in _LOCAL_FUNCTIONS):
            return exp.Anonymous(this="lab_local_now")
        return node

    tree = tree.transform(fix)
    return tree.sql(dialect="sqlite")


# ---------------------------------------------------------------------------------------------- schema


_SCHEMA = {
    "msdb": """
CREATE TABLE msdb.sysjobs (job_id TEXT PRIMARY KEY, name TEXT COLLATE NOCASE UNIQUE, enabled INTEGER,
  description TEXT, category_id INTEGER, owner_sid TEXT, date_created TEXT, date_modified TEXT, version_number INTEGER);
CREATE TABLE msdb.sysjobhistory (instance_id INTEGER PRIMARY KEY AUTOINCREMENT, job_id TEXT, step_id INTEGER,
  step_name TEXT, sql_message_id INTEGER, sql_severity INTEGER, message TEXT, run_status INTEGER,
  run_date INTEGER, run_time INTEGER, run_duration INTEGER, operator_id_emailed INTEGER,
  retries_attempted INTEGER, server TEXT);
CREATE TABLE msdb.syssessions (session_id INTEGER PRIMARY KEY, agent_start_date TEXT);
CREATE TABLE msdb.sysjobactivity (session_id INTEGER, job_id TEXT, run_requested_date TEXT, run_requested_source TEXT,
  queued_date TEXT, start_execution_date TEXT, last_executed_step_id INTEGER, last_executed_step_date TEXT,
  stop_execution_date TEXT, job_history_id INTEGER, next_scheduled_run_date TEXT);
CREATE TABLE msdb.backupmediafamily (media_set_id INTEGER, family_sequence_number INTEGER, physical_device_name TEXT,
  device_type INTEGER);
CREATE TABLE msdb.backupset (backup_set_id INTEGER PRIMARY KEY AUTOINCREMENT, media_set_id INTEGER,
  name TEXT, database_name TEXT COLLATE NOCASE, server_name TEXT COLLATE NOCASE, type TEXT COLLATE NOCASE,
  backup_start_date TEXT, backup_finish_date TEXT, time_zone INTEGER, is_copy_only INTEGER, backup_size INTEGER);
""",
    "BizTalkMgmtDb": """
CREATE TABLE BizTalkMgmtDb.adm_BackupHistory (BackupId INTEGER PRIMARY KEY AUTOINCREMENT, BackupSetId INTEGER,
  BackupType TEXT COLLATE NOCASE, SetComplete INTEGER, MarkName TEXT, BackupFileName TEXT, BackupFileLocation TEXT,
  DatabaseName TEXT COLLATE NOCASE, ServerName TEXT COLLATE NOCASE, BackupDateTime TEXT);
CREATE TABLE BizTalkMgmtDb.adm_OtherBackupDatabases (DefaultDatabaseName TEXT COLLATE NOCASE,
  DatabaseName TEXT COLLATE NOCASE, ServerName TEXT COLLATE NOCASE, BTSServerName TEXT COLLATE NOCASE);
CREATE TABLE BizTalkMgmtDb.adm_Group (Name TEXT, SSOServerName TEXT COLLATE NOCASE);
CREATE TABLE BizTalkMgmtDb.adm_Server (Id INTEGER PRIMARY KEY AUTOINCREMENT, Name TEXT COLLATE NOCASE UNIQUE);
CREATE TABLE BizTalkMgmtDb.adm_Adapter (Id INTEGER PRIMARY KEY AUTOINCREMENT, Name TEXT COLLATE NOCASE UNIQUE);
CREATE TABLE BizTalkMgmtDb.adm_Host (Id INTEGER PRIMARY KEY AUTOINCREMENT, Name TEXT COLLATE NOCASE UNIQUE);
CREATE TABLE BizTalkMgmtDb.adm_ReceiveHandler (Id INTEGER PRIMARY KEY AUTOINCREMENT, AdapterId INTEGER NOT NULL,
  HostId INTEGER, uidCustomCfgID TEXT NOT NULL);
CREATE TABLE BizTalkMgmtDb.adm_SendHandler (Id INTEGER PRIMARY KEY AUTOINCREMENT, AdapterId INTEGER NOT NULL,
  HostId INTEGER, uidCustomCfgID TEXT NOT NULL);
CREATE TABLE BizTalkMgmtDb.lab_GroupDatabases (ServerName TEXT COLLATE NOCASE, DatabaseName TEXT COLLATE NOCASE);
CREATE VIEW BizTalkMgmtDb.admv_BackupDatabases AS
  SELECT ServerName, DatabaseName FROM lab_GroupDatabases
  UNION SELECT ServerName, DatabaseName FROM adm_OtherBackupDatabases;
""",
    "BizTalkMgmtDb 2010": """
CREATE TABLE BizTalkMgmtDb.adm_BackupSettings (UseCompression INTEGER NOT NULL, ForceFull INTEGER NOT NULL);
""",
    "BizTalkMgmtDb 2006": """
CREATE TABLE BizTalkMgmtDb.adm_ForceFullBackup (ForceFull INTEGER NOT NULL);
""",
    "master": """
CREATE TABLE master.dm_server_services (servicename TEXT, startup_type_desc TEXT, status_desc TEXT,
  service_account TEXT, is_clustered TEXT);
""",
    "SSODB": """
CREATE TABLE SSODB.SSOX_GlobalInfo (gi_SecretServer TEXT, gi_update_timestamp TEXT, gi_flags INTEGER,
  gi_SSOAdminGroup TEXT, gi_AffiliateAppMgrGroup TEXT);
CREATE TABLE SSODB.SSOX_Servers (srv_server_name TEXT NOT NULL UNIQUE, srv_expire_timestamp TEXT NOT NULL,
  srv_audit_id TEXT NOT NULL UNIQUE);
""",
}


def _column_kinds() -> dict[str, str]:
    """Column name (lower) -> 'int' or 'char' where every table of the schema agrees and SQL Server's type is
    one (INTEGER columns are int; TEXT ones varchar/nvarchar, except the datetimes, uniqueidentifiers and
    sids SQLite keeps as text)."""
    kinds: dict[str, str | None] = {}
    for ddl in _SCHEMA.values():
        for name, sqltype in re.findall(r"[(,]\s*(\w+) (INTEGER|TEXT)\b", ddl):
            kind = "int" if sqltype == "INTEGER" else (
                None if re.search(r"(?i)date|timestamp|_id$|sid$|^uid", name) else "char")
            kinds[name.lower()] = kind if kinds.get(name.lower(), kind) == kind else None
    return {k: v for k, v in kinds.items() if v is not None}


_COLUMN_KINDS = _column_kinds()


_int_date, _int_time, _int_duration = backupjob._int_date, backupjob._int_time, backupjob._int_duration  # msdb's ints


def _file_stamp(t: datetime) -> str:
    return t.strftime("%Y_%m_%d_%H_%M_%S_") + f"{t.microsecond // 1000:03d}"


class SqlEngine:
    """The SQL Server of the lab: one SQLite connection (in memory) guarded by one lock, a simulated
    SQL Agent, and counters for the lab's report."""

    def __init__(self, scenario_sql: dict, secret_server: str, clock: Any, *,
                 hosted: Sequence[str] | None = None, remote: dict[str, str] | None = None,
                 biztalk_servers: Sequence[str] = (), sso_admin_group: str = "SSO Administrators") -> None:
        """`sso_admin_group`: SSOX_GlobalInfo.gi_SSOAdminGroup (scenario sso.admin_group).
        `hosted`: the databases this instance has (default: msdb, master, BizTalkMgmtDb, SSODB and the
        group's databases); `remote`: database -> the other instance's name (SERVERPROPERTY('ServerName'))
        for the group's databases that live there (the Backup BizTalk Server job's view names it)."""
        self.sso_admin_group = sso_admin_group
        unknown = sorted(set(scenario_sql) - SCENARIO_KEYS)
        if unknown:
            raise ValueError(f"scenario sql: unknown key(s) {', '.join(unknown)}; the lab knows "
                             f"{', '.join(sorted(SCENARIO_KEYS))}")
        schema = str(scenario_sql.get("biztalk_schema", "2010"))
        if schema not in FORCE_FULL_TABLES:
            raise ValueError(f"scenario sql.biztalk_schema: {schema!r} is not one of "
                             f"{', '.join(FORCE_FULL_TABLES)}")
        self.biztalk_schema = schema
        self.agent_running = bool(scenario_sql.get("agent_running", True))
        try:
            self.utc_offset = timedelta(minutes=int(scenario_sql.get("utc_offset_minutes", 0)))
        except (TypeError, ValueError):
            raise ValueError(f"scenario sql.utc_offset_minutes: {scenario_sql.get('utc_offset_minutes')!r} is not a "
                             "whole number of minutes") from None
        if abs(self.utc_offset) > timedelta(hours=14):
            raise ValueError("scenario sql.utc_offset_minutes: SQL Server's clock is at most 14 hours from UTC")
        self.flag_table = FORCE_FULL_TABLES[schema]
        self.database_names = database_names(scenario_sql.get("database_names"))
        back = {v.lower(): k for k, v in self.database_names.items()}

        def modelled(d: str) -> str:  # the estate's name -> the engine's (others unchanged)
            return back.get(d.lower(), d)
        denied = scenario_sql.get("denied")
        if isinstance(denied, list):  # either name of a renamed database
            denied = [".".join([modelled(v.split(".", 1)[0])] + v.split(".")[1:]) if isinstance(v, str) else v
                      for v in denied]
        self.denied = self._denied(denied, schema)
        # the suite's login: its server and msdb roles, and the login that owns the BizTalk jobs (sysjobs.owner_sid)
        roles = scenario_sql.get("login_roles")
        self.login_roles = frozenset(str(r).lower() for r in (["SQLAgentOperatorRole"] if roles is None else roles))
        self.job_owner = str(scenario_sql.get("job_owner") or "sa")
        self.clock = clock
        self.server = str(scenario_sql.get("server") or "SQL1")
        instance = scenario_sql.get("instance")
        self.server_name = f"{self.server}\\{instance}" if instance else self.server
        # as BizTalk names them in its backup view and history: the estate's names
        self.group_databases: list[str] = [self.estate_name(str(d)) for d in scenario_sql.get("databases") or
                                           ["BizTalkMgmtDb", "BizTalkMsgBoxDb", "BizTalkDTADb", "SSODB"]]
        self.backup_path = str(scenario_sql.get("backup_path") or "F:\\Backup")
        self.job_run_sec = float(scenario_sql.get("job_run_sec", 5))
        self.backup_sec_per_database = float(scenario_sql.get("backup_sec_per_database", 4))
        self.remote = {self.estate_name(k).lower(): v for k, v in (remote or {}).items()}
        names = list(MODELLED_DATABASES) + [modelled(d) for d in self.group_databases if modelled(d).lower() not in
                                            {m.lower() for m in MODELLED_DATABASES}]
        if hosted is not None:
            names = ["master", "msdb"] + [modelled(d) for d in hosted if d.lower() not in ("master", "msdb")]
        names = [d for d in names if self.estate_name(d).lower() not in self.remote]
        self._attached_names: tuple[str, ...] = tuple(names)  # SQLite's: the modelled names
        self.databases: tuple[str, ...] = tuple(self.estate_name(d) for d in names)  # as sys.databases lists them
        self._served = tuple((self.estate_name(d).lower(), d) for d in names)  # served name (lower) -> attached
        self.hosted = {d.lower() for d in names}  # the modelled names of the databases it has
        self.received: deque[tuple[str, str]] = deque(maxlen=RECEIVED_KEPT)  # (database, batch) as received
        self._lock = threading.RLock()
        self._available = True
        self._failures: dict[str, list[str]] = {}
        # the Backup BizTalk Server job (entsso.lab.backupjob): its schedule, the step each queued failure fails at
        every = scenario_sql.get("backup_schedule_minutes")
        self.backup_every_sec: float | None = None if every is None else float(every) * 60.0
        self._next_backup_due: float | None = self.backup_every_sec  # estate seconds since the lab started
        self._fail_steps: dict[str, list[str | None]] = {}  # job (lower) -> the step each queued failure fails at
        self._fail_step_now: dict[str, str | None] = {}  # job (lower) -> the step the run now going fails at
        self._collisions: dict[str, int] = {}  # job (lower) -> sp_start_job calls that meet a scheduled run first
        self._running: dict[str, threading.Thread] = {}
        self._running_user: dict[str, str] = {}  # job (lower) -> who started the run now going
        self._stop_requests: dict[str, tuple[threading.Event, list[str]]] = {}  # job (lower) -> (stop, [by whom])
        # application locks: resource (compared binary, case-sensitive, as SQL Server compares it) -> owning
        # session, and how often that session took it (each sp_getapplock needs its own sp_releaseapplock)
        self._applocks: dict[str, int] = {}
        self._applock_counts: dict[str, int] = {}
        self._stopping = threading.Event()
        self.counters: dict[str, Any] = {"statements": 0, "procedures": {}, "changes": 0, "errors": 0}
        self._db = sqlite3.connect(":memory:", check_same_thread=False, isolation_level=None)
        self._db.create_function("lab_utc_now", 0, lambda: to_sql_text(self.clock.now()))
        self._db.create_function("lab_local_now", 0, lambda: to_sql_text(self._now_local()))
        for name in self._attached_names:
            self._db.execute(f'ATTACH DATABASE ":memory:" AS "{name}"')
        for part, ddl in _SCHEMA.items():
            if part.startswith("BizTalkMgmtDb ") and part != f"BizTalkMgmtDb {schema}":
                continue  # the other BizTalk version's flag table: not in this database
            if part.split()[0].lower() not in self.hosted:
                continue  # a database of another instance
            self._db.executescript(ddl)
        self._db.create_function("SERVERPROPERTY", 1,
                                 lambda p: self.server_name if str(p).lower() == "servername" else None)
        self._current_database = "master"
        self._db.create_function("OBJECT_ID", 1, self._object_id)
        self._db.create_function("HAS_PERMS_BY_NAME", 3, self._has_perms_by_name)
        self._current_login = "sa"
        self._db.create_function("IS_SRVROLEMEMBER", 1, self._is_srvrolemember)
        self._db.create_function("IS_ROLEMEMBER", 1, self._is_rolemember)
        self._db.create_function("IS_MEMBER", 1, self._is_rolemember)
        self._db.create_function("SUSER_SNAME", 0, lambda: self._current_login)
        self._db.create_function("SUSER_SNAME", 1, lambda sid: sid)  # the lab keeps owner_sid as the login's name
        self._current_session = 0
        self._db.create_function("APPLOCK_MODE", 3, self._applock_mode)
        self._conversion_failed: tsqlrules.ConversionFailed | None = None
        self._db.create_function("lab_int", 2, self._lab_int)
        self._db.create_function("DB_NAME", 0, lambda: self.estate_name(self._current_database))
        self._db.create_function("DB_NAME", 1, self._db_name)
        self._db.create_function("DB_ID", 0, lambda: self._database_ids().get(self._current_database.lower()))
        self._db.create_function("DB_ID", 1, self._db_id)
        self._seed(scenario_sql, secret_server)
        for server in biztalk_servers:  # the group's servers, as BizTalk Configuration enlists them
            self._db.execute("INSERT INTO BizTalkMgmtDb.adm_Server (Name) VALUES (?)", (server,))
        self._scheduler: threading.Thread | None = None
        if self.agent_running:
            self._scheduler = threading.Thread(target=self._schedule, name="lab-sqlagent:schedule", daemon=True)
            self._scheduler.start()

    # ------------------------------------------------------------------------------------- seed

    def _seed(self, sc: dict, secret_server: str) -> None:
        now = self._now_local()
        db = self._db
        agent_start = now - timedelta(days=3, hours=2)
        self._agent_started = agent_start + timedelta(minutes=1)
        db.execute("INSERT INTO msdb.syssessions VALUES (?, ?)", (1, to_sql_text(agent_start - timedelta(days=30))))
        db.execute("INSERT INTO msdb.syssessions VALUES (?, ?)", (2, to_sql_text(agent_start)))
        self._session_id = 2
        jobs = sc.get("jobs") or {}
        yesterday = (now - timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
        for name, enabled in jobs.items():
            job_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"lab-sqlagent:{name}")).upper()
            db.execute("INSERT INTO msdb.sysjobs (job_id, name, enabled, description, category_id, owner_sid, "
                       "date_created, date_modified, version_number) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                       (job_id, name, 1 if enabled else 0, "BizTalk group job", 0, self.job_owner,
                        to_sql_text(now - timedelta(days=400)), to_sql_text(now - timedelta(days=30)), 1))
            # its latest run failed with this message: at step 1, or at the step a mapping names ({step, message})
            failed = (sc.get("failed_jobs") or {}).get(name)
            default_step = "BackupFull" if name.lower() == BACKUP_JOB.lower() else FAILED_STEP_NAME
            failed_step = str(failed.get("step") or default_step) if isinstance(failed, dict) else default_step
            failed_message = str(failed.get("message") or "") if isinstance(failed, dict) else str(failed)
            steps = list(BACKUP_STEPS) if name.lower() == BACKUP_JOB.lower() else [failed_step]
            if failed_step not in steps:
                raise ValueError(f"scenario sql.failed_jobs.{name}.step: {failed_step!r} is not a step of that job "
                                 f"({', '.join(steps)})")
            if enabled or failed is not None:  # a couple of past runs of the enabled jobs, successful unless failed
                for hours_ago in (26, 2):
                    start = now - timedelta(hours=hours_ago)
                    ok = failed is None or hours_ago != 2
                    if not ok:  # the steps before the failing one succeeded (a partial failure), then it failed
                        at = steps.index(failed_step)
                        for i, step_name in enumerate(steps[:at + 1], start=1):
                            last = i == at + 1
                            db.execute("INSERT INTO msdb.sysjobhistory (job_id, step_id, step_name, sql_message_id, "
                                       "sql_severity, message, run_status, run_date, run_time, run_duration, "
                                       "operator_id_emailed, retries_attempted, server) "
                                       "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, 0, ?)",
                                       (job_id, i, step_name, 50000 if last else 0, 16 if last else 0,
                                        failed_message if last else STEP_SUCCEEDED.format(user=AGENT_USER),
                                        0 if last else 1, _int_date(start), _int_time(start),
                                        _int_duration(self.job_run_sec), self.server_name))
                    hid = self._history(job_id, start, self.job_run_sec, ok,
                                        self._outcome_message(ok, "(schedule)",
                                                              f"step {steps.index(failed_step) + 1} ({failed_step})"
                                                              if not ok else "step 1"))
                    db.execute("INSERT INTO msdb.sysjobactivity (session_id, job_id, run_requested_date, "
                               "run_requested_source, start_execution_date, stop_execution_date, job_history_id) "
                               "VALUES (?, ?, ?, ?, ?, ?, ?)",
                               (self._session_id, job_id, to_sql_text(start), "1", to_sql_text(start),
                                to_sql_text(start + timedelta(seconds=self.job_run_sec)), hid))
        if "biztalkmgmtdb" in self.hosted:
            self._seed_management(sc, now, yesterday)
        suffix = f"MSSQL${sc.get('instance')}" if sc.get("instance") else "MSSQLSERVER"
        db.execute("INSERT INTO master.dm_server_services VALUES (?, 'Automatic', 'Running', ?, 'N')",
                   (f"SQL Server ({suffix.split('$')[-1]})", f"NT Service\\{suffix}"))
        db.execute("INSERT INTO master.dm_server_services "
                   "VALUES (?, 'Automatic', ?, 'NT Service\\SQLSERVERAGENT', 'N')",
                   (f"SQL Server Agent ({suffix.split('$')[-1]})", "Running" if self.agent_running else "Stopped"))
        if "ssodb" in self.hosted:
            db.execute("INSERT INTO SSODB.SSOX_GlobalInfo VALUES (?, ?, ?, ?, ?)",
                       (secret_server, to_sql_text(now - timedelta(days=200)), 0, self.sso_admin_group,
                        "SSO Affiliate Administrators"))

    def _seed_management(self, sc: dict, now: datetime, yesterday: datetime) -> None:
        db = self._db
        for d in self.group_databases:
            db.execute("INSERT INTO BizTalkMgmtDb.lab_GroupDatabases VALUES (?, ?)",
                       (self.remote.get(d.lower(), self.server_name), d))
        # yesterday's full set, then log backups every 15 minutes of the last hour
        set_id = 1
        self._record_set("db", yesterday + timedelta(minutes=1), set_id)
        for k in range(4, 0, -1):
            set_id += 1
            self._record_set("lg", now - timedelta(minutes=15 * k), set_id)
        if sc.get("last_full_minutes_ago") is not None:
            # a routine full set that finished shortly before the change began (it is not this change's)
            set_id += 1
            self._record_set("db", now - timedelta(minutes=float(sc["last_full_minutes_ago"])), set_id)
        if sc.get("full_backup_done"):
            # prepared.yml: a forced full set completed for the change. The estate model writes the change's
            # secret backup (which dates the change) at the lab's start, after this seed runs; the set is
            # dated just after it, as phase 2 follows phase 1.
            set_id += 1
            self._record_set("db", now + timedelta(seconds=PREPARED_SET_DELAY_SEC), set_id)
        self._next_set_id = set_id + 1
        flag = 1 if sc.get("force_full_backup") else 0
        if self.flag_table == "adm_BackupSettings":
            db.execute("INSERT INTO BizTalkMgmtDb.adm_BackupSettings (UseCompression, ForceFull) VALUES (0, ?)",
                       (flag,))
        else:
            db.execute(f"INSERT INTO BizTalkMgmtDb.adm_ForceFullBackup ({FORCE_FULL_COLUMN}) VALUES (?)", (flag,))

    def _record_set(self, kind: str, start: datetime, set_id: int) -> None:
        """A complete backup set written at once (seed history)."""
        t = start
        for d in self._backup_databases():
            self._record_backup(kind, d, t, t + timedelta(seconds=self.backup_sec_per_database), set_id, complete=True)
            t += timedelta(seconds=self.backup_sec_per_database)

    def _backup_databases(self) -> list[str]:
        return [r[0] for r in self._db.execute("SELECT DatabaseName FROM BizTalkMgmtDb.admv_BackupDatabases")]

    def _record_backup(self, kind: str, database: str, start: datetime, finish: datetime, set_id: int,
                       *, complete: bool) -> None:
        stamp = _file_stamp(start)
        label = "Full" if kind == "db" else "Log"
        server = self.remote.get(database.lower(), self.server_name)  # the database's instance names the file
        file_name = f"{server.replace(chr(92), '_')}_{database}_{label}_BTS_{stamp}.bak"
        media = self._db.execute("SELECT COALESCE(MAX(media_set_id), 0) + 1 FROM msdb.backupset").fetchone()[0]
        self._db.execute("INSERT INTO msdb.backupmediafamily VALUES (?, 1, ?, 2)",
                         (media, self.backup_path.rstrip("\\") + "\\" + file_name))
        self._db.execute("INSERT INTO msdb.backupset (media_set_id, name, database_name, server_name, type, "
                         "backup_start_date, backup_finish_date, time_zone, is_copy_only, backup_size) "
                         "VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0, ?)",
                         (media, f"BTS_{label}_{database}", database, self.server_name, "D" if kind == "db" else "L",
                          to_sql_text(start), to_sql_text(finish), int(self.utc_offset.total_seconds() // 900),
                          50_000_000 if kind == "db" else 2_000_000))
        self._db.execute("INSERT INTO BizTalkMgmtDb.adm_BackupHistory (BackupSetId, BackupType, SetComplete, MarkName, "
                         "BackupFileName, BackupFileLocation, DatabaseName, ServerName, BackupDateTime) "
                         "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                         (set_id, kind, 1 if complete else 0, f"{label}_BTS_{stamp}", file_name,
                          self.backup_path, database, server, to_sql_text(start)))

    def _history(self, job_id: str, start: datetime, seconds: float, ok: bool, message: str,
                 status: int | None = None) -> int:
        cur = self._db.execute(
            "INSERT INTO msdb.sysjobhistory (job_id, step_id, step_name, sql_message_id, sql_severity, message, "
            "run_status, run_date, run_time, run_duration, operator_id_emailed, retries_attempted, server) "
            "VALUES (?, 0, '(Job outcome)', 0, 0, ?, ?, ?, ?, ?, 0, 0, ?)",
            (job_id, message, status if status is not None else (1 if ok else 0), _int_date(start), _int_time(start),
             _int_duration(seconds), self.server_name))
        assert cur.lastrowid is not None  # sqlite sets it on every INSERT
        return cur.lastrowid

    @staticmethod
    def _outcome_message(ok: bool, user: str, step: str) -> str:
        invoked = "Schedule 1 (daily)" if user == "(schedule)" else f"User {user}"
        word = "succeeded" if ok else "failed"
        return f"The job {word}.  The Job was invoked by {invoked}.  The last step to run was {step}."

    # ------------------------------------------------------------------------------------- control

    @property
    def available(self) -> bool:
        return self._available

    def set_unavailable(self, flag: bool) -> None:
        self._available = not flag

    def clear_job_failures(self) -> None:
        """Forget queued job failures (the control endpoint's /faults/clear)."""
        with self._lock:
            self._failures.clear()
            self._fail_steps.clear()
            self._collisions.clear()

    def fail_job(self, job_name: str, message: str, times: int = 1, step: str | None = None) -> None:
        """The next `times` runs fail with `message`; for the Backup BizTalk Server job, at `step` (one of
        backupjob.BACKUP_STEPS; default the first step that backs something up)."""
        with self._lock:
            self._failures.setdefault(job_name.lower(), []).extend([message] * max(0, int(times)))
            self._fail_steps.setdefault(job_name.lower(), []).extend([step] * max(0, int(times)))

    def collide_on_start(self, job_name: str, times: int = 1) -> None:
        """The next `times` sp_start_job of `job_name` find a run its schedule started an instant before."""
        backupjob.collide_on_start(self, job_name, times)

    def get_secret_server(self) -> str:
        with self._lock:
            row = self._db.execute("SELECT gi_SecretServer FROM SSODB.SSOX_GlobalInfo LIMIT 1").fetchone()
            return row[0] if row else ""

    def set_secret_server(self, name: str) -> None:
        with self._lock:
            self._db.execute("UPDATE SSODB.SSOX_GlobalInfo SET gi_SecretServer = ?, gi_update_timestamp = ?",
                             (name, to_sql_text(self._now_local())))
            self.counters["changes"] += 1

    def end_session(self, session: int) -> None:
        """A connection ended: SQL Server releases its session-owned application locks."""
        with self._lock:
            for res in [r for r, s in self._applocks.items() if s == session]:
                del self._applocks[res]
                self._applock_counts.pop(res, None)

    def wait_idle(self, timeout: float = 30.0) -> bool:
        """Wait (real seconds) until no job runs but those SQL Agent runs on its own (ManageRefCountLog,
        Message_Cleanup), which never stop unless stopped; for tests and an orderly stop."""
        def own(name: str) -> bool:
            return name.startswith((CONTINUOUS_PREFIX.lower(), SELF_STARTED_PREFIX.lower()))

        for name, t in list(self._running.items()):
            if not own(name):
                t.join(timeout)
        return not [n for n in self._running if not own(n)]

    def dump(self) -> dict:
        with self._lock:
            jobs = {}
            for name, enabled, job_id in self._db.execute(
                    "SELECT name, enabled, job_id FROM msdb.sysjobs ORDER BY name"):
                last = self._db.execute("SELECT run_status, run_date, run_time, message FROM msdb.sysjobhistory "
                                        "WHERE job_id = ? AND step_id = 0 ORDER BY instance_id DESC LIMIT 1",
                                        (job_id,)).fetchone()
                jobs[name] = {"enabled": bool(enabled), "running": name.lower() in self._running,
                              "last_outcome": None if last is None else {
                                  "run_status": last[0], "run_date": last[1], "run_time": last[2], "message": last[3]}}
            backups = {}
            for d in (self._backup_databases() if "biztalkmgmtdb" in self.hosted else []):
                full = self._db.execute("SELECT MAX(backup_finish_date) FROM msdb.backupset WHERE database_name = ? "
                                        "AND type = 'D' AND is_copy_only = 0", (d,)).fetchone()[0]
                backups[d] = {"last_full": full.replace(" ", "T") if full else None}
            return {"jobs": jobs, "server_name": self.server_name,
                    "force_full_backup": self._force_flag() if "biztalkmgmtdb" in self.hosted else None,
                    "backups": backups,
                    "secret_server": self.get_secret_server() if "ssodb" in self.hosted else None,
                    "app_locks": sorted(self._applocks),
                    "counters": {"statements": self.counters["statements"],
                                 "procedures": dict(self.counters["procedures"]),
                                 "changes": self.counters["changes"], "errors": self.counters["errors"]}}

    def close(self) -> None:
        self._stopping.set()
        for t in list(self._running.values()):
            t.join(5)

    @staticmethod
    def _denied(value: Any, schema: str) -> frozenset[str]:
        """sql.denied: the objects (three-part names) on which the suite's login lacks its grant."""
        if value is None:
            return frozenset()
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ValueError(f"scenario sql.denied: {value!r} is not a list of three-part object names")
        known = {n.lower(): n for n in PROCEDURES}
        for database, ddl in _SCHEMA.items():
            if database.startswith("BizTalkMgmtDb ") and database != f"BizTalkMgmtDb {schema}":
                continue
            for db, obj in re.findall(r"CREATE (?:TABLE|VIEW) (\w+)\.(\w+)", ddl):
                known[f"{db}.dbo.{obj}".lower()] = f"{db}.dbo.{obj}"
        unknown = [v for v in value if v.lower() not in known]
        if unknown:
            raise ValueError(f"scenario sql.denied: {', '.join(unknown)} is not an object the lab models "
                             f"(one of {', '.join(sorted(known.values()))})")
        return frozenset(v.lower() for v in value)

    def _deny(self, permission: str, database: str, obj: str) -> None:
        """Error 229 as SQL Server sends it when the login lacks `permission` on database.dbo.obj."""
        if f"{database}.dbo.{obj}".lower() in self.denied:
            raise EngineError(229, 5, 14, f"The {permission} permission was denied on the object '{obj}', "
                                          f"database '{self.estate_name(database)}', schema 'dbo'.")

    def _has_perms_by_name(self, securable: Any, securable_class: Any, permission: Any) -> int | None:
        """HAS_PERMS_BY_NAME(N'db.schema.object', N'OBJECT', N'EXECUTE'|N'SELECT'): 1 granted, 0 not, NULL
        when the object does not exist (the only class the lab models is OBJECT)."""
        if str(securable_class or "").upper() != "OBJECT":
            raise EngineError(50000, 1, 16, f"HAS_PERMS_BY_NAME: the lab models the OBJECT class only, not "
                                            f"{securable_class!r}")
        name = ".".join(p.strip().strip("[]") for p in str(securable or "").split("."))
        database = self._attached(name.split(".", 1)[0])
        if database is None:
            return None  # a database this instance does not have (or not under that name)
        modelled = ".".join([database] + name.split(".")[1:])
        if modelled.lower() not in {p.lower() for p in PROCEDURES} and self._object_id(name) is None:
            return None
        return 0 if modelled.lower() in self.denied else 1

    def _is_srvrolemember(self, role: Any) -> int | None:
        """IS_SRVROLEMEMBER(N'sysadmin') for the calling login (sql.login_roles); NULL for a role no server has."""
        if str(role).lower() not in SERVER_ROLES:
            return None
        return 1 if str(role).lower() in self.login_roles else 0

    def _is_rolemember(self, role: Any) -> int | None:
        """IS_ROLEMEMBER / IS_MEMBER(N'SQLAgentOperatorRole') in msdb for the calling login: SQL Agent's fixed
        roles exist only in msdb (NULL elsewhere, as for any role the database does not have); sysadmin is a
        member of every database role."""
        if self._current_database != "msdb" or str(role).lower() not in AGENT_ROLES:
            return None
        return 1 if str(role).lower() in self.login_roles or "sysadmin" in self.login_roles else 0

    def _applock_mode(self, principal: Any, resource: Any, owner: Any) -> str:
        """APPLOCK_MODE(N'public', resource, N'Session'): the calling session's lock mode, 'NoLock' if none."""
        if str(owner or "").lower() != "session":
            return "NoLock"  # autocommit: no transaction owns a lock
        return "Exclusive" if self._applocks.get(str(resource)) == self._current_session else "NoLock"

    def _lab_int(self, value: Any, kind: str) -> Any:
        try:
            return tsqlrules.lab_int(value, kind)
        except tsqlrules.ConversionFailed as exc:
            self._conversion_failed = exc  # SQLite reports only "user-defined function raised exception"
            raise

    def _database_ids(self) -> dict[str, int]:
        """database_id by attached name (lower): the system databases' own ids, the others from 5."""
        ids = {d.lower(): i for d, i in tsqlrules.SYSTEM_DATABASE_IDS.items()}
        for _served, attached in self._served:
            ids.setdefault(attached.lower(), max(ids.values()) + 1)
        return ids

    def _db_name(self, database_id: Any) -> str | None:
        """DB_NAME(id): the database's name as the estate serves it; NULL for an id no database has."""
        for attached, i in self._database_ids().items():
            if database_id is not None and int(database_id) == i:
                served = self._attached(attached) or attached
                return self.estate_name(served) if served != attached.lower() else self.estate_name(attached)
        return None

    def _db_id(self, name: Any) -> int | None:
        attached = self._attached(str(name or ""))
        return None if attached is None else self._database_ids().get(attached.lower())

    def _force_flag(self) -> int:
        row = self._db.execute(f"SELECT {FORCE_FULL_COLUMN} FROM BizTalkMgmtDb.{self.flag_table} LIMIT 1").fetchone()
        return int(row[0]) if row else 0

    def set_group(self, name: str, sso_server: str) -> None:
        """The BizTalk group's row of adm_Group: its name and the SSO server its admin tools use for adapter
        configuration (MSBTS_GroupSetting.SSOServerName). Starting state: not a change."""
        with self._lock:
            self._db.execute("DELETE FROM BizTalkMgmtDb.adm_Group")
            self._db.execute("INSERT INTO BizTalkMgmtDb.adm_Group VALUES (?, ?)", (name, sso_server))

    def set_adapter_handlers(self, handlers: Sequence[tuple[str, str, str, str]]) -> None:
        """The group's adapter handlers, (kind receive|send, adapter, host, uidCustomCfgID as upper-case GUID
        text), as BizTalk's adapter and handler registration writes them. Starting state: not a change."""
        with self._lock:
            db = self._db
            for kind, adapter, host, cfg_id in handlers:
                db.execute("INSERT OR IGNORE INTO BizTalkMgmtDb.adm_Adapter (Name) VALUES (?)", (adapter,))
                db.execute("INSERT OR IGNORE INTO BizTalkMgmtDb.adm_Host (Name) VALUES (?)", (host,))
                table = "adm_ReceiveHandler" if kind == "receive" else "adm_SendHandler"
                db.execute(f"INSERT INTO BizTalkMgmtDb.{table} (AdapterId, HostId, uidCustomCfgID) VALUES "
                           "((SELECT Id FROM BizTalkMgmtDb.adm_Adapter WHERE Name = ?), "
                           "(SELECT Id FROM BizTalkMgmtDb.adm_Host WHERE Name = ?), ?)", (adapter, host, cfg_id))

    def register_sso_servers(self, names: list[str], days_ago: float = 0) -> None:
        """The SSO servers that share SSODB, as each registers itself when it starts (ssox_spSetServer:
        its name in lower case, expiring 10 days after SQL Server's local now), `days_ago` days ago.
        Starting state: not a change."""
        with self._lock:
            expire = to_sql_text(self._now_local() + timedelta(days=10 - days_ago))
            for name in names:
                self._db.execute("INSERT OR REPLACE INTO SSODB.SSOX_Servers VALUES (?, ?, ?)",
                                 (str(name).lower(), expire, str(uuid.uuid4())))

    def _now_local(self) -> datetime:
        """SQL Server's local clock (GETDATE()): the lab clock's UTC plus sql.utc_offset_minutes, naive."""
        return (self.clock.now().astimezone(UTC) + self.utc_offset).replace(tzinfo=None)

    def _set_force_flag(self, value: int) -> None:
        self._db.execute(f"UPDATE BizTalkMgmtDb.{self.flag_table} SET {FORCE_FULL_COLUMN} = ?", (value,))

    def estate_name(self, database: str) -> str:
        """The name the engine serves a modelled database under (sql.database_names; others unchanged)."""
        return next((v for k, v in self.database_names.items() if k.lower() == database.lower()), database)

    def _attached(self, served: str) -> str | None:
        """The attached (modelled) name of a database this instance serves as `served`, else None."""
        return dict(self._served).get(served.lower())

    def _object_id(self, name: Any) -> int | None:
        """OBJECT_ID(N'[database.]schema.object'): an id for a table or view of the lab's schema, else NULL
        (as SQL Server answers for an object that does not exist or that the caller cannot see)."""
        parts = [p.strip().strip("[]") for p in str(name or "").split(".")]
        if len(parts) == 1:
            parts = ["dbo"] + parts
        if len(parts) == 2:
            parts = [self.estate_name(self._current_database)] + parts
        if len(parts) != 3 or parts[1].lower() != "dbo":
            return None
        database = self._attached(parts[0]) if len(parts[0]) else None
        if database is None:
            return None
        row = self._db.execute(f'SELECT name FROM "{database}".sqlite_master WHERE type IN (\'table\', \'view\') '
                               "AND name = ? COLLATE NOCASE", (parts[2],)).fetchone()
        if row is None:
            return None
        return zlib.crc32(f"{database}.{row[0]}".lower().encode()) & 0x7FFFFFFF

    # ------------------------------------------------------------------------------------- execute

    supports_cancel = True  # execute(cancel=...): WAITFOR ends when the client cancels

    def execute(self, sql: str, params: Sequence = (), database: str = "master", *,
                session: int = 0, login: str = "sa", cancel: threading.Event | None = None) -> EngineResult:
        """Run one T-SQL batch with ? parameters in `database`'s context. A batch may start with
        WAITFOR DELAY 'hh:mm:ss' (estate time; other sessions run meanwhile); `cancel` set ends it with
        StatementCancelled, as SQL Server ends a batch on an attention."""
        self.received.append((database, sql))
        m = _WAITFOR.match(sql.lstrip())
        if m:
            h, mi, se, ms = m.groups()
            seconds = int(h) * 3600 + int(mi) * 60 + int(se) + int((ms or "0").ljust(3, "0")) / 1000
            if (cancel or threading.Event()).wait(self.clock.real(seconds)):
                raise StatementCancelled()
            sql = sql.lstrip()[m.end():]
            if not sql.strip():
                return EngineResult()
        attached = self._attached(database)
        if attached is None:
            raise _no_database(database)
        ctx = {"database": attached, "session": session, "login": login, "vars": {}}
        remaining = [_param(p) for p in params]
        result = EngineResult()
        with self._lock:
            self.counters["statements"] += 1
            try:
                for stmt in _split_batch(sql):
                    self._statement(stmt, remaining, ctx, result)
            except EngineError:
                self.counters["errors"] += 1
                raise
        return result

    def _statement(self, stmt: str, params: list[Any], ctx: dict, result: EngineResult) -> None:
        word = stmt.split(None, 1)[0].upper()
        if word == "SET":
            return  # SET NOCOUNT ON and session options change nothing the lab models
        if word == "DECLARE":
            for m in re.finditer(r"(?i)(@\w+)\s+[\w()]+(?:\s*=\s*(N?'(?:[^']|'')*'|-?\d+))?", stmt[7:]):
                val = m.group(2)
                ctx["vars"][m.group(1).lower()] = (None if val is None else
                                                   int(val) if re.fullmatch(r"-?\d+", val) else _unquote(val))
            return
        if word == "USE":
            name = stmt.split(None, 1)[1].strip().strip("[]")
            attached = self._attached(name)
            if attached is None:
                raise _no_database(name)
            ctx["database"] = attached
            return
        if word in ("EXEC", "EXECUTE"):
            self._exec(stmt, params, ctx, result)
            return
        if word == "IF":
            self._if(stmt, params, ctx, result)
            return
        if word == "BEGIN" and not re.match(r"(?i)BEGIN\s+(TRAN|TRANSACTION|DISTRIBUTED)\b", stmt):
            for inner in _split_batch(tsqlrules.unwrap_block(stmt)):
                self._statement(inner, params, ctx, result)
            return
        if word in ("SELECT", "WITH"):
            self._select(stmt, params, ctx, result)
            return
        if word in ("INSERT", "UPDATE", "DELETE", "MERGE", "TRUNCATE"):
            self._refuse_change(word, stmt, ctx)
        if word in ("CREATE", "ALTER", "DROP", "GRANT", "DENY", "REVOKE", "BACKUP", "RESTORE"):
            raise EngineError(262, 1, 14,
                              f"{word} permission denied in database '{self.estate_name(ctx['database'])}'.")
        raise EngineError(102, 1, 15, f"Incorrect syntax near '{stmt.split(None, 1)[0]}'.")

    _CHANGED_OBJECT = re.compile(r"(?is)^(?:INSERT(?:\s+INTO)?|UPDATE|DELETE(?:\s+FROM)?|MERGE(?:\s+INTO)?|"
                                 r"TRUNCATE\s+TABLE)\s+((?:\[[^\]]+\]|[\w#]+)(?:\s*\.\s*(?:\[[^\]]*\]|\w*))*)")

    def _refuse_change(self, word: str, stmt: str, ctx: dict) -> None:
        """INSERT/UPDATE/DELETE/MERGE: the login has no such grant on any table (it changes the estate only
        through the documented procedures): 229 naming the object, as SQL Server names it; an object that
        does not exist is 208 first. TRUNCATE TABLE needs ALTER: 1088."""
        m = self._CHANGED_OBJECT.match(stmt)
        if not m:
            raise EngineError(102, 1, 15, f"Incorrect syntax near '{word}'.")
        written = re.sub(r"\s+", "", m.group(1))
        parts = [x.strip("[]") for x in written.split(".")]
        database = self._attached(parts[0]) if len(parts) == 3 else ctx["database"]
        self._current_database = ctx["database"]
        if database is None or self._object_id(".".join(parts)) is None:
            if word == "TRUNCATE":
                raise EngineError(1088, 7, 16, f'Cannot find the object "{written}" because it does not exist or '
                                               "you do not have permissions.")
            raise EngineError(208, 1, 16, f"Invalid object name '{written}'.")
        if word == "TRUNCATE":
            raise EngineError(1088, 7, 16, f'Cannot find the object "{written}" because it does not exist or you '
                                           "do not have permissions.")
        schema = parts[-2] if len(parts) >= 2 and parts[-2] else "dbo"
        raise EngineError(229, 5, 14, f"The {word} permission was denied on the object '{parts[-1]}', database "
                                      f"'{self.estate_name(database)}', schema '{schema}'.")

    def _if(self, stmt: str, params: list[Any], ctx: dict, result: EngineResult) -> None:
        """IF <condition> <statement or BEGIN … END> [ELSE …]: the condition as SQL Server evaluates it
        (NULL is not true), then the branch taken; the other branch's ? parameters are skipped."""
        cond, then, otherwise = tsqlrules.split_if(stmt)
        probe = EngineResult()
        self._select(f"SELECT CASE WHEN {cond} THEN 1 ELSE 0 END", params, ctx, probe)
        taken = probe.sets[0].rows[0][0] == 1
        if not taken:
            del params[:_count_params(then)]
        branch = then if taken else otherwise
        if branch:
            for inner in _split_batch(tsqlrules.unwrap_block(branch)):
                self._statement(inner, params, ctx, result)
        if taken and otherwise:
            del params[:_count_params(otherwise)]

    def _select(self, stmt: str, params: list[Any], ctx: dict, result: EngineResult) -> None:
        # @variables become literals (sqlglot would read them as parameters); @@VERSION and the like too
        parts = []
        globals_ = {"VERSION": tsqlrules.VERSION, "SERVERNAME": self.server_name, "SPID": ctx["session"]}
        for kind, text in _scan(stmt):
            if kind == "other":
                text = tsqlrules.replace_globals(text, globals_, _literal)
                text = re.sub(r"@\w+", lambda m: _literal(ctx["vars"].get(m.group(0).lower())), text)
            parts.append(text)
        stmt = "".join(parts)
        n = _count_params(stmt)
        if n > len(params):
            raise EngineError(8178, 1, 16, "The parameterized query expects a parameter, which was not supplied.")
        mine = [params.pop(0) for _ in range(n)]
        if self.denied:  # SELECT on a table or view the login has no grant on: error 229 (sql.denied)
            for table in sqlglot.parse_one(stmt, read="tsql").find_all(exp.Table):
                if table.name:
                    database = self._attached(table.catalog) if table.catalog else ctx["database"]
                    self._deny("SELECT", database or table.catalog, table.name)
        sqlite_sql = _translate(stmt, ctx["database"], self._served)
        self._current_database = ctx["database"]  # OBJECT_ID's one- and two-part names
        self._current_session = ctx["session"]  # APPLOCK_MODE answers for the calling session
        self._current_login = ctx["login"]  # SUSER_SNAME(), IS_SRVROLEMEMBER, IS_ROLEMEMBER answer for it
        self._conversion_failed = None
        try:
            cur = self._db.execute(sqlite_sql, mine)
            fetched = cur.fetchall()
        except sqlite3.Error as exc:
            if self._conversion_failed is not None:
                raise tsqlrules.conversion_error(self._conversion_failed) from None
            raise self._map_sqlite(exc, stmt, ctx["database"]) from None
        cols = [d[0] for d in cur.description or []]
        rows = [tuple(_from_sql(v) for v in r) for r in fetched]
        result.sets.append(ResultSet(cols, rows))

    @staticmethod
    def _map_sqlite(exc: sqlite3.Error, stmt: str, database: str) -> EngineError:
        text = str(exc)
        m = re.match(r"no such column: (.+)", text)
        if m:
            return EngineError(207, 1, 16, f"Invalid column name '{m.group(1).split('.')[-1]}'.")
        m = re.match(r"no such table: (.+)", text)
        if m:
            parts = m.group(1).split(".")
            name = f"{parts[0]}.dbo.{parts[1]}" if len(parts) == 2 else parts[0]
            # name it as it was written when the statement names it with the dbo schema
            written = re.search(rf"(?i)[\w\[\]]+\.(?:dbo)?\.?\[?{re.escape(parts[-1])}\]?", stmt)
            return EngineError(208, 1, 16, f"Invalid object name '{written.group(0) if written else name}'.")
        m = re.match(r"no such function: (.+)", text)
        if m:
            return EngineError(195, 10, 15, f"'{m.group(1)}' is not a recognized built-in function name.")
        if "syntax error" in text or "incomplete input" in text:
            return EngineError(102, 1, 15, f"Incorrect syntax near '{stmt.strip()[:30]}'.")
        return EngineError(50000, 1, 16, f"Statement failed in the lab's SQL engine: {text}")

    # ------------------------------------------------------------------------------------- procedures

    def _exec(self, stmt: str, params: list[Any], ctx: dict, result: EngineResult) -> None:
        m = _EXEC_RE.match(stmt)
        if not m:
            raise EngineError(102, 1, 15, f"Incorrect syntax near '{stmt[:30]}'.")
        ret_var, proc_text, args_text = m.group(1), m.group(2), m.group(3)
        named, positional = _parse_args(args_text, params, ctx["vars"])
        parts = [p.strip("[]") for p in proc_text.split(".")]
        name = parts[-1]
        db = (self._attached(parts[0]) or parts[0]) if len(parts) == 3 else ctx["database"]
        key = name.lower()
        procs = {
            "sp_update_job": ("msdb", self._sp_update_job),
            "sp_start_job": ("msdb", self._sp_start_job),
            "sp_stop_job": ("msdb", self._sp_stop_job),
            "sp_forcefullbackup": ("BizTalkMgmtDb", self._sp_force_full_backup),
            "sp_getapplock": (None, self._sp_getapplock),
            "sp_releaseapplock": (None, self._sp_releaseapplock),
        }
        entry = procs.get(key)
        if db.lower() not in self.hosted or (len(parts) == 3 and self._attached(parts[0]) is None):
            raise _no_database(parts[0] if len(parts) == 3 else db)  # a database of another instance, or not so named
        if entry is None or (entry[0] is not None and entry[0].lower() != db.lower()):
            raise EngineError(2812, 62, 16, f"Could not find stored procedure '{proc_text}'.")
        if entry[0] is not None:
            self._deny("EXECUTE", entry[0], next(p.split(".")[-1] for p in PROCEDURES if p.lower().endswith(key)))
        tsqlrules.check_parameters(name, named, positional)
        counts = self.counters["procedures"]
        counts[name] = counts.get(name, 0) + 1
        code = entry[1](named, positional, ctx, result)
        result.status = code
        if ret_var:
            ctx["vars"][ret_var.lower()] = code

    def _job(self, named: dict, positional: list, proc: str) -> tuple[str, str, int]:
        job_name = named.get("@job_name", positional[0] if positional else None)
        job_id = named.get("@job_id")
        if job_name is None and job_id is None:
            raise EngineError(14294, 1, 16, "Supply either @job_id or @job_name to identify the job.")
        if job_id is not None:
            row = self._db.execute("SELECT job_id, name, enabled FROM msdb.sysjobs WHERE job_id = ?",
                                   (str(job_id).upper(),)).fetchone()
            if row is None:
                raise EngineError(14262, 1, 16, f"The specified @job_id ('{job_id}') does not exist.")
        else:
            row = self._db.execute("SELECT job_id, name, enabled FROM msdb.sysjobs WHERE name = ?",
                                   (str(job_name),)).fetchone()
            if row is None:
                raise EngineError(14262, 1, 16, f"The specified @job_name ('{job_name}') does not exist.")
        return row[0], row[1], int(row[2])

    def _sp_update_job(self, named: dict, positional: list, ctx: dict, result: EngineResult) -> int:
        job_id, _name, _enabled = self._job(named, positional, "sp_update_job")
        # msdb's own rule: a login that neither owns the job nor is sysadmin may change it only through
        # SQLAgentOperatorRole, and then only @enabled (sp_update_job's source: @enable_only_used)
        owner = self._db.execute("SELECT owner_sid FROM msdb.sysjobs WHERE job_id = ?", (job_id,)).fetchone()[0]
        enable_only = set(named) - {"@job_name", "@job_id"} == {"@enabled"} and len(positional) <= 1
        if (str(owner or "").lower() != str(ctx["login"]).lower() and "sysadmin" not in self.login_roles
                and not (enable_only and "sqlagentoperatorrole" in self.login_roles)):
            raise EngineError(14525, 1, 16, JOB_OF_ANOTHER_LOGIN)
        if "@enabled" in named:
            value = named["@enabled"]
            try:
                enabled = int(value)
            except (TypeError, ValueError):
                raise EngineError(8114, 5, 16, "Error converting data type nvarchar to tinyint.") from None
            if enabled not in (0, 1):
                raise EngineError(14266, 1, 16, "The specified '@enabled' is invalid (valid values are: 0, 1).")
            self._db.execute("UPDATE msdb.sysjobs SET enabled = ?, date_modified = ?, "
                             "version_number = version_number + 1 WHERE job_id = ?",
                             (enabled, to_sql_text(self._now_local()), job_id))
            # every call writes the job's row (date_modified, version_number), as msdb's does; a change of
            # what the job does only when the flag differed (a rehearsal sets each job's current value)
            if enabled != int(_enabled):
                self.counters["changes"] += 1
        return 0

    def _sp_start_job(self, named: dict, positional: list, ctx: dict, result: EngineResult) -> int:
        job_id, name, _enabled = self._job(named, positional, "sp_start_job")
        if not self.agent_running:
            raise EngineError(22022, 1, 16, AGENT_NOT_RUNNING)
        backupjob.collide(self, job_id, name)  # a job_collision fault: its schedule started it an instant before
        self._start_run(job_id, name, ctx["login"])
        self.counters["changes"] += 1
        result.messages.append(f"Job '{name}' started successfully.")
        return 0

    def _start_run(self, job_id: str, name: str, user: str, started: datetime | None = None) -> None:
        """SQL Agent starts a run (asked by sp_start_job, by a schedule or by another job); lock held."""
        if name.lower() in self._running:
            raise EngineError(22022, 1, 16, f"SQLServerAgent Error: Request to run job {name} (from User {user}) "
                                            f"refused because the job is already running from a request by User "
                                            f"{self._running_user.get(name.lower(), user)}.")
        now = started or self._now_local()
        cur = self._db.execute("INSERT INTO msdb.sysjobactivity (session_id, job_id, run_requested_date, "
                               "run_requested_source, start_execution_date, last_executed_step_id) "
                               "VALUES (?, ?, ?, '4', ?, NULL)",
                               (self._session_id, job_id, to_sql_text(now), to_sql_text(now)))
        activity = cur.lastrowid
        failure = None
        queue = self._failures.get(name.lower())
        if queue:
            failure = queue.pop(0)
            steps = self._fail_steps.get(name.lower())
            self._fail_step_now[name.lower()] = steps.pop(0) if steps else None
        self._stop_requests[name.lower()] = (threading.Event(), [])
        thread = threading.Thread(target=self._run_job, args=(job_id, name, user, now, activity, failure),
                                  name=f"lab-sqlagent:{name}", daemon=True)
        self._running[name.lower()] = thread
        self._running_user[name.lower()] = user
        thread.start()

    def _sp_stop_job(self, named: dict, positional: list, ctx: dict, result: EngineResult) -> int:
        """Asks SQL Agent to stop a run: it stops once the running step can (a BACKUP finishes first), and the
        history says "canceled"; a job not running is refused with 22022."""
        _job_id, name, _enabled = self._job(named, positional, "sp_stop_job")
        if not self.agent_running:
            raise EngineError(22022, 1, 16, AGENT_NOT_RUNNING)
        user = ctx["login"]
        request = self._stop_requests.get(name.lower())
        if name.lower() not in self._running or request is None:
            raise EngineError(22022, 1, 16, f"SQLServerAgent Error: Request to stop job {name} (from User {user}) "
                                            "refused because the job is not currently running.")
        request[1].append(user)
        request[0].set()
        self.counters["changes"] += 1
        result.messages.append(f"Job '{name}' stopped successfully.")
        return 0

    def _sp_force_full_backup(self, named: dict, positional: list, ctx: dict, result: EngineResult) -> int:
        self._set_force_flag(1)  # BizTalk's procedure: UPDATE [dbo].[adm_BackupSettings] SET [ForceFull] = 1
        self.counters["changes"] += 1
        return 0

    def _sp_getapplock(self, named: dict, positional: list, ctx: dict, result: EngineResult) -> int:
        resource = named.get("@resource")
        mode = str(named.get("@lockmode") or "").lower()
        owner = str(named.get("@lockowner") or "Transaction").lower()
        if not resource or mode not in ("shared", "update", "intentshared", "intentexclusive", "exclusive"):
            return -999
        if owner != "session":
            return -999  # autocommit: no transaction to own the lock (SQL Server answers error 1223 too)
        key = str(resource)  # "compared binary and thus case-sensitive regardless of the collation" (Learn)
        holder = self._applocks.get(key)
        if holder is None:
            self._applocks[key] = ctx["session"]
            self._applock_counts[key] = 1
            return 0
        if holder == ctx["session"]:  # granted again: it is held until released as often as it was taken
            self._applock_counts[key] += 1
            return 0
        return -1  # @LockTimeout = 0 and held by another session: timed out at once

    def _sp_releaseapplock(self, named: dict, positional: list, ctx: dict, result: EngineResult) -> int:
        key = str(named.get("@resource") or "")
        if self._applocks.get(key) == ctx["session"]:
            self._applock_counts[key] -= 1
            if not self._applock_counts[key]:
                del self._applocks[key], self._applock_counts[key]
            return 0
        raise EngineError(1223, 1, 16, f"Cannot release the application lock (Database Principal: 'public', "
                                       f"Resource: '{named.get('@resource')}') because it is not currently held.",
                          status=-999)  # sp_releaseapplock's documented return value for a failed call

    # ------------------------------------------------------------------------------------- SQL Agent

    def _sleep(self, estate_seconds: float) -> None:
        """The lab clock's sleep, cut short when the engine closes (a stopping lab waits for no job)."""
        self._stopping.wait(self.clock.real(estate_seconds))

    def _step(self, name: str, estate_seconds: float) -> bool:
        """Run a job step for `estate_seconds`; True when a stop was asked for (sp_stop_job or the lab
        closing): the step then takes STOP_TAKES_SEC more to reach a point where it stops."""
        stop = self._stop_requests[name.lower()][0]
        end = time.monotonic() + self.clock.real(estate_seconds)
        while True:
            left = end - time.monotonic()
            if left <= 0:
                return stop.is_set() or self._stopping.is_set()
            if stop.wait(min(left, 0.05)) or self._stopping.is_set():
                self._sleep(STOP_TAKES_SEC)
                return True

    def _run_job(self, job_id: str, name: str, user: str, started: datetime, activity: int,
                 failure: str | None) -> None:
        """The simulated SQL Agent running one job: estate-time delays, then the outcome rows."""
        try:
            stopped = False
            own_step_rows = name.lower() == BACKUP_JOB.lower()  # it writes a row per step itself
            if own_step_rows:
                ok, step, stopped = backupjob.run(self, job_id, name, started, failure)
            elif name.startswith(CONTINUOUS_PREFIX):
                ok, step, stopped = False, "step 1 (Manage RefCountLog)", self._run_continuous(name)
            else:
                stopped = self._step(name, self.job_run_sec)
                ok, step = failure is None and not stopped, "step 1 (Run)"
            with self._lock:
                end = self._now_local()
                if stopped:
                    by = (self._stop_requests[name.lower()][1] or ["(the lab stopping)"])[0]
                    message = (f"The job was stopped prior to completion by User {by}.  "
                               f"{self._outcome_message(False, user, step).split('  ', 1)[1]}")
                    failure = None
                else:
                    message = self._outcome_message(ok, user, step)
                if failure is not None and not own_step_rows:
                    self._db.execute(
                        "INSERT INTO msdb.sysjobhistory (job_id, step_id, step_name, sql_message_id, sql_severity, "
                        "message, run_status, run_date, run_time, run_duration, operator_id_emailed, "
                        "retries_attempted, server) VALUES (?, 1, ?, 50000, 16, ?, 0, ?, ?, ?, 0, 0, ?)",
                        (job_id, step.split("(")[-1].rstrip(")"), failure, _int_date(started), _int_time(started),
                         _int_duration((end - started).total_seconds()), self.server_name))
                if failure is not None:
                    message = f"{message}  {failure}"
                hid = self._history(job_id, started, (end - started).total_seconds(), ok, message,
                                    status=3 if stopped else None)
                self._db.execute("UPDATE msdb.sysjobactivity SET stop_execution_date = ?, job_history_id = ? "
                                 "WHERE rowid = ?", (to_sql_text(end), hid, activity))
        finally:
            with self._lock:
                self._running.pop(name.lower(), None)
                self._running_user.pop(name.lower(), None)
                self._stop_requests.pop(name.lower(), None)

    def _run_continuous(self, name: str) -> bool:
        """ManageRefCountLog: runs until stopped, starting Message_Cleanup about every 10 s. True: stopped."""
        cleanup = SELF_STARTED_PREFIX + name[len(CONTINUOUS_PREFIX):]
        while not self._step(name, SELF_START_EVERY_SEC):
            with self._lock:
                row = self._db.execute("SELECT job_id, name FROM msdb.sysjobs WHERE name = ?", (cleanup,)).fetchone()
                if row is not None and row[1].lower() not in self._running:
                    self._start_run(row[0], row[1], AGENT_USER)
        return True

    def _schedule(self) -> None:
        """SQL Agent's schedules, as far as the lab models them: an enabled ManageRefCountLog that is not
        running is started (its schedule recurs every minute); at the Agent's start it is already running."""
        first = True
        while not self._stopping.is_set():
            with self._lock:
                for job_id, name in self._db.execute(
                        "SELECT job_id, name FROM msdb.sysjobs WHERE enabled = 1").fetchall():
                    if name.startswith(CONTINUOUS_PREFIX) and name.lower() not in self._running:
                        self._start_run(job_id, name, "(schedule)",
                                        started=self._agent_started if first else None)
                backupjob.schedule_tick(self, BACKUP_JOB)  # sql.backup_schedule_minutes
            first = False
            self._sleep(SCHEDULE_EVERY_SEC)

    def run_on_schedule(self, job_name: str) -> None:
        """Start a job as its schedule would (for tests: a Backup BizTalk Server run already going)."""
        with self._lock:
            row = self._db.execute("SELECT job_id, name FROM msdb.sysjobs WHERE name = ?", (job_name,)).fetchone()
            if row is None:
                raise LookupError(job_name)
            if row[1].lower() not in self._running:  # SQL Agent skips a scheduled run while one is going
                self._start_run(row[0], row[1], "(schedule)")
