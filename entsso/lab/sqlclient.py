"""A pyodbc-shaped client for the lab's SQL endpoint (entsso.lab.sqlserver), used by entsso.sql for
the lab's inventory.

It speaks the lab's JSON-lines protocol (not TDS) but looks to entsso.sql exactly like pyodbc with ODBC
Driver 18: connect(...) → Connection; cursor().execute(sql, *params); description, fetchall, nextset,
messages; and errors of pyodbc's classes whose args are (SQLSTATE, "[SQLSTATE] [Microsoft][ODBC Driver 18
for SQL Server][SQL Server]<message> (<number>) (SQLExecDirectW)"), as pyodbc formats them. The password
is sent once at login and kept nowhere: no error text or repr can show it.
"""
from __future__ import annotations

import base64
import json
import socket
from datetime import datetime
from typing import Any

DRIVER = "[Microsoft][ODBC Driver 18 for SQL Server]"
SERVER = DRIVER + "[SQL Server]"

apilevel = "2.0"
threadsafety = 1
paramstyle = "qmark"


# pyodbc's hierarchy: Error ← InterfaceError, DatabaseError ← DataError, OperationalError, IntegrityError,
# InternalError, ProgrammingError, NotSupportedError.
class Warning(Exception):  # noqa: A001 - the DB-API name
    pass


class Error(Exception):
    pass


class InterfaceError(Error):
    pass


class DatabaseError(Error):
    pass


class DataError(DatabaseError):
    pass


class OperationalError(DatabaseError):
    pass


class IntegrityError(DatabaseError):
    pass


class InternalError(DatabaseError):
    pass


class ProgrammingError(DatabaseError):
    pass


class NotSupportedError(DatabaseError):
    pass


# SQL Server error number → the SQLSTATE ODBC Driver 18 reports for it (42000 for the rest).
_SQLSTATE = {207: "42S22", 208: "42S02", 18456: "28000", 8178: "07002", 2627: "23000", 547: "23000",
             515: "23000", 8114: "22018"}


def _error_class(sqlstate: str) -> type[Error]:
    """pyodbc's mapping of SQLSTATE classes to exception classes."""
    if sqlstate in ("28000",) or sqlstate.startswith("IM"):
        return InterfaceError
    if sqlstate.startswith("08") or sqlstate in ("HYT00", "HYT01", "HY001"):
        return OperationalError
    if sqlstate.startswith("23") or sqlstate == "40002":
        return IntegrityError
    if sqlstate.startswith("22"):
        return DataError
    if sqlstate.startswith(("24", "25", "42", "07")):
        return ProgrammingError
    if sqlstate == "0A000":
        return NotSupportedError
    return DatabaseError


def _server_error(err: dict[str, Any], function: str) -> Error:
    number = int(err.get("number") or 0)
    sqlstate = _SQLSTATE.get(number, "42000")
    text = f"[{sqlstate}] {SERVER}{err.get('message', '')} ({number}) ({function})"
    return _error_class(sqlstate)(sqlstate, text)


def _refused() -> OperationalError:
    return OperationalError("08001", f"[08001] {DRIVER}TCP Provider: No connection could be made because the "
                                     "target machine actively refused it.\r\n (10061) (SQLDriverConnect)")


def _link_failure(function: str) -> OperationalError:
    return OperationalError("08S01", f"[08S01] {DRIVER}TCP Provider: An existing connection was forcibly closed "
                                     f"by the remote host.\r\n (10054) ({function})")


# the wire format's value encoding (shared with entsso.lab.sqlserver)
def encode_value(v: Any) -> Any:
    if isinstance(v, datetime):
        return {"$dt": v.isoformat(timespec="microseconds")}
    if isinstance(v, (bytes, bytearray, memoryview)):
        return {"$b64": base64.b64encode(bytes(v)).decode("ascii")}
    return v


def decode_value(v: Any) -> Any:
    if isinstance(v, dict):
        if "$dt" in v:
            return datetime.fromisoformat(v["$dt"])
        if "$b64" in v:
            return base64.b64decode(v["$b64"])
    return v


_PY_TYPES = {"int": int, "float": float, "str": str, "datetime": datetime, "bool": bool, "bytes": bytes}


