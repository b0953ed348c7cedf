"""Microsoft's ODBC Driver 18 for SQL Server against the lab's SQL Server (entsso/lab/tds.py): the inventory's
default driver, through the real client stack — pyodbc, unixODBC and libmsodbcsql-18 of the mssql-python-odbc
wheel, registered by scripts/bootstrap.sh in the project's own odbcinst.ini (selftest/conftest.py points
ODBCSYSINI at it). TDS 7.x with Encrypt=yes and TDS 8.0 with Encrypt=strict, sql.ca_file through OpenSSL's
trust (entsso.remote.sql.OpenSslTrust), SQL Server's message numbers, and each failure the driver prints,
as the transcripts under selftest/transcripts/odbc18/ hold it, named by the suite as one cause (the transcripts'
.json files say which: selftest/unit/test_transcripts.py walks them; a case's first word says how it was made:
connect, strict — a connection with Encrypt=strict — or statement).

`python -m selftest.lab.test_driver18 --capture` rewrites the transcripts from the driver (they are compared
with what it prints on every run)."""
from __future__ import annotations

import socket
import ssl
import sys
from pathlib import Path
from typing import Any

import pytest

from entsso.lab.clock import Clock
from entsso.lab.pki import LabCA
from entsso.lab.sqlengine import SqlEngine
from entsso.lab.tds import ALPN_TDS8, TdsEndpoint
from entsso.remote.errors import (SqlCertificateNameMismatch, SqlCertificateUntrusted, SqlError, SqlLoginFailed,
                                  SqlStrictRefused, SqlUnknownObject, SqlUnreachable)
from entsso.remote.sql import SqlServer, SqlSettings, openssl_trust
from selftest.lab.test_sqlengine import PASSWORD, USER, scenario_sql

pyodbc = pytest.importorskip("pyodbc")
D18 = "ODBC Driver 18 for SQL Server"
TRANSCRIPTS = Path(__file__).resolve().parents[1] / "transcripts" / "odbc18"
SECRET_SERVER_SQL = "SELECT gi_SecretServer FROM SSODB.dbo.SSOX_GlobalInfo"


class Lab:
    """One CA and engine; endpoints: `ep` (SQL Server 2022: TDS 7.x and 8.0, certificate for SQL1), `old` (before
    2022: no TDS 8.0), `wrong_name` (certificate for SQL9), `other_ca` (certificate from a CA not named)."""

    def __init__(self) -> None:
        self.ca = LabCA("entsso lab CA")
        self.other = LabCA("another CA (not the lab's)")
        self.engine = SqlEngine(scenario_sql(), "SSOCLUSTER", Clock(speed=200))
        addr = ["127.0.0.1"]
        self.ep = self._start(certificate=self.ca.issue("SQL1", addresses=addr))
        self.old = self._start(certificate=self.ca.issue("SQL1", addresses=addr), strict=False)
        self.wrong_name = self._start(certificate=self.ca.issue("SQL9", addresses=addr))
        self.other_ca = self._start(certificate=self.other.issue("SQL1", addresses=addr))

    def _start(self, **kw: Any) -> TdsEndpoint:
        ep = TdsEndpoint(self.engine, "127.0.0.1", 0, USER, PASSWORD, **kw)
        ep.start()
        return ep

    def close(self) -> None:
        for ep in (self.ep, self.old, self.wrong_name, self.other_ca):
            ep.stop()
        self.engine.close()
        self.ca.cleanup()
        self.other.cleanup()


@pytest.fixture(scope="module")
def lab() -> Any:
    if D18 not in pyodbc.drivers():
        pytest.fail(f"{D18!r} is not registered with unixODBC (pyodbc.drivers(): {pyodbc.drivers()}): run "
                    "scripts/bootstrap.sh (it registers mssql-python-odbc's driver in <venv>/etc/odbcinst.ini)")
    lab = Lab()
    yield lab
    lab.close()


def settings(lab: Any, ep: TdsEndpoint | None = None, **kw: Any) -> SqlSettings:
    base: dict[str, Any] = {"server": "SQL1", "driver": D18, "auth": "sql", "username": USER,
                            "ca_file": str(lab.ca.ca_path), "lab_address": "127.0.0.1",
                            "lab_port": (ep or lab.ep).port, "login_timeout": 5}
    base.update(kw)
    return SqlSettings(**base)


