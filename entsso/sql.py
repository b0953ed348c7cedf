"""T-SQL over ODBC: the only module that speaks to SQL Server.

`SqlServer` builds the ODBC connection string (ODBC Driver 18/17 or FreeTDS; Encrypt=yes by default;
Kerberos or a SQL login from the environment), runs statements with autocommit on and every result set
drained (BACKUP and job control need both), and counts and times every statement. For the lab's
inventory the same class talks to the lab's SQL endpoint through a pyodbc-shaped client.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

DRIVERS = ("ODBC Driver 18 for SQL Server", "ODBC Driver 17 for SQL Server", "FreeTDS")


class SqlError(Exception):
    """A statement or connection failed; the message names the server and what to do."""

    def __init__(self, message: str, *, number: int | None = None, sqlstate: str | None = None) -> None:
        super().__init__(message)
        self.number = number
        self.sqlstate = sqlstate


class SqlUnreachable(SqlError):
    pass


class SqlLoginFailed(SqlError):
    pass


@dataclass(frozen=True)
class SqlSettings:
    server: str  # host name (or address)
    instance: str | None = None
    port: int | None = None
    driver: str = "ODBC Driver 18 for SQL Server"
    encrypt: bool = True
    trust_server_certificate: bool = False
    auth: str = "kerberos"  # kerberos | sql
    username: str | None = None
    login_timeout: int = 15
    query_timeout: int = 0  # 0 = no limit (pyodbc's conn.timeout)
    lab_address: str | None = None  # set for the lab: the lab's SQL endpoint
    lab_port: int | None = None

    def connection_string(self, database: str = "master") -> str:
        """The ODBC connection string, without the password (added at connect time)."""
        if self.driver not in DRIVERS:
            raise ValueError(f"unknown ODBC driver {self.driver!r}; use one of {', '.join(DRIVERS)}")
        if self.driver == "FreeTDS":
            parts = [f"DRIVER={{FreeTDS}}", f"SERVER={self.server}", f"PORT={self.port or 1433}", "TDS_Version=7.4"]
            if self.instance and not self.port:
                parts = [f"DRIVER={{FreeTDS}}", f"SERVER={self.server}\\{self.instance}", "TDS_Version=7.4"]
            parts.append(f"Encryption={'require' if self.encrypt else 'off'}")
        else:
            target = self.server
            if self.port:
                target = f"tcp:{self.server},{self.port}"
            elif self.instance:
                target = f"{self.server}\\{self.instance}"
            parts = [f"DRIVER={{{self.driver}}}", f"SERVER={target}",
                     f"Encrypt={'yes' if self.encrypt else 'no'}",
                     f"TrustServerCertificate={'yes' if self.trust_server_certificate else 'no'}"]
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

    def add(self, record: StatementRecord) -> None:
        with self._lock:
            self.records.append(record)

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


Connector = Callable[[str], Any]


class SqlServer:
    """One SQL Server. Connections are opened per database and kept; statements are serialised per
    connection (pyodbc connections are not for concurrent use)."""

    def __init__(self, settings: SqlSettings, password: Any = None, statements: StatementLog | None = None,
                 connector: Connector | None = None) -> None:
        self.settings = settings
        self._password = password
        self.statements = statements if statements is not None else StatementLog()
        self._connector = connector
        self._conns: dict[str, Any] = {}
        self._lock = threading.RLock()

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
        if self._connector is not None:
            return self._connector(database)
        if s.lab_address:
            from entsso.lab import sqlclient

            return sqlclient.connect(s.lab_address, s.lab_port, s.username or "", self._secret() or "",
                                     database=database, timeout=s.login_timeout, autocommit=True)
        import pyodbc  # imported late: needs unixODBC's libodbc.so.2

        conn_str = s.connection_string(database)
        if s.auth == "sql":
            conn_str += ";PWD={" + (self._secret() or "").replace("}", "}}") + "}"
        conn = pyodbc.connect(conn_str, autocommit=True, timeout=s.login_timeout)
        conn.timeout = s.query_timeout
        return conn

    def _connection(self, database: str) -> Any:
        conn = self._conns.get(database)
        if conn is None:
            try:
                conn = self._connect(database)
            except Exception as exc:  # noqa: BLE001 - classified below
                raise self._classify(exc, connecting=True) from None
            self._conns[database] = conn
        return conn

    def _classify(self, exc: Exception, *, connecting: bool = False) -> SqlError:
        args = getattr(exc, "args", ())
        sqlstate = args[0] if args and isinstance(args[0], str) and len(args[0]) == 5 else None
        text = args[1] if len(args) > 1 and isinstance(args[1], str) else str(exc)
        text = text.replace(self._secret() or "\0never\0", "***") if self._secret() else text
        number = None
        import re

        m = re.search(r"\((\d+)\) \(SQL", text)
        if m:
            number = int(m.group(1))
        if sqlstate == "28000" or number == 18456:
            return SqlLoginFailed(
                f"SQL Server {self.name} refused the login ({text}). Check the SQL login's user name and "
                "its password environment variable, or the Kerberos ticket (klist) for Trusted_Connection.",
                number=number, sqlstate=sqlstate)
        if connecting or (sqlstate or "").startswith("08") or sqlstate == "HYT00":
            return SqlUnreachable(
                f"SQL Server {self.name} could not be reached ({text}). Check the server name, instance "
                "or port, the firewall, and the ODBC driver in the inventory.", number=number, sqlstate=sqlstate)
        return SqlError(f"SQL Server {self.name}: {text}", number=number, sqlstate=sqlstate)

    def execute(self, sql: str, params: Sequence[Any] = (), *, database: str = "master") -> Result:
        """Run one batch with ? parameters; drain and return every result set."""
        started_wall, started = time.time(), time.monotonic()
        outcome, nrows = "ok", 0
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
                            rows = [dict(zip(cols, r)) for r in cur.fetchall()]
                            nrows += len(rows)
                            sets.append(rows)
                        if not cur.nextset():
                            break
                        messages.extend(m[1] if isinstance(m, tuple) else str(m) for m in (cur.messages or []))
                    return Result(sets, messages)
                finally:
                    cur.close()
            except SqlError:
                outcome = "error"
                raise
            except Exception as exc:  # noqa: BLE001 - pyodbc.Error and the lab client's twins
                outcome = "error"
                self._conns.pop(database, None)
                raise self._classify(exc) from None
            finally:
                self.statements.add(StatementRecord(sql=" ".join(sql.split()), database=database,
                                                    started=started_wall, seconds=time.monotonic() - started,
                                                    rows=nrows, outcome=outcome))

    def close(self) -> None:
        with self._lock:
            for conn in self._conns.values():
                try:
                    conn.close()
                except Exception:  # noqa: BLE001
                    pass
            self._conns.clear()
