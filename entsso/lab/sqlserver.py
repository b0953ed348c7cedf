"""The lab's SQL endpoint: the lab's SqlEngine served over TCP to entsso.lab.sqlclient.

This is NOT TDS. It is a JSON-lines protocol of the lab's own: one UTF-8 JSON object per line each way,
request then response, on one TCP connection per client connection (= one SQL Server session).

    → {"op": "login", "username": u, "password": p, "database": db}
    ← {"ok": true, "session": 51}                               | {"ok": false, "error": {...}}
    → {"op": "execute", "sql": text, "params": [v, ...]}
    ← {"ok": true, "sets": [{"columns": [name, ...], "types": [t, ...], "rows": [[v, ...], ...]}],
       "messages": [text, ...]}                                 | {"ok": false, "error": {...}}
    → {"op": "close"}

An error is {"number": n, "state": s, "severity": sev, "message": text}. Values are JSON scalars; a
datetime travels as {"$dt": "YYYY-MM-DDTHH:MM:SS.ffffff"} (naive, SQL Server's clock), bytes as
{"$b64": "..."}. Column types are "int", "float", "str", "datetime", "bool", "bytes" or null.

While the engine is unavailable (set_unavailable) the endpoint drops every connection at once, new or
open: the client reports SQL Server as unreachable, as a stopped SQL Server looks to ODBC.
"""
from __future__ import annotations

import hmac
import itertools
import json
import socket
import socketserver
import threading
from datetime import datetime
from typing import Any

from entsso.lab.sqlclient import decode_value, encode_value
from entsso.lab.sqlengine import EngineError, SqlEngine


def _type_name(values: list[Any]) -> str | None:
    for v in values:
        if v is None:
            continue
        if isinstance(v, bool):
            return "bool"
        if isinstance(v, int):
            return "int"
        if isinstance(v, float):
            return "float"
        if isinstance(v, datetime):
            return "datetime"
        if isinstance(v, (bytes, bytearray)):
            return "bytes"
        return "str"
    return None


class _Handler(socketserver.StreamRequestHandler):
    server: "_Server"

    def handle(self) -> None:
        endpoint = self.server.endpoint
        engine = endpoint.engine
        if not engine.available:
            return  # refused: the client sees the connection closed before the login answer
        endpoint._track(self.connection, True)
        session: int | None = None
        database = "master"
        try:
            while True:
                line = self.rfile.readline()
                if not line or not engine.available:
                    return
                try:
                    req = json.loads(line)
                except ValueError:
                    self._send({"ok": False, "error": {"number": 4002, "state": 1, "severity": 16,
                                                       "message": "The incoming tabular data stream (TDS) protocol "
                                                                  "stream is incorrect."}})
                    return
                op = req.get("op")
                if op == "close":
                    return
                if op == "login":
                    if not endpoint.check_login(req.get("username"), req.get("password")):
                        self._send({"ok": False, "error": {"number": 18456, "state": 1, "severity": 14,
                                                           "message": f"Login failed for user '{req.get('username')}'."}})
                        return
                    wanted = str(req.get("database") or "master")
                    match = next((d for d in engine.databases if d.lower() == wanted.lower()), None)
                    if match is None:
                        self._send({"ok": False, "error": {"number": 4060, "state": 1, "severity": 11,
                                                           "message": f'Cannot open database "{wanted}" requested by '
                                                                      "the login. The login failed."}})
                        return
                    database = match
                    session = endpoint.next_session()
                    self._send({"ok": True, "session": session})
                    continue
                if op == "execute":
                    if session is None:
                        return
                    params = [decode_value(p) for p in req.get("params") or []]
                    try:
                        res = engine.execute(str(req.get("sql") or ""), params, database,
                                             session=session, login=endpoint.username)
                    except EngineError as exc:
                        self._send({"ok": False, "error": {"number": exc.number, "state": exc.state,
                                                           "severity": exc.severity, "message": exc.message}})
                        continue
                    if not engine.available:
                        return
                    sets = [{"columns": rs.columns,
                             "types": [_type_name([r[i] for r in rs.rows]) for i in range(len(rs.columns))],
                             "rows": [[encode_value(v) for v in r] for r in rs.rows]} for rs in res.sets]
                    self._send({"ok": True, "sets": sets, "messages": list(res.messages)})
                    continue
                return
        except (OSError, ValueError):
            return
        finally:
            if session is not None:
                engine.end_session(session)  # session-owned application locks go with the session
            endpoint._track(self.connection, False)

    def _send(self, doc: dict[str, Any]) -> None:
        self.wfile.write(json.dumps(doc, separators=(",", ":")).encode("utf-8") + b"\n")
        self.wfile.flush()


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    endpoint: "SqlEndpoint"


class SqlEndpoint:
    """SQL Server on (address, port) for the lab; `.port` is the bound port (0 asks the OS for one)."""

    def __init__(self, engine: SqlEngine, address: str, port: int, username: str, password: str) -> None:
        self.engine = engine
        self.address = address
        self.port = port
        self.username = username
        self._password = password
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._sessions = itertools.count(51)  # SQL Server's user sessions start above the system ones
        self._conns: set[socket.socket] = set()
        self._conns_lock = threading.Lock()
        self._watch: threading.Thread | None = None
        self._stop = threading.Event()

    def __repr__(self) -> str:
        return f"SqlEndpoint({self.address}:{self.port}, user={self.username!r})"

    def check_login(self, username: Any, password: Any) -> bool:
        return (isinstance(username, str) and isinstance(password, str)
                and username.lower() == self.username.lower()
                and hmac.compare_digest(password.encode("utf-8"), self._password.encode("utf-8")))

    def next_session(self) -> int:
        return next(self._sessions)

    def _track(self, conn: socket.socket, add: bool) -> None:
        with self._conns_lock:
            (self._conns.add if add else self._conns.discard)(conn)

    def _drop_all(self) -> None:
        with self._conns_lock:
            conns = list(self._conns)
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _watch_availability(self) -> None:
        # SQL Server going down ends every open session, not only the next login
        while not self._stop.wait(0.05):
            if not self.engine.available:
                self._drop_all()

    def start(self) -> None:
        server = _Server((self.address, self.port), _Handler)
        server.endpoint = self
        self._server = server
        self.port = server.server_address[1]
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1},
                                        name=f"lab-sql:{self.address}:{self.port}", daemon=True)
        self._thread.start()
        self._watch = threading.Thread(target=self._watch_availability, name="lab-sql-watch", daemon=True)
        self._watch.start()

    def stop(self) -> None:
        self._stop.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        self._drop_all()
        for t in (self._thread, self._watch):
            if t is not None:
                t.join(5)