def driver_text(s: SqlSettings, sql: str = SECRET_SERVER_SQL, password: str = PASSWORD,
                database: str = "master") -> tuple[str, str]:
    """(SQLSTATE, the text) pyodbc gives for Driver 18's failure, as the suite's SqlServer connects."""
    if s.openssl_ca_file():
        openssl_trust.ensure(s)
    try:
        with pyodbc.connect(s.connection_string(database) + ";PWD={" + password + "};", autocommit=True,
                            timeout=s.login_timeout) as conn:
            conn.cursor().execute(sql).fetchall()
    except pyodbc.Error as exc:
        return exc.args[0], exc.args[1]
    raise AssertionError("no error")


# (transcript, endpoint, settings, password, statement, the suite's kind)
CASES: list[tuple[str, str, dict[str, Any], str, str, type[SqlError]]] = [
    ("connect-certificate-untrusted", "other_ca", {}, PASSWORD, SECRET_SERVER_SQL, SqlCertificateUntrusted),
    ("connect-name-mismatch", "wrong_name", {}, PASSWORD, SECRET_SERVER_SQL, SqlCertificateNameMismatch),
    ("strict-name-mismatch", "wrong_name", {"encrypt": "strict"}, PASSWORD, SECRET_SERVER_SQL,
     SqlCertificateNameMismatch),
    ("connect-login-failed-18456", "ep", {}, "Wrong-Password-1", SECRET_SERVER_SQL, SqlLoginFailed),
    ("strict-reset-before-2022", "old", {"encrypt": "strict"}, PASSWORD, SECRET_SERVER_SQL, SqlStrictRefused),
    ("statement-unknown-object-208", "ep", {}, PASSWORD, "SELECT * FROM SSODB.dbo.nope", SqlUnknownObject),
]


def transcript(name: str) -> tuple[dict[str, str], str]:
    from selftest.unit.test_transcripts import read_transcript

    return read_transcript(TRANSCRIPTS / f"{name}.txt")


@pytest.mark.parametrize("name, endpoint, over, password, sql, kind", CASES, ids=[c[0] for c in CASES])
def test_the_drivers_text_is_its_transcript_and_reaches_the_operator_as_one_named_cause(
        lab, name, endpoint, over, password, sql, kind):
    s = settings(lab, getattr(lab, endpoint), **over)
    headers, text = transcript(name)
    state, live = driver_text(s, sql, password)
    assert (state, live) == (headers["sqlstate"], text.rstrip("\n")), "the driver prints another text now"
    server = SqlServer(s, password)
    with pytest.raises(SqlError) as err:
        server.execute(sql)
    server.close()
    assert type(err.value) is kind, f"{name}: {err.value!r}"
    assert str(err.value).startswith(f"SQL Server SQL1 — {kind.kind}")
    assert password not in str(err.value) and PASSWORD not in str(err.value)


def test_a_port_where_nothing_listens_is_unreachable(lab):
    with socket.socket() as sock:  # a port that was free a moment ago
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = SqlServer(settings(lab, lab_port=port, login_timeout=2), PASSWORD)
    with pytest.raises(SqlUnreachable) as err:
        server.execute("SELECT 1 AS one")
    assert type(err.value) is SqlUnreachable and "could not be reached" in str(err.value)


def test_encrypt_yes_is_tds7_with_tls_validated_against_sql_ca_file(lab):
    before = lab.ep.counts.get("tls", 0)
    s = settings(lab)
    assert "Encrypt=yes" in s.connection_string() and "HostnameInCertificate=SQL1" in s.connection_string()
    server = SqlServer(s, PASSWORD)
    assert server.execute(SECRET_SERVER_SQL).scalar() == "SSOCLUSTER"
    conn = server._connection("master")
    assert conn.getinfo(pyodbc.SQL_DRIVER_NAME).startswith("libmsodbcsql-18")
    server.close()
    assert lab.ep.counts["tls"] == before + 1
    # the CA reached the driver through this run's own bundle, beside the machine's trust
    bundle = Path(openssl_trust.path or "")
    assert bundle.is_file() and lab.ca.ca_path.read_text().strip() in bundle.read_text()
    system = Path(ssl.get_default_verify_paths().openssl_cafile)
    if system.is_file():  # the machine's trust is kept: the CA is added to it, not put in its place
        first = system.read_text(errors="replace").split("-----END CERTIFICATE-----")[0]
        assert first.split("-----BEGIN CERTIFICATE-----")[-1] in bundle.read_text()


