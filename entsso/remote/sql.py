"""T-SQL over ODBC: the only module that speaks to SQL Server.

`SqlServer` builds the ODBC connection string (ODBC Driver 18/17 or FreeTDS; Encrypt=yes by default;
Kerberos or a SQL login from the environment), runs statements with autocommit on and every result set
drained (BACKUP and job control need both), and counts and times every statement. The lab's inventory
takes the same path: pyodbc, Debian's FreeTDS driver, TDS with TLS validated against the lab's CA; its
`lab:` section only says at which address and port the lab's SQL Server listens (as a hosts entry would).

Microsoft's ODBC Driver 18 (and 17) on Linux has no CA-file keyword: it validates with OpenSSL's default
trust, so for `sql.ca_file` this module gives the process a bundle of its own (the trust it had plus the CA
file) and points SSL_CERT_FILE at it (OpenSslTrust); on Windows it uses Windows' certificate store only, and
`sql.ca_file` is refused there with the fix. `encrypt: strict` is TDS 8.0 (Encrypt=strict, Driver 18 only).

FreeTDS 1.3 takes no CA file in the connection string (its `ServerCertificate` keyword is newer): it
validates the server's certificate only when freetds.conf names a `ca file` (sql-review.md M6). For
`sql.ca_file` this module writes a freetds.conf section of its own per server (in a private temporary
directory, pointed at by FREETDSCONF) and connects with SERVERNAME=<that section>.
"""
from __future__ import annotations

import contextlib
import hashlib
import socket
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from entsso.remote.errors import (SqlCancelled, SqlCertificateNameMismatch, SqlCertificateUntrusted, SqlError,
                                  SqlKerberosFailed, SqlLoginFailed, SqlPermissionDenied, SqlStrictRefused, SqlTimeout,
                                  SqlUnknownObject, SqlUnreachable)
from entsso.remote.sqlerrors import PERMISSION_NUMBERS as PERMISSION_NUMBERS
from entsso.remote.sqlerrors import classify as classify
from entsso.remote.trust import FreeTdsConf as FreeTdsConf
from entsso.remote.trust import OpenSslTrust as OpenSslTrust
from entsso.remote.trust import freetds_conf as freetds_conf
from entsso.remote.trust import openssl_trust as openssl_trust

# the error families and the driver-text classification live beside this module; their names stay importable
# from here, where callers have always taken them
__all__ = ["DRIVERS", "FreeTdsConf", "OpenSslTrust", "PERMISSION_NUMBERS", "Result", "SqlCancelled",
           "SqlCertificateNameMismatch", "SqlCertificateUntrusted", "SqlError", "SqlKerberosFailed", "SqlLoginFailed",
           "SqlPermissionDenied", "SqlServer", "SqlSettings", "SqlStrictRefused", "SqlTimeout", "SqlUnknownObject",
           "SqlUnreachable", "StatementLog", "StatementRecord", "classify", "freetds_conf", "openssl_trust"]

DRIVERS = ("ODBC Driver 18 for SQL Server", "ODBC Driver 17 for SQL Server", "FreeTDS")


