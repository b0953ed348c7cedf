"""The lab's SQL endpoint as clients we did not write see it (issue 27 item 6): python-tds (pytds) and
Microsoft's JavaScript driver tedious, each against an endpoint of this module, one behaviour per test:
a procedure's return status over RPC, informational messages' numbers, cancel (the cancelled request's
reply, then the attention acknowledgement), and SQL Server's errors with number, state and class."""
from __future__ import annotations

import time
from typing import Any

import pytest

from entsso.lab.clock import Clock
from entsso.lab.pki import LabCA
from entsso.lab.sqlengine import SqlEngine
from entsso.lab.tds import TdsEndpoint
from selftest.foreign.clients import Server, pytds_connect, tedious, tedious_missing
from selftest.lab.test_sqlengine import PASSWORD, USER, scenario_sql

pytds = pytest.importorskip("pytds", reason="python-tds is not installed (pip install -e '.[test]')")
needs_tedious = pytest.mark.skipif(tedious_missing() is not None, reason=str(tedious_missing()))
JOB = "Monitor BizTalk Server (BizTalkMgmtDb)"


@pytest.fixture(scope="module")
def endpoint() -> Any:
    ca = LabCA("entsso lab CA")
    engine = SqlEngine(scenario_sql(), "SSOCLUSTER", Clock(speed=200))
    ep = TdsEndpoint(engine, "127.0.0.1", 0, USER, PASSWORD, certificate=ca.issue("SQL1", addresses=["127.0.0.1"]))
    ep.start()
    ep.ca_file = str(ca.ca_path)
    yield ep
    ep.stop()
    engine.close()
    ca.cleanup()


@pytest.fixture
def server(endpoint) -> Server:
    return Server("127.0.0.1", endpoint.port, "SQL1", USER, PASSWORD, endpoint.ca_file)


def _lock(cur: Any, resource: str) -> int:
    cur.callproc("sp_getapplock", {"@Resource": resource, "@LockMode": "Exclusive", "@LockOwner": "Session",
                                   "@LockTimeout": 0})
    return int(cur.get_proc_return_status())


def test_rpc_return_status_is_the_procedures_pytds(server):
    """sp_getapplock called as an RPC: 0 for the first session, -1 (timed out) for a second one while the
    first holds it (Learn, sp_getapplock's return code values), in the RETURNSTATUS token."""
    with pytds_connect(server) as one, pytds_connect(server) as two:
        assert _lock(one.cursor(), "rpc-status") == 0
        assert _lock(two.cursor(), "rpc-status") == -1
        cur = two.cursor()
        with pytest.raises(pytds.Error) as err:  # releasing another session's lock: 1223, status -999
            cur.callproc("sp_releaseapplock", {"@Resource": "rpc-status", "@LockOwner": "Session"})
        assert err.value.msg_no == 1223 and cur.get_proc_return_status() == -999


def test_info_message_carries_sql_servers_number_pytds(server):
    with pytds_connect(server) as conn:
        cur = conn.cursor()
        cur.callproc("msdb.dbo.sp_start_job", {"@job_name": JOB})
        assert cur.get_proc_return_status() == 0
        (_cls, info), = cur.messages
        assert (info.msg_no, info.severity, info.text) == (14243, 0, f"Job '{JOB}' started successfully.")


@pytest.mark.parametrize(("sql", "number", "state", "klass", "text"), [
    ("SELECT * FROM SSODB.dbo.NoSuchTable", 208, 1, 16, "Invalid object name 'SSODB.dbo.NoSuchTable'."),
    ("SELECT no_such_column FROM SSODB.dbo.SSOX_GlobalInfo", 207, 1, 16, "Invalid column name 'no_such_column'."),
])
def test_errors_carry_number_state_and_class_pytds(server, sql, number, state, klass, text):
    with pytds_connect(server) as conn, pytest.raises(pytds.ProgrammingError) as err:
        conn.cursor().execute(sql)
    assert (err.value.msg_no, err.value.state, err.value.severity, err.value.text) == (number, state, klass, text)