class Cursor:
    def __init__(self, conn: "Connection") -> None:
        self.connection = conn
        self._sets: list[dict[str, Any]] = []
        self._index = 0
        self._pos = 0
        self.messages: list[tuple[str, str]] = []
        self.rowcount = -1
        self.closed = False

    def __repr__(self) -> str:
        return f"<lab sqlclient Cursor on {self.connection!r}>"

    @property
    def description(self) -> list[tuple[Any, ...]] | None:
        if self._index >= len(self._sets):
            return None
        s = self._sets[self._index]
        return [(name, _PY_TYPES.get(t or "str", str), None, None, None, None, True)
                for name, t in zip(s["columns"], s.get("types") or [None] * len(s["columns"]))]

    def execute(self, sql: str, *params: Any) -> "Cursor":
        if self.closed:
            raise ProgrammingError("HY010", "Attempt to use a closed cursor.")
        if len(params) == 1 and isinstance(params[0], (list, tuple)):
            params = tuple(params[0])  # pyodbc also takes one sequence of parameters
        reply = self.connection._request({"op": "execute", "sql": sql,
                                          "params": [encode_value(p) for p in params]}, "SQLExecDirectW")
        self._sets = [dict(s, rows=[tuple(decode_value(v) for v in r) for r in s["rows"]]) for s in reply["sets"]]
        self._index = 0
        self._pos = 0
        self.messages = [("[01000] (0)", SERVER + m) for m in reply.get("messages") or []]
        self.rowcount = len(self._sets[0]["rows"]) if self._sets else -1
        return self

    def _current(self) -> dict[str, Any]:
        if self._index >= len(self._sets):
            raise ProgrammingError("24000", "No results.  Previous SQL was not a query.")
        return self._sets[self._index]

    def fetchall(self) -> list[tuple[Any, ...]]:
        s = self._current()
        rows = s["rows"][self._pos:]
        self._pos = len(s["rows"])
        return list(rows)

    def fetchone(self) -> tuple[Any, ...] | None:
        s = self._current()
        if self._pos >= len(s["rows"]):
            return None
        self._pos += 1
        return s["rows"][self._pos - 1]

    def fetchmany(self, size: int = 1) -> list[tuple[Any, ...]]:
        s = self._current()
        rows = s["rows"][self._pos:self._pos + size]
        self._pos += len(rows)
        return list(rows)

    def nextset(self) -> bool:
        # messages belong to the result they came with: all of them arrive with the first
        self.messages = []
        if self._index + 1 < len(self._sets):
            self._index += 1
            self._pos = 0
            return True
        self._index = len(self._sets)
        return False

    def close(self) -> None:
        self.closed = True
        self._sets = []

    def __iter__(self):
        while (row := self.fetchone()) is not None:
            yield row


class Connection:
    def __init__(self, sock: socket.socket, address: str, port: int, database: str, session: int,
                 autocommit: bool) -> None:
        self._sock = sock
        self._file = sock.makefile("rwb")
        self.address = address
        self.port = port
        self.database = database
        self.session = session
        self.autocommit = autocommit
        self.timeout = 0  # query timeout in seconds, 0 = none (pyodbc's Connection.timeout)
        self.closed = False

    def __repr__(self) -> str:
        return f"<lab sqlclient Connection {self.address}:{self.port} database={self.database} session={self.session}>"

    def _request(self, doc: dict[str, Any], function: str) -> dict[str, Any]:
        if self.closed:
            raise ProgrammingError("Attempt to use a closed connection.")
        try:
            self._sock.settimeout(self.timeout if self.timeout else None)
            self._file.write(json.dumps(doc, separators=(",", ":")).encode("utf-8") + b"\n")
            self._file.flush()
            line = self._file.readline()
        except (socket.timeout, TimeoutError):
            self._close_socket()
            raise OperationalError("HYT00", f"[HYT00] {DRIVER}Query timeout expired (0) ({function})") from None
        except OSError:
            self._close_socket()
            raise _link_failure(function) from None
        if not line:
            self._close_socket()
            raise _link_failure(function)
        reply = json.loads(line)
        if not reply.get("ok"):
            raise _server_error(reply.get("error") or {}, function)
        return reply

    def cursor(self) -> Cursor:
        if self.closed:
            raise ProgrammingError("Attempt to use a closed connection.")
        return Cursor(self)

    def execute(self, sql: str, *params: Any) -> Cursor:
        return self.cursor().execute(sql, *params)

    def commit(self) -> None:  # autocommit only: nothing to commit
        pass

    def rollback(self) -> None:
        pass

    def _close_socket(self) -> None:
        self.closed = True
        try:
            self._file.close()
            self._sock.close()
        except OSError:
            pass

    def close(self) -> None:
        if self.closed:
            return
        try:
            self._file.write(b'{"op":"close"}\n')
            self._file.flush()
        except OSError:
            pass
        self._close_socket()

    def __enter__(self) -> "Connection":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def connect(address: str, port: int | None, username: str, password: str, *, database: str = "master",
            timeout: float = 15, autocommit: bool = True) -> Connection:
    """Log in to the lab's SQL endpoint; errors as pyodbc.connect raises them."""
    try:
        sock = socket.create_connection((address, int(port or 1433)), timeout=timeout or None)
    except ConnectionRefusedError:
        raise _refused() from None
    except (socket.timeout, TimeoutError):
        raise OperationalError("HYT00", f"[HYT00] {DRIVER}Login timeout expired (0) (SQLDriverConnect)") from None
    except OSError as exc:
        raise OperationalError("08001", f"[08001] {DRIVER}TCP Provider: Error code 0x{exc.errno or 0:X} "
                                        f"({exc.errno or 0}) (SQLDriverConnect)") from None
    try:
        f = sock.makefile("rwb")
        f.write(json.dumps({"op": "login", "username": username, "password": password, "database": database},
                           separators=(",", ":")).encode("utf-8") + b"\n")
        f.flush()
        line = f.readline()
        f.close()
    except (socket.timeout, TimeoutError):
        sock.close()
        raise OperationalError("HYT00", f"[HYT00] {DRIVER}Login timeout expired (0) (SQLDriverConnect)") from None
    except OSError:
        sock.close()
        raise _refused() from None
    if not line:  # the server dropped the connection before answering: SQL Server is not there
        sock.close()
        raise _refused()
    reply = json.loads(line)
    if not reply.get("ok"):
        sock.close()
        raise _server_error(reply.get("error") or {}, "SQLDriverConnect")
    return Connection(sock, address, int(port or 1433), database, int(reply["session"]), autocommit)