@dataclass(frozen=True)
class SqlSettings:
    server: str  # host name (or address)
    instance: str | None = None
    port: int | None = None
    driver: str = "ODBC Driver 18 for SQL Server"
    encrypt: bool | str = True  # True (Encrypt=yes), False, or "strict" (TDS 8.0, ODBC Driver 18 only)
    trust_server_certificate: bool = False
    auth: str = "kerberos"  # kerberos | sql
    username: str | None = None
    login_timeout: int = 15
    query_timeout: int = 0  # 0 = no limit (pyodbc's conn.timeout)
    connect_retry_count: int | None = None  # ConnectRetryCount (Driver 17.2+/18 idle-connection resiliency)
    host_name_in_certificate: str | None = None  # HostnameInCertificate (Driver 18): the name the certificate carries
    server_spn: str | None = None  # ServerSPN: the SPN Kerberos asks a ticket for, instead of the driver's own
    ca_file: str | None = None  # PEM of the CA that issued SQL Server's certificate (FreeTDS: freetds.conf `ca file`)
    retry_window: float = 0.0  # seconds within which a statement safe to repeat is retried on a broken connection
    lab_address: str | None = None  # set for the lab: the address and port its SQL Server listens on
    lab_port: int | None = None

    @property
    def host(self) -> str:
        """The host name (or address) connected to: the lab's address for the lab, else the server."""
        return self.lab_address or self.server

    @property
    def tcp_port(self) -> int | None:
        return self.lab_port or self.port

    @property
    def strict(self) -> bool:
        return self.encrypt == "strict"

    def openssl_ca_file(self) -> str | None:
        """sql.ca_file for Microsoft's driver on Linux and macOS: it validates with OpenSSL's default trust,
        which the suite widens by this file (OpenSslTrust); None for FreeTDS (freetds.conf) or no ca_file."""
        if self.driver == "FreeTDS" or not self.ca_file or not self.encrypt or self.trust_server_certificate:
            return None
        return self.ca_file

    def freetds_section(self) -> str | None:
        """The name of this server's freetds.conf section (FreeTDS with a CA file), else None."""
        if self.driver != "FreeTDS" or not self.ca_file or not self.encrypt:
            return None
        key = f"{self.host}|{self.tcp_port}|{self.instance}|{self.ca_file}"
        return "entsso-" + hashlib.sha256(key.encode()).hexdigest()[:12]

    def connection_string(self, database: str = "master") -> str:
        """The ODBC connection string, without the password (added at connect time)."""
        if self.driver not in DRIVERS:
            raise ValueError(f"unknown ODBC driver {self.driver!r}; use one of {', '.join(DRIVERS)}")
        host, port = self.host, self.tcp_port
        if self.encrypt not in (True, False, "strict"):
            raise ValueError(f"sql.encrypt: {self.encrypt!r}; use true, false or strict")
        if self.strict and self.driver != "ODBC Driver 18 for SQL Server":
            raise ValueError(f"encrypt: strict (TDS 8.0) needs ODBC Driver 18 for SQL Server, not {self.driver}; "
                             "set `sql.driver: ODBC Driver 18 for SQL Server`, or `sql.encrypt: true`")
        if self.driver != "FreeTDS" and self.ca_file and sys.platform == "win32":
            raise ValueError(f"sql.ca_file: {self.driver} on Windows validates against Windows' certificate store "
                             "only: import the CA there (Import-Certificate -FilePath <ca.pem> -CertStoreLocation "
                             "Cert:\\LocalMachine\\Root) and remove sql.ca_file")
        if self.driver == "FreeTDS":
            section = self.freetds_section()
            if section:  # host, port and the CA are in the section (see the module's docstring)
                parts = ["DRIVER={FreeTDS}", f"SERVERNAME={section}", "TDS_Version=7.4"]
            elif self.instance and not port:
                parts = ["DRIVER={FreeTDS}", f"SERVER={host}\\{self.instance}", "TDS_Version=7.4"]
            else:
                parts = ["DRIVER={FreeTDS}", f"SERVER={host}", f"PORT={port or 1433}", "TDS_Version=7.4"]
            # FreeTDS's own Encrypt=no is "request" (TLS for the login packet at least, when the server has a
            # certificate): "off" would send the password in the clear
            parts.append(f"Encryption={'require' if self.encrypt else 'request'}")
            if self.host_name_in_certificate or self.server_spn:
                raise ValueError("FreeTDS has neither HostnameInCertificate nor ServerSPN; use ODBC Driver 18")
        else:
            target = host
            if port:
                target = f"tcp:{host},{port}"
            elif self.instance:
                target = f"{host}\\{self.instance}"
            encrypt = "strict" if self.strict else "yes" if self.encrypt else "no"
            parts = [f"DRIVER={{{self.driver}}}", f"SERVER={target}", f"Encrypt={encrypt}",
                     f"TrustServerCertificate={'yes' if self.trust_server_certificate else 'no'}"]
            if self.connect_retry_count is not None:
                parts.append(f"ConnectRetryCount={self.connect_retry_count}")
            # the lab: connected by address, as a hosts entry would resolve sql.server: the certificate is
            # checked against sql.server (Driver 18 checks no IP address against the certificate)
            cert_name = self.host_name_in_certificate or (
                self.server if self.lab_address and self.driver == "ODBC Driver 18 for SQL Server" else None)
            if cert_name:
                if self.driver != "ODBC Driver 18 for SQL Server":
                    raise ValueError(f"HostnameInCertificate needs ODBC Driver 18 for SQL Server, not {self.driver}")
                parts.append(f"HostnameInCertificate={cert_name}")
            if self.server_spn:
                if self.auth != "kerberos":
                    raise ValueError("ServerSPN is for Kerberos (Trusted_Connection) only")
                parts.append(f"ServerSPN={self.server_spn}")
        parts.append(f"DATABASE={database}")
        parts.append("APP=entsso-upgrade")
        if self.auth == "kerberos":
            parts.append("Trusted_Connection=yes")
        else:
            parts.append(f"UID={self.username}")
        return ";".join(parts)




@dataclass(frozen=True)
class StatementRecord:
    sql: str  # the statement text (parameters are never recorded)
    database: str
    started: float
    seconds: float
    rows: int
    outcome: str  # ok | error


