"""The lab's SQL Server over TDS 7.4 (entsso/lab/tds.py), through the real client stack: pyodbc, unixODBC
and Debian's FreeTDS ODBC driver, TLS validated against the lab's CA. One CA, engine and endpoint for the
module: every test opens its own connections."""
from __future__ import annotations

import shutil
import subprocess
import threading
import time
from typing import Any

import pytest

from entsso.lab.pki import LabCA
from entsso.lab.clock import Clock
from entsso.lab.sqlengine import SqlEngine
from entsso.lab.tds import TdsEndpoint
from entsso.remote.sql import SqlCertificateUntrusted, SqlServer, SqlSettings, SqlTimeout, SqlUnreachable, freetds_conf
from selftest.lab.test_sqlengine import PASSWORD, USER, scenario_sql

pyodbc = pytest.importorskip("pyodbc")
SECRET_SERVER_SQL = "SELECT gi_SecretServer FROM SSODB.dbo.SSOX_GlobalInfo"


@pytest.fixture(scope="module")
def lab(tmp_path_factory) -> Any:
    d = tmp_path_factory.mktemp("tds")
    ca = LabCA("entsso lab CA")
    engine = SqlEngine(scenario_sql(), "SSOCLUSTER", Clock(speed=200))
    ep = TdsEndpoint(engine, "127.0.0.1", 0, USER, PASSWORD, certificate=ca.issue("SQL1", addresses=["127.0.0.1"]))
    ep.start()

    class Lab:
        pass

    lab = Lab()
    lab.ca, lab.engine, lab.ep, lab.dir = ca, engine, ep, d
    yield lab
    ep.stop()
    engine.close()


def settings(lab: Any, **kw: Any) -> SqlSettings:
    base: dict[str, Any] = {"server": "SQL1", "driver": "FreeTDS", "auth": "sql", "username": USER,
                            "ca_file": str(lab.ca.ca_path), "lab_address": "127.0.0.1", "lab_port": lab.ep.port,
                            "login_timeout": 5}
    base.update(kw)
    return SqlSettings(**base)


def rows(cur: Any) -> list[tuple[Any, ...]]:
    return [tuple(r) for r in cur.fetchall()]


def connect(lab: Any, database: str = "SSODB", password: str = PASSWORD, **kw: Any) -> Any:
    s = settings(lab, **kw)
    if s.freetds_section():
        freetds_conf.ensure(s)
    return pyodbc.connect(s.connection_string(database) + ";PWD={" + password + "};", autocommit=True, timeout=5)


def test_select_over_tls_validated_against_the_lab_ca(lab):
    before = lab.ep.counts.get("tls", 0)
    with connect(lab) as conn:
        assert rows(conn.cursor().execute(SECRET_SERVER_SQL)) == [("SSOCLUSTER",)]
        assert conn.getinfo(pyodbc.SQL_DRIVER_NAME) == "libtdsodbc.so"
    assert lab.ep.counts["tls"] == before + 1  # PRELOGIN ENCRYPT_ON: the whole session in TLS


def test_encryption_request_encrypts_the_login_only_and_off_sends_it_in_the_clear(lab):
    """FreeTDS's Encryption=request (MS Encrypt=no) offers ENCRYPT_OFF: SQL Server encrypts the LOGIN7
    packet only; Encryption=off (ENCRYPT_NOT_SUP) logs in without TLS."""
    before = dict(lab.ep.counts)
    s = settings(lab, encrypt=False)
    assert "Encryption=request" in s.connection_string()
    with pyodbc.connect(s.connection_string("SSODB") + ";PWD={" + PASSWORD + "};", autocommit=True, timeout=5) as c:
        assert c.cursor().execute(SECRET_SERVER_SQL).fetchone()[0] == "SSOCLUSTER"
    plain = s.connection_string("SSODB").replace("Encryption=request", "Encryption=off")
    with pyodbc.connect(plain + ";PWD={" + PASSWORD + "};", autocommit=True, timeout=5) as c:
        assert c.cursor().execute(SECRET_SERVER_SQL).fetchone()[0] == "SSOCLUSTER"
    assert lab.ep.counts.get("tls_login_only", 0) == before.get("tls_login_only", 0) + 1
    assert lab.ep.counts.get("plain", 0) == before.get("plain", 0) + 1