def test_encrypt_strict_is_tds8_tls_first_with_alpn(lab):
    before = lab.ep.counts.get("tls_strict", 0)
    s = settings(lab, encrypt="strict")
    assert "Encrypt=strict" in s.connection_string()
    server = SqlServer(s, PASSWORD)
    assert server.execute(SECRET_SERVER_SQL).scalar() == "SSOCLUSTER"
    server.close()
    assert lab.ep.counts["tls_strict"] == before + 1
    # what the endpoint offers a TLS-first client, as SQL Server 2022: ALPN tds/8.0, TLS 1.3
    ctx = ssl.create_default_context(cafile=str(lab.ca.ca_path))
    ctx.set_alpn_protocols([ALPN_TDS8])
    with socket.create_connection(("127.0.0.1", lab.ep.port), timeout=5) as raw, \
            ctx.wrap_socket(raw, server_hostname="SQL1") as tls:
        assert tls.selected_alpn_protocol() == ALPN_TDS8 and tls.version() == "TLSv1.3"


def test_sp_start_job_says_14243_as_sql_server_does(lab):
    s = settings(lab)
    openssl_trust.ensure(s)
    with pyodbc.connect(s.connection_string("msdb") + ";PWD={" + PASSWORD + "};", autocommit=True, timeout=5) as c:
        cur = c.cursor()
        cur.execute("EXEC msdb.dbo.sp_start_job @job_name = N'Monitor BizTalk Server (BizTalkMgmtDb)'")
        started = list(cur.messages)
        assert lab.engine.wait_idle(30)
    assert started == [("[01000] (14243)", f"[Microsoft][{D18}][SQL Server]Job 'Monitor BizTalk Server "
                                           "(BizTalkMgmtDb)' started successfully.")]


def capture() -> None:
    """Rewrite selftest/transcripts/odbc18/ from the driver (python -m selftest.lab.test_driver18 --capture)."""
    import importlib.metadata

    import selftest.conftest  # noqa: F401 - ODBCSYSINI: the project's odbcinst.ini

    lab = Lab()
    version = importlib.metadata.version("mssql-python-odbc")
    try:
        for name, endpoint, over, password, sql, _kind in CASES:
            s = settings(lab, getattr(lab, endpoint), **over)
            state, text = driver_text(s, sql, password)
            conn = s.connection_string()
            (TRANSCRIPTS / f"{name}.txt").write_text(
                f"# source: Microsoft ODBC Driver 18 for SQL Server (libmsodbcsql-18 of mssql-python-odbc {version}, "
                f"Debian build) through pyodbc {pyodbc.version} and unixODBC, against the lab's SQL Server "
                "(entsso/lab/tds.py); captured by `python -m selftest.lab.test_driver18 --capture`: pyodbc.Error's "
                "args[1], verbatim\n"
                f"# endpoint: {endpoint} ({_ENDPOINTS[endpoint]})\n"
                f"# connection: {conn}\n"
                f"# statement: {sql}\n"
                f"# sqlstate: {state}\n"
                f"{text}\n", encoding="utf-8")
            print(name, state, text)
    finally:
        lab.close()


_ENDPOINTS = {"ep": "SQL Server 2022: TDS 7.x and 8.0, a certificate for SQL1 from the CA sql.ca_file names",
              "old": "SQL Server before 2022: no TDS 8.0, a TLS-first client is reset",
              "wrong_name": "a certificate for SQL9 from the CA sql.ca_file names",
              "other_ca": "a certificate for SQL1 from a CA sql.ca_file does not name"}


if __name__ == "__main__" and "--capture" in sys.argv:
    capture()