def test_a_wrong_password_is_18456_state_1_class_14_pytds(server):
    with pytest.raises(pytds.OperationalError) as err:
        pytds_connect(server, password="not-the-password")
    assert (err.value.msg_no, err.value.state, err.value.severity) == (18456, 1, 14)


def test_query_timeout_cancels_and_the_session_goes_on_pytds(server, endpoint):
    """pytds' query timeout: the read times out, and the next request first sends the Attention and reads
    until its acknowledgement (DONE with DONE_ATTN); the session answers it."""
    before = endpoint.counts.get("attention", 0)
    with pytds_connect(server, timeout=1) as conn:
        cur = conn.cursor()
        started = time.monotonic()
        with pytest.raises(pytds.TimeoutError):
            cur.execute("WAITFOR DELAY '01:00:00'; SELECT 1 AS late")  # an hour of lab time: 18 s real
        assert time.monotonic() - started < 5
        cur.execute("SELECT 2 AS two")
        assert cur.fetchall() == [(2,)]
    assert endpoint.counts["attention"] == before + 1


@needs_tedious
def test_cancel_answers_the_request_then_acknowledges_the_attention_tedious(server):
    """tedious reads one message for the cancelled request and one for the Attention (MS-TDS 3.3.5.9,
    4.19.2): a lone acknowledgement left it waiting until its cancel timeout killed the connection."""
    seen = tedious(server, ["cancel"])["cancel"]
    assert seen["error"]["code"] == "ECANCEL" and seen["error"]["message"] == "Canceled.", seen
    assert seen["ms"] < 3000, seen
    assert seen["after"]["error"] is None and seen["after"]["rows"] == [[1]], seen


@needs_tedious
def test_rpc_return_status_and_info_number_tedious(server):
    seen = tedious(server, ["applock", "start_job"], job=JOB)
    lock = seen["applock"]
    assert lock["first"]["returnStatuses"] == [0] and lock["second"]["returnStatuses"] == [-1], lock
    assert lock["release_other"]["error"]["number"] == 1223 and lock["release_other"]["returnStatuses"] == [-999]
    assert lock["release"]["error"] is None and lock["release"]["returnStatuses"] == [0], lock
    assert [(i["number"], i["class"]) for i in seen["start_job"]["infos"]] == [(14243, 0)], seen["start_job"]


# ------------------------------------------------------------------------------------------ applocks


def test_applock_names_are_case_sensitive_pytds(server):
    """"The value is compared binary and thus is case sensitive regardless of the collation" (Learn,
    sp_getapplock): 'Case-Probe' and 'case-probe' are two locks."""
    with pytds_connect(server) as one, pytds_connect(server) as two:
        assert _lock(one.cursor(), "Case-Probe") == 0
        assert _lock(two.cursor(), "case-probe") == 0
        assert _lock(two.cursor(), "Case-Probe") == -1


def test_an_applock_taken_twice_needs_two_releases_pytds(server):
    """A lock requested again by its owner is granted again and held until released as often (Learn,
    sp_releaseapplock)."""
    with pytds_connect(server) as one, pytds_connect(server) as two:
        c1 = one.cursor()
        assert _lock(c1, "twice") == 0 and _lock(c1, "twice") == 0
        c1.callproc("sp_releaseapplock", {"@Resource": "twice", "@LockOwner": "Session"})
        assert c1.get_proc_return_status() == 0
        assert _lock(two.cursor(), "twice") == -1  # still held: one release of two
        c1.callproc("sp_releaseapplock", {"@Resource": "twice", "@LockOwner": "Session"})
        assert _lock(two.cursor(), "twice") == 0


# ------------------------------------------------------------------------------------------ the engine's T-SQL


def _error(server: Server, sql: str, params: tuple[Any, ...] = ()) -> tuple[int, int, int, str]:
    with pytds_connect(server) as conn:
        with pytest.raises(pytds.Error) as err:
            conn.cursor().execute(sql, params or None)
    e = err.value
    return e.msg_no, e.state, e.severity, e.text