def test_parameters_travel_as_freetds_sends_them(lab):
    """pyodbc's ? parameters: FreeTDS prepares them (sp_prepexec, then sp_unprepare) with @P1…; each
    type comes back as pyodbc gives it for SQL Server."""
    before = lab.ep.counts.get("rpc:sp_prepexec", 0)
    values = ["SSO", 5, 2**40, 1.5, None, b"\x00\x01", "é" * 300]
    with connect(lab) as conn:
        cur = conn.cursor()
        cur.execute("SELECT " + ", ".join(f"? AS c{i}" for i in range(len(values))), *values)
        assert list(cur.fetchone()) == values
        assert [d[0] for d in cur.description] == [f"c{i}" for i in range(len(values))]
        cur.execute("SELECT gi_SecretServer AS s FROM SSODB.dbo.SSOX_GlobalInfo WHERE gi_SecretServer = ?",
                    "SSOCLUSTER")
        assert rows(cur) == [("SSOCLUSTER",)]
        cur.execute("EXEC msdb.dbo.sp_update_job @job_name = ?, @enabled = ?",
                    "Monitor BizTalk Server (BizTalkMgmtDb)", 1)
    assert lab.ep.counts["rpc:sp_prepexec"] >= before + 3


def test_a_multi_result_batch_is_drained_with_its_messages(lab):
    with connect(lab, database="msdb") as conn:
        cur = conn.cursor()
        cur.execute("SELECT 1 AS a; SELECT 2 AS b, 'x' AS c; SELECT name FROM msdb.dbo.sysjobs WHERE 1 = 0")
        assert rows(cur) == [(1,)]
        assert cur.nextset() and [d[0] for d in cur.description] == ["b", "c"] and rows(cur) == [(2, "x")]
        assert cur.nextset() and rows(cur) == []
        assert not cur.nextset()
        cur.execute("EXEC msdb.dbo.sp_start_job @job_name = ?", "Monitor BizTalk Server (BizTalkMgmtDb)")
        assert [m[0] for m in cur.messages if "started successfully" in m[1]] == ["[01000] (14243)"], cur.messages
    assert lab.engine.wait_idle(30)


def test_server_errors_arrive_with_their_number(lab):
    with connect(lab, database="msdb") as conn:
        cur = conn.cursor()
        with pytest.raises(pyodbc.ProgrammingError) as err:
            cur.execute("SELECT * FROM msdb.dbo.nosuch")
        assert err.value.args[0] == "42S02" and "Invalid object name" in err.value.args[1]
        assert "(208)" in err.value.args[1]
        with pytest.raises(pyodbc.ProgrammingError) as err:
            cur.execute("EXEC msdb.dbo.sp_start_job @job_name = ?", "no such job")
        assert "(14262)" in err.value.args[1]
        assert cur.execute("SELECT 1 AS one").fetchone()[0] == 1  # the session goes on after an error


def test_wrong_password_is_error_18456(lab):
    with pytest.raises(pyodbc.Error) as err:
        connect(lab, password="not-" + PASSWORD)
    assert "Login failed for user 'entsso'. (18456)" in err.value.args[1]
    assert PASSWORD not in str(err.value)


def test_a_certificate_from_another_ca_is_refused(lab):
    other = LabCA("someone else's CA")
    with pytest.raises(pyodbc.OperationalError) as err:
        connect(lab, ca_file=str(other.ca_path))
    assert err.value.args[0] == "08001"