@dataclass
class StatementLog:
    records: list[StatementRecord] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    # called with (instance name, record, its answer or None when it failed): the run's capture
    # (entsso.change.capture) keeps what each read returned; the log itself keeps no rows
    listeners: list[Callable[[str, StatementRecord, Result | None], None]] = field(default_factory=list, repr=False)
    # called with (instance name, the statement's first words, attempt, error, wait in seconds) before each
    # repeat of a statement whose connection broke (SqlServer.execute, repeatable): the run's journal
    retry_listeners: list[Callable[[str, str, int, str, float], object]] = field(default_factory=list, repr=False)

    def add(self, record: StatementRecord, answer: Result | None = None, server: str = "") -> None:
        with self._lock:
            self.records.append(record)
        for listener in self.listeners:
            listener(server, record, answer)

    def count(self) -> int:
        with self._lock:
            return len(self.records)


@dataclass(frozen=True)
class Result:
    """All result sets of one batch, plus the server's info messages."""

    sets: list[list[dict[str, Any]]]
    messages: list[str]

    @property
    def rows(self) -> list[dict[str, Any]]:
        """The first result set (most statements have one)."""
        return self.sets[0] if self.sets else []

    def scalar(self) -> Any:
        rows = self.rows
        if not rows:
            return None
        return next(iter(rows[0].values()))


# A TDS PRELOGIN message (MS-TDS 2.2.6.5): packet header (type 0x12, status EOM, length, SPID 0, packet 1), the
# option table (VERSION at offset 11 length 6, ENCRYPTION at 17 length 1, terminator) and the data (version
# 0, ENCRYPT_ON). SQL Server answers with a PRELOGIN response in a tabular-result packet (type 0x04).
_PRELOGIN = bytes([0x12, 0x01, 0x00, 0x1A, 0x00, 0x00, 0x01, 0x00,
                   0x00, 0x00, 0x0B, 0x00, 0x06, 0x01, 0x00, 0x11, 0x00, 0x01, 0xFF,
                   0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01])