def test_a_string_that_is_not_an_int_is_245_pytds(server):
    assert _error(server, "SELECT name FROM msdb.dbo.sysjobs WHERE enabled = 'yes'") == (
        245, 1, 16, "Conversion failed when converting the varchar value 'yes' to data type int.")
    # a column's values convert one by one: the first that does not is named
    number, _state, _klass, text = _error(server, "SELECT COUNT(*) AS n FROM msdb.dbo.sysjobs WHERE name = 1")
    assert number == 245 and text.startswith("Conversion failed when converting the nvarchar value '")
    with pytds_connect(server) as conn:  # one that converts is compared as an int
        cur = conn.cursor()
        cur.execute("SELECT COUNT(*) AS n FROM msdb.dbo.sysjobs WHERE enabled = '1'")
        assert cur.fetchone()[0] > 0


def test_a_column_neither_grouped_nor_aggregated_is_8120_pytds(server):
    assert _error(server, "SELECT name, COUNT(*) AS n FROM msdb.dbo.sysjobs")[:3] == (8120, 1, 16)
    assert _error(server, "SELECT j.name, COUNT(*) AS n FROM msdb.dbo.sysjobs AS j GROUP BY j.enabled")[3] == (
        "Column 'j.name' is invalid in the select list because it is not contained in either an aggregate "
        "function or the GROUP BY clause.")
    with pytds_connect(server) as conn:
        cur = conn.cursor()
        cur.execute("SELECT enabled, COUNT(*) AS n FROM msdb.dbo.sysjobs GROUP BY enabled ORDER BY enabled")
        assert [r[0] for r in cur.fetchall()] == [0, 1]


def test_an_unknown_procedure_parameter_is_8145_pytds(server):
    assert _error(server, "EXEC msdb.dbo.sp_update_job @job_name = %s, @enabledd = 1", (JOB,)) == (
        8145, 2, 16, "@enabledd is not a parameter for procedure sp_update_job.")
    with pytds_connect(server) as conn, pytest.raises(pytds.Error) as err:  # by RPC too
        conn.cursor().callproc("msdb.dbo.sp_update_job", {"@job_name": JOB, "@enable": 1})
    assert err.value.msg_no == 8145


@pytest.mark.parametrize(("sql", "number", "text"), [
    ("INSERT INTO msdb.dbo.sysjobs (name) VALUES ('x')", 229,
     "The INSERT permission was denied on the object 'sysjobs', database 'msdb', schema 'dbo'."),
    ("UPDATE SSODB.dbo.SSOX_GlobalInfo SET gi_SecretServer = 'NODE9'", 229,
     "The UPDATE permission was denied on the object 'SSOX_GlobalInfo', database 'SSODB', schema 'dbo'."),
    ("DELETE FROM dbo.SSOX_Servers", 229,
     "The DELETE permission was denied on the object 'SSOX_Servers', database 'SSODB', schema 'dbo'."),
    ("DELETE FROM dbo.NoSuchTable", 208, "Invalid object name 'dbo.NoSuchTable'."),
])
def test_a_change_without_the_grant_names_its_object_pytds(server, sql, number, text):
    assert _error(server, sql)[0::3] == (number, text)


def test_if_else_version_and_db_name_run_pytds(server):
    with pytds_connect(server) as conn:
        cur = conn.cursor()
        cur.execute("IF DB_NAME() = N'SSODB' SELECT 'here' AS answer ELSE SELECT 'elsewhere' AS answer")
        assert cur.fetchall() == [("here",)]
        cur.execute("IF EXISTS (SELECT 1 FROM msdb.dbo.sysjobs WHERE name = %s) BEGIN SELECT 1 AS a; SELECT 2 AS b; "
                    "END ELSE SELECT %s AS c", ("no such job", "else"))
        assert cur.fetchall() == [("else",)]
        cur.execute("SELECT @@VERSION AS v, DB_NAME() AS d, DB_NAME(4) AS m, DB_ID(N'msdb') AS i")
        version, database, msdb, msdb_id = cur.fetchone()
        assert version.startswith("Microsoft SQL Server 2022 (RTM) - 16.0.1000.6 (X64)")
        assert (database, msdb, msdb_id) == ("SSODB", "msdb", 4)
        cur.execute("SELECT LEFT(@@VERSION, 20) AS v, RIGHT(N'abcdef', 2) AS r")  # SQLite has no LEFT()
        assert cur.fetchone() == ("Microsoft SQL Server", "ef")