def test_query_timeout_sends_attention_and_the_session_goes_on(lab):
    before = lab.ep.counts.get("attention", 0)
    with connect(lab) as conn:
        conn.timeout = 1
        cur = conn.cursor()
        started = time.monotonic()
        with pytest.raises(pyodbc.OperationalError) as err:
            cur.execute("WAITFOR DELAY '01:00:00'; SELECT 1 AS x")  # an hour of lab time: 18 s real
        assert err.value.args[0] == "HYT00" and time.monotonic() - started < 5
        assert conn.cursor().execute(SECRET_SERVER_SQL).fetchone()[0] == "SSOCLUSTER"
    assert lab.ep.counts["attention"] == before + 1


def test_cancel_from_another_thread_stops_the_statement(lab):
    with connect(lab) as conn:
        cur = conn.cursor()
        timer = threading.Timer(0.3, cur.cancel)
        timer.start()
        started = time.monotonic()
        with pytest.raises(pyodbc.Error) as err:
            cur.execute("WAITFOR DELAY '01:00:00'")
        timer.join()
        assert err.value.args[0] == "HY008" and time.monotonic() - started < 5
        assert conn.cursor().execute("SELECT 1 AS one").fetchone()[0] == 1


@pytest.mark.skipif(shutil.which("tsql") is None, reason="FreeTDS's tsql (freetds-bin) is not installed")
def test_a_foreign_client_tsql_reads_the_secret_server_and_sees_number_state_class(lab):
    """FreeTDS's own command-line client, another process, through the same freetds.conf section."""
    s = settings(lab)
    section = freetds_conf.ensure(s)
    proc = subprocess.run(["tsql", "-S", section, "-U", USER, "-P", PASSWORD, "-D", "SSODB"],
                          input=f"{SECRET_SERVER_SQL}\ngo\nSELEC 1\ngo\nexit\n", capture_output=True, text=True,
                          timeout=30, env={"FREETDSCONF": freetds_conf.path, "PATH": "/usr/bin:/bin"})
    assert "SSOCLUSTER" in proc.stdout, proc.stdout + proc.stderr
    assert "Msg 102 (severity 15, state 1) from LABSQL" in proc.stderr + proc.stdout
    assert "Incorrect syntax near 'SELEC'." in proc.stderr + proc.stdout


# --- the same failures as the operator meets them: through the suite's SqlServer (sql-review.md §3) ------
def test_a_certificate_from_another_ca_reaches_the_operator_as_certificate_not_trusted(lab):
    other = LabCA("someone else's CA")
    try:
        server = SqlServer(settings(lab, ca_file=str(other.ca_path)), PASSWORD)
        with pytest.raises(SqlCertificateUntrusted) as err:
            server.execute(SECRET_SERVER_SQL, database="SSODB")
    finally:
        other.cleanup()
    assert err.value.kind == "certificate not trusted"
    assert "sql.ca_file" in str(err.value) and PASSWORD not in str(err.value)


def test_a_port_where_nothing_listens_is_unreachable_not_a_certificate(lab):
    import socket

    with socket.socket() as s:  # a port that was free a moment ago
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = SqlServer(settings(lab, lab_port=port), PASSWORD)
    with pytest.raises(SqlUnreachable) as err:
        server.execute("SELECT 1 AS one")
    assert not isinstance(err.value, SqlCertificateUntrusted)


def test_a_statement_past_the_query_timeout_reaches_the_operator_as_a_timeout(lab):
    server = SqlServer(settings(lab, query_timeout=1), PASSWORD)
    try:
        with pytest.raises(SqlTimeout) as err:
            server.execute("WAITFOR DELAY '01:00:00'; SELECT 1 AS x")
        assert err.value.kind == "timeout"
    finally:
        server.close()


def test_info_messages_carry_sql_servers_numbers():
    from entsso.lab.tds import info_number

    assert info_number("Job 'Backup BizTalk Server (BizTalkMgmtDb)' started successfully.") == 14243
    assert info_number("Job 'Backup BizTalk Server (BizTalkMgmtDb)' stopped successfully.") == 14254
    assert info_number("anything PRINT says") == 0