def _answers_prelogin(host: str, port: int, timeout: float = 3.0) -> bool:
    """Whether host:port answers a TDS PRELOGIN (SQL Server listening and speaking TDS there). Sends no
    credentials; the connection is closed before any TLS or login."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(_PRELOGIN)
            head = sock.recv(8)
    except OSError:
        return False
    return len(head) >= 1 and head[0] == 0x04


class SqlServer:
    """One SQL Server. Connections are opened per database and kept; statements are serialised per
    connection (pyodbc connections are not for concurrent use)."""

    def __init__(self, settings: SqlSettings, password: Any = None, statements: StatementLog | None = None,
                 *, reconnect: bool = True) -> None:
        self.settings = settings
        # reconnect=False: a connection that broke stays broken (its session's state, e.g. the estate lock,
        # went with it); every later statement on that database fails instead of running in a new session
        self._reconnect = reconnect
        self._lost: dict[str, str] = {}
        self._password = password
        self.statements = statements if statements is not None else StatementLog()
        self._conns: dict[str, Any] = {}
        self._lock = threading.RLock()
        # a retry window ran out without SQL Server answering: later statements fail at once (no window each)
        # until one is answered
        self._gave_up = False

    @property
    def name(self) -> str:
        s = self.settings
        return s.server + (f"\\{s.instance}" if s.instance else "") + (f",{s.port}" if s.port else "")

    def __repr__(self) -> str:
        return f"SqlServer({self.name!r})"

    def _secret(self) -> str | None:
        p = self._password
        return p.get_secret_value() if hasattr(p, "get_secret_value") else p

    def _connect(self, database: str) -> Any:
        s = self.settings
        import pyodbc  # imported late: needs unixODBC's libodbc.so.2

        pyodbc.pooling = False  # close() must end the session (the estate lock is session-owned): sql-review m8
        if s.freetds_section():
            freetds_conf.ensure(s)
        elif s.openssl_ca_file() and sys.platform != "win32":
            openssl_trust.ensure(s)
        conn_str = s.connection_string(database)
        if s.auth == "sql":
            # brace-quoted with } doubled (ODBC); the closing ";" too: FreeTDS ends a braced value at "};" only
            conn_str += ";PWD={" + (self._secret() or "").replace("}", "}}") + "};"
        conn = pyodbc.connect(conn_str, autocommit=True, timeout=s.login_timeout)
        conn.timeout = s.query_timeout
        return conn

    def _connection(self, database: str) -> Any:
        conn = self._conns.get(database)
        if conn is None and database in self._lost:
            raise SqlUnreachable(f"SQL Server {self.name} — unreachable: the connection to {database} was lost "
                                 f"({self._lost[database]}) and is not re-established: the state of its session "
                                 "went with it")
        if conn is None:
            try:
                conn = self._connect(database)
            except Exception as exc:  # noqa: BLE001 - classified below
                raise self._freetds_tls(self._classify(exc, connecting=True)) from None
            self._conns[database] = conn
        return conn

    def _freetds_tls(self, err: SqlError) -> SqlError:
        """FreeTDS reports a refused TLS certificate as it reports a server it cannot reach (20002 "Adaptive
        Server connection failed", 08001). When the port does accept a TCP connection, the server is there:
        with encryption required, the certificate is then the likeliest cause, and the operator is told so."""
        s = self.settings
        if not (isinstance(err, SqlUnreachable) and s.driver == "FreeTDS" and s.encrypt and s.tcp_port):
            return err
        if not _answers_prelogin(s.host, s.tcp_port):
            return err  # nothing listens there, or nothing that speaks TDS: unreachable it is
        return SqlCertificateUntrusted(
            f"SQL Server {self.name} — certificate not trusted (most likely): {s.host}:{s.tcp_port} answers TDS's "
            f"PRELOGIN, but FreeTDS could not open a session with encryption required, and FreeTDS does not say "
            f"why ({err}). Check that sql.ca_file ({s.ca_file or 'not set: FreeTDS then trusts no certificate'}) is "
            f"the CA that issued SQL Server's certificate and that the certificate names {s.host}; "
            f"`openssl s_client` cannot see it (TLS runs inside TDS), but FreeTDS's `tsql -S` with TDSDUMP set shows "
            "the handshake.", number=None, sqlstate=err.sqlstate)

    def _classify(self, exc: Exception, *, connecting: bool = False) -> SqlError:
        args = exc.args
        sqlstate = args[0] if args and isinstance(args[0], str) and len(args[0]) == 5 else None
        text = args[1] if len(args) > 1 and isinstance(args[1], str) else str(exc)
        secret = self._secret()
        if secret:
            text = text.replace(secret, "***")
        return classify(self.name, sqlstate, text, connecting=connecting, login=self.settings.username,
                        strict=self.settings.strict)

    def execute(self, sql: str, params: Sequence[Any] = (), *, database: str = "master",
                repeatable: bool = False) -> Result:
        """Run one batch with ? parameters; drain and return every result set. `repeatable` (a read, or a
        statement that sets a target value: entsso.remote.tsql.SAFE_TO_REPEAT): when the connection breaks or
        SQL Server is not there (an FCI or AG failover drops every session and refuses new ones for tens of
        seconds), the statement runs again in a new session until settings.retry_window has passed."""
        window = self.settings.retry_window if repeatable and self._reconnect and not self._gave_up else 0.0
        deadline, attempt = time.monotonic() + window, 0
        while True:
            attempt += 1
            try:
                answer = self._execute_once(sql, params, database)
            except SqlUnreachable as exc:
                left = deadline - time.monotonic()
                if window <= 0 or left <= 0:
                    self._gave_up = self._gave_up or window > 0
                    raise
                wait = min(left, 0.25 * 2 ** min(attempt - 1, 3))  # 0.25, 0.5, 1, 2, 2, … seconds
                for listener in self.statements.retry_listeners:
                    with contextlib.suppress(Exception):  # evidence must not stop the statement
                        listener(self.name, " ".join(sql.split()[:8]), attempt, str(exc), wait)
                time.sleep(wait)
                continue
            self._gave_up = False
            return answer

    def _execute_once(self, sql: str, params: Sequence[Any], database: str) -> Result:
        started_wall, started = time.time(), time.monotonic()
        outcome, nrows = "ok", 0
        answer: Result | None = None
        with self._lock:
            try:
                conn = self._connection(database)
                cur = conn.cursor()
                try:
                    cur.execute(sql, *params) if params else cur.execute(sql)
                    sets: list[list[dict[str, Any]]] = []
                    messages: list[str] = [m[1] if isinstance(m, tuple) else str(m) for m in (cur.messages or [])]
                    while True:
                        if cur.description:
                            cols = [d[0] for d in cur.description]
                            rows = [dict(zip(cols, r, strict=False)) for r in cur.fetchall()]
                            nrows += len(rows)
                            sets.append(rows)
                        if not cur.nextset():
                            break
                        messages.extend(m[1] if isinstance(m, tuple) else str(m) for m in (cur.messages or []))
                    answer = Result(sets, messages)
                    return answer
                finally:
                    cur.close()
            except SqlError:
                outcome = "error"
                raise
            except Exception as exc:  # noqa: BLE001 - pyodbc.Error
                outcome = "error"
                error = self._classify(exc)
                if self._conns.pop(database, None) is not None and not self._reconnect:
                    self._lost[database] = str(error)
                raise error from None
            finally:
                self.statements.add(StatementRecord(sql=" ".join(sql.split()), database=database,
                                                    started=started_wall, seconds=time.monotonic() - started,
                                                    rows=nrows, outcome=outcome), answer, self.name)

    def close(self) -> None:
        with self._lock:
            for conn in self._conns.values():
                with contextlib.suppress(Exception):  # a broken connection is dropped either way
                    conn.close()
            self._conns.clear()
