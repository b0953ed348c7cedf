"""The lab's SQL Server endpoint: TDS 7.4 (MS-TDS) in front of the lab's SqlEngine.

Clients reach it as they reach SQL Server: pyodbc with an ODBC driver (the suite uses Debian's FreeTDS),
or any other TDS client (FreeTDS's `tsql`). What it speaks (MS-TDS section numbers in brackets):

- PRELOGIN [2.2.6.5] with encryption negotiated as SQL Server does without "Force Encryption": a client
  that asks for encryption (ENCRYPT_ON or ENCRYPT_REQ) gets the whole session in TLS; one that offers it
  (ENCRYPT_OFF) gets only its LOGIN7 packet encrypted; one without TLS (ENCRYPT_NOT_SUP) logs in in the
  clear, unless the endpoint forces encryption. The TLS handshake travels inside PRELOGIN packets; after
  it, TLS records flow on the socket with the TDS packets inside them [3.3.4.4]. TLS 1.2 only, as SQL
  Server negotiates for TDS 7.x. The certificate is one the lab's CA issued (entsso.lab.pki).
- TDS 8.0 ("strict" encryption, SQL Server 2022): a client whose first bytes are a TLS ClientHello (record
  type 0x16) rather than a PRELOGIN packet gets the TLS handshake first, straight on the TCP connection
  (TLS 1.2 or 1.3, ALPN `tds/8.0`), then PRELOGIN, LOGIN7 and the whole session inside that TLS; both
  kinds of client are taken on the one port, as SQL Server 2022 takes them without "Force Strict
  Encryption".
- LOGIN7 [2.2.6.4] with a SQL login; a wrong user or password gets error 18456, state 1, class 14
  ("Login failed for user '…'.") as SQL Server sends it (the real reason goes to its error log only); an
  unknown database gets 4060 then 18456; an integrated-security (SSPI) login gets 18452.
- The login response: ENVCHANGE database, collation, language and packet size, INFO 5701/5703,
  LOGINACK (TDS 7.4, "Microsoft SQL Server" 16.0), DONE.
- SQL batches [2.2.6.7] and RPC requests [2.2.6.6]: sp_executesql, sp_prepare, sp_execute,
  sp_prepexec and sp_unprepare by ProcID or name (how FreeTDS's ODBC driver sends `?` parameters, as
  @P1…), and other procedures by name.
- The token stream [2.2.7]: COLMETADATA, ROW, DONE/DONEINPROC/DONEPROC with row counts, RETURNSTATUS,
  RETURNVALUE (the prepared handle), ERROR and INFO with number, state, class and text; the engine's
  informational messages carry SQL Server's numbers (info_number: 14243 for sp_start_job's "Job '…'
  started successfully.", 14254 for sp_stop_job's, as msdb's RAISERROR sends them).
- ATTENTION [2.2.1.7]: a cancel (a query timeout is the driver's cancel) stops the statement (the
  engine's WAITFOR ends); the cancelled request is answered (a DONE) and then, in a message of its own, the
  Attention with DONE and DONE_ATTN [3.3.5.9, 4.19.2], as tedious reads them.
- RETURNSTATUS [2.2.7.18] carries a procedure's return value (sp_getapplock's -1, sp_releaseapplock's -999).

While the engine is unavailable (set_unavailable) the endpoint drops every connection at once, new or
open, as a stopped SQL Server looks to a client.
"""
from __future__ import annotations

import contextlib
import hmac
import itertools
import re
import select
import socket
import socketserver
import ssl
import struct
import threading
import uuid
from datetime import date, datetime, time as dtime, timedelta, UTC
from decimal import Decimal
from typing import Any

from entsso.lab.sqlengine import EngineError, SqlEngine, StatementCancelled as Cancelled

# packet types [2.2.3.1.1]
PKT_SQL_BATCH, PKT_RPC, PKT_REPLY, PKT_ATTENTION, PKT_TM, PKT_LOGIN7, PKT_PRELOGIN = 1, 3, 4, 6, 14, 16, 18
STATUS_EOM = 0x01
# PRELOGIN encryption values
ENCRYPT_OFF, ENCRYPT_ON, ENCRYPT_NOT_SUP, ENCRYPT_REQ = 0, 1, 2, 3
TLS_HANDSHAKE = 0x16  # a TLS record's first byte: a TDS 8.0 client starts with its ClientHello
ALPN_TDS8 = "tds/8.0"
# tokens
TOK_COLMETADATA, TOK_ROW, TOK_DONE, TOK_DONEPROC, TOK_DONEINPROC = 0x81, 0xD1, 0xFD, 0xFE, 0xFF
TOK_ERROR, TOK_INFO, TOK_LOGINACK, TOK_ENVCHANGE, TOK_RETURNSTATUS, TOK_RETURNVALUE = 0xAA, 0xAB, 0xAD, 0xE3, 0x79, 0xAC
DONE_FINAL, DONE_MORE, DONE_ERROR, DONE_COUNT, DONE_ATTN = 0x00, 0x01, 0x02, 0x10, 0x20
CMD_SELECT, CMD_EXECUTE = 0xC1, 0xE0
# types [2.2.5.4]
T_INTN, T_BITN, T_FLTN, T_DATETIME2N, T_NVARCHAR, T_BIGVARBIN = 0x26, 0x68, 0x6D, 0x2A, 0xE7, 0xA5
TDS74 = 0x74000004
SERVER_VERSION = (16, 0, 1000)  # SQL Server 2022 RTM
COLLATION = bytes([0x09, 0x04, 0xD0, 0x00, 0x34])  # SQL_Latin1_General_CP1_CI_AS
PLP_NULL, PLP_UNKNOWN = 0xFFFFFFFFFFFFFFFF, 0xFFFFFFFFFFFFFFFE
PROC_IDS = {10: "sp_executesql", 11: "sp_prepare", 12: "sp_execute", 13: "sp_prepexec", 15: "sp_unprepare"}
_EPOCH_DATE = date(1, 1, 1)
_EPOCH_1900 = datetime(1900, 1, 1)


class ProtocolError(Exception):
    pass


# ------------------------------------------------------------------------------------------ encoding


def _bvarchar(s: str) -> bytes:
    b = s.encode("utf-16-le")
    return bytes([len(s)]) + b


def _usvarchar(s: str) -> bytes:
    return struct.pack("<H", len(s)) + s.encode("utf-16-le")


def _token(tok: int, body: bytes) -> bytes:
    return bytes([tok]) + struct.pack("<H", len(body)) + body


def envchange(kind: int, new: str, old: str) -> bytes:
    return _token(TOK_ENVCHANGE, bytes([kind]) + _bvarchar(new) + _bvarchar(old))


# SQL Server's numbers of the informational messages the engine sends (msdb's sp_start_job:
# RAISERROR(14243, 0, 1, @job_name); sp_stop_job: RAISERROR(14254, 0, 1, @job_name))
INFO_NUMBERS = ((re.compile(r"Job '.*' started successfully\.", re.S), 14243),
                (re.compile(r"Job '.*' stopped successfully\.", re.S), 14254))


def info_number(text: str) -> int:
    """SQL Server's message number for an informational message of the engine; 0 for one it has none for
    (PRINT's messages are number 0 on SQL Server too)."""
    return next((n for pattern, n in INFO_NUMBERS if pattern.fullmatch(text)), 0)


def message(tok: int, number: int, state: int, klass: int, text: str, server: str, proc: str = "",
            line: int = 1) -> bytes:
    body = (struct.pack("<iBB", number, state, klass) + _usvarchar(text) + _bvarchar(server) + _bvarchar(proc)
            + struct.pack("<i", line))
    return _token(tok, body)


def done(tok: int, status: int, rows: int = 0, cmd: int = CMD_SELECT) -> bytes:
    return bytes([tok]) + struct.pack("<HHQ", status, cmd, rows)


def _column_kind(values: list[Any]) -> tuple[str, int]:
    """The TDS type a result column travels as, from the values the engine (SQLite) gives it."""
    kinds = {type(v) for v in values if v is not None}
    if not kinds:
        return "str", 1
    if kinds == {bool}:
        return "bool", 1
    if kinds <= {int, bool}:
        big = any(not -2**31 <= v < 2**31 for v in values if v is not None)
        return "int", 8 if big else 4
    if kinds <= {int, float, bool}:
        return "float", 8
    if kinds <= {datetime}:
        return "datetime", 8
    if kinds <= {bytes, bytearray, memoryview}:
        n = max(len(v) for v in values if v is not None)
        return "bytes", n
    n = max(len(str(v)) for v in values if v is not None)
    return "str", n


def _type_info(kind: str, size: int) -> bytes:
    if kind == "bool":
        return bytes([T_BITN, 1])
    if kind == "int":
        return bytes([T_INTN, size])
    if kind == "float":
        return bytes([T_FLTN, 8])
    if kind == "datetime":
        return bytes([T_DATETIME2N, 7])
    if kind == "bytes":
        return bytes([T_BIGVARBIN]) + struct.pack("<H", 0xFFFF if size > 8000 else 8000)
    return bytes([T_NVARCHAR]) + struct.pack("<H", 0xFFFF if size > 4000 else 8000) + COLLATION


def _plp(data: bytes) -> bytes:
    out = struct.pack("<Q", len(data))
    if data:
        out += struct.pack("<I", len(data)) + data
    return out + struct.pack("<I", 0)


def _value(kind: str, size: int, v: Any) -> bytes:
    if kind == "bool":
        return b"\x00" if v is None else b"\x01" + bytes([1 if v else 0])
    if kind == "int":
        return b"\x00" if v is None else bytes([size]) + int(v).to_bytes(size, "little", signed=True)
    if kind == "float":
        return b"\x00" if v is None else b"\x08" + struct.pack("<d", float(v))
    if kind == "datetime":
        if v is None:
            return b"\x00"
        if v.tzinfo is not None:
            v = v.astimezone(UTC).replace(tzinfo=None)
        ticks = ((v.hour * 3600 + v.minute * 60 + v.second) * 10**6 + v.microsecond) * 10
        days = (v.date() - _EPOCH_DATE).days
        return b"\x08" + ticks.to_bytes(5, "little") + days.to_bytes(3, "little")
    if kind == "bytes":
        if size > 8000:
            return struct.pack("<Q", PLP_NULL) if v is None else _plp(bytes(v))
        return b"\xff\xff" if v is None else struct.pack("<H", len(v)) + bytes(v)
    if size > 4000:
        return struct.pack("<Q", PLP_NULL) if v is None else _plp(str(v).encode("utf-16-le"))
    if v is None:
        return b"\xff\xff"
    data = str(v).encode("utf-16-le")
    return struct.pack("<H", len(data)) + data


def result_set(columns: list[str], rows: list[tuple[Any, ...]]) -> bytes:
    """COLMETADATA and the ROW tokens of one result set."""
    kinds = [_column_kind([r[i] for r in rows]) for i in range(len(columns))]
    meta = bytearray([TOK_COLMETADATA]) + struct.pack("<H", len(columns))
    for name, (kind, size) in zip(columns, kinds, strict=True):
        meta += struct.pack("<IH", 0, 0x0001) + _type_info(kind, size) + _bvarchar(name or "")
    for r in rows:
        meta.append(TOK_ROW)
        for (kind, size), v in zip(kinds, r, strict=False):
            meta += _value(kind, size, v)
    return bytes(meta)


# ------------------------------------------------------------------------------------------ decoding


class _Reader:
    def __init__(self, data: bytes, pos: int = 0) -> None:
        self.data = data
        self.pos = pos

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise ProtocolError("truncated message")
        b = self.data[self.pos:self.pos + n]
        self.pos += n
        return b

    def u8(self) -> int:
        return self.take(1)[0]

    def u16(self) -> int:
        return struct.unpack("<H", self.take(2))[0]

    def u32(self) -> int:
        return struct.unpack("<I", self.take(4))[0]

    def bvarchar(self) -> str:
        return self.take(self.u8() * 2).decode("utf-16-le")

    def more(self) -> bool:
        return self.pos < len(self.data)

    def plp(self) -> bytes | None:
        total = struct.unpack("<Q", self.take(8))[0]
        if total == PLP_NULL:
            return None
        out = bytearray()
        while True:
            n = self.u32()
            if n == 0:
                return bytes(out)
            out += self.take(n)


def _skip_all_headers(r: _Reader) -> None:
    total = struct.unpack_from("<I", r.data, r.pos)[0] if len(r.data) - r.pos >= 4 else 0
    if total < 4 or total > len(r.data) - r.pos:
        raise ProtocolError("ALL_HEADERS missing")
    r.pos += total


def _time_value(raw: bytes, scale: int) -> timedelta:
    units = int.from_bytes(raw, "little")
    return timedelta(microseconds=units * 10**6 // 10**scale)


_FIXED = {0x1F: 0, 0x30: 1, 0x32: 1, 0x34: 2, 0x38: 4, 0x3A: 4, 0x3B: 4, 0x3C: 8, 0x3D: 8, 0x3E: 8,
          0x7A: 4, 0x7F: 8}
_BYTELEN = {0x24, 0x26, 0x68, 0x6D, 0x6E, 0x6F, 0x6A, 0x6C, 0x28, 0x29, 0x2A, 0x2B}
_USHORTLEN = {0xA5, 0xA7, 0xAD, 0xAF, 0xE7, 0xEF}
_LONGLEN = {0x22, 0x23, 0x63}
_WITH_COLLATION = {0xA7, 0xAF, 0xE7, 0xEF, 0x23, 0x63}
_WIDE = {0xE7, 0xEF, 0x63}
_CHARS = {0xA7, 0xAF, 0x23}


def _decode_fixed(t: int, b: bytes) -> Any:
    if t == 0x1F:
        return None
    if t in (0x30,):
        return b[0]
    if t == 0x32:
        return bool(b[0])
    if t in (0x34, 0x38, 0x7F):
        return int.from_bytes(b, "little", signed=True)
    if t == 0x3B:
        return struct.unpack("<f", b)[0]
    if t == 0x3E:
        return struct.unpack("<d", b)[0]
    if t == 0x3C:
        hi, lo = struct.unpack("<iI", b)
        return Decimal((hi << 32) | lo) / 10000
    if t == 0x7A:
        return Decimal(struct.unpack("<i", b)[0]) / 10000
    if t == 0x3D:
        days, ticks = struct.unpack("<iI", b)
        return _EPOCH_1900 + timedelta(days=days, microseconds=round(ticks * 10**6 / 300))
    if t == 0x3A:
        days, minutes = struct.unpack("<HH", b)
        return _EPOCH_1900 + timedelta(days=days, minutes=minutes)
    raise ProtocolError(f"type 0x{t:02X}")


def read_typed(r: _Reader) -> Any:
    """One TYPE_INFO and its value (an RPC parameter), as a Python value the engine takes."""
    t = r.u8()
    if t in _FIXED:
        return _decode_fixed(t, r.take(_FIXED[t]))
    if t in _BYTELEN:
        scale = 0
        if t in (0x29, 0x2A, 0x2B):
            scale = r.u8()
        elif t == 0x28:
            pass
        else:
            r.u8()  # max length
            if t in (0x6A, 0x6C):
                r.u8()  # precision: the value's length and scale are all the decoding needs
                scale = r.u8()
        n = r.u8()
        if n == 0:
            return None
        b = r.take(n)
        if t == 0x26:
            return b[0] if n == 1 else int.from_bytes(b, "little", signed=True)
        if t == 0x68:
            return bool(b[0])
        if t == 0x6D:
            return struct.unpack("<f" if n == 4 else "<d", b)[0]
        if t == 0x6E:
            return _decode_fixed(0x3C if n == 8 else 0x7A, b)
        if t == 0x6F:
            return _decode_fixed(0x3D if n == 8 else 0x3A, b)
        if t in (0x6A, 0x6C):
            v = Decimal(int.from_bytes(b[1:], "little")).scaleb(-scale)
            return v if b[0] == 1 else -v
        if t == 0x24:
            return str(uuid.UUID(bytes_le=b)).upper()
        if t == 0x28:
            return _EPOCH_DATE + timedelta(days=int.from_bytes(b, "little"))
        if t == 0x29:
            return (datetime.min + _time_value(b, scale)).time()
        tl = n - 3 - (2 if t == 0x2B else 0)
        d = datetime.combine(_EPOCH_DATE + timedelta(days=int.from_bytes(b[tl:tl + 3], "little")), dtime())
        d += _time_value(b[:tl], scale)
        if t == 0x2B:
            return d.replace(tzinfo=UTC)
        return d
    if t in _USHORTLEN:
        maxlen = r.u16()
        if t in _WITH_COLLATION:
            r.take(5)
        if maxlen == 0xFFFF:
            value = r.plp()
        else:
            n = r.u16()
            value = None if n == 0xFFFF else r.take(n)
        if value is None:
            return None
        return (value.decode("utf-16-le") if t in _WIDE else value.decode("cp1252", "replace") if t in _CHARS
                else value)
    if t in _LONGLEN:
        r.u32()
        if t in _WITH_COLLATION:
            r.take(5)
        n = r.u32()
        if n == 0xFFFFFFFF:
            return None
        b = r.take(n)
        return b.decode("utf-16-le") if t in _WIDE else b.decode("cp1252", "replace") if t in _CHARS else b
    raise ProtocolError(f"parameter type 0x{t:02X} is not supported by the lab")


def parse_login7(p: bytes) -> dict[str, Any]:
    if len(p) < 94:
        raise ProtocolError("LOGIN7 too short")
    _length, version, packet_size = struct.unpack_from("<III", p, 0)
    flags2 = p[25]

    def field(i: int) -> str:
        ib, cch = struct.unpack_from("<HH", p, 36 + 4 * i)
        return p[ib:ib + 2 * cch].decode("utf-16-le")

    ib, cch = struct.unpack_from("<HH", p, 44)
    raw = bytes((((b ^ 0xA5) << 4) & 0xF0) | ((b ^ 0xA5) >> 4) for b in p[ib:ib + 2 * cch])
    sspi_len = struct.unpack_from("<H", p, 80)[0]
    return {"version": version, "packet_size": packet_size, "host": field(0), "user": field(1),
            "password": raw.decode("utf-16-le"), "app": field(3), "server": field(4), "database": field(8),
            "sspi": bool(flags2 & 0x80) or sspi_len > 0}


def parse_prelogin(p: bytes) -> dict[int, bytes]:
    opts: dict[int, bytes] = {}
    i = 0
    while i < len(p) and p[i] != 0xFF:
        if i + 5 > len(p):
            raise ProtocolError("PRELOGIN option table truncated")
        kind, off, n = p[i], *struct.unpack_from(">HH", p, i + 1)
        opts[kind] = p[off:off + n]
        i += 5
    return opts


def build_prelogin(encryption: int) -> bytes:
    major, minor, build = SERVER_VERSION
    options = [(0, struct.pack(">BBHH", major, minor, build, 0)), (1, bytes([encryption])), (2, b"\x00"),
               (3, b""), (4, b"\x00")]
    head_len = 5 * len(options) + 1
    head, body = bytearray(), bytearray()
    for kind, data in options:
        head += struct.pack(">BHH", kind, head_len + len(body), len(data))
        body += data
    return bytes(head) + b"\xff" + bytes(body)


_PLACEHOLDER = re.compile(r"'(?:[^']|'')*'|\"[^\"]*\"|\[[^\]]*\]|--[^\n]*|/\*.*?\*/|@\w+", re.S)


def bind_named(stmt: str, values: dict[str, Any]) -> tuple[str, list[Any]]:
    """`stmt` with each @name that is a parameter replaced by `?`, and the values in that order (the
    engine binds `?`); string literals, quoted names and comments are left alone."""
    out: list[Any] = []

    def sub(m: re.Match[str]) -> str:
        tok = m.group(0)
        if tok.startswith("@") and tok.lower() in values:
            out.append(values[tok.lower()])
            return "?"
        return tok

    return _PLACEHOLDER.sub(sub, stmt), out


_DECL = re.compile(r"(@\w+)\s+[A-Za-z]")


def declared_names(decl: str | None) -> list[str]:
    return [m.group(1).lower() for m in _DECL.finditer(decl or "")]


def _engine_value(v: Any) -> Any:
    if isinstance(v, Decimal):
        return int(v) if v == v.to_integral_value() else float(v)
    if isinstance(v, (date, dtime)) and not isinstance(v, datetime):
        return v.isoformat()
    return v


# ------------------------------------------------------------------------------------------ the catalog

# sp_datatype_info_100 <ODBC type>, 3: SQLGetTypeInfo as FreeTDS sends it; pyodbc asks for varchar, nvarchar,
# varbinary and timestamp once per connection string and sizes its parameters by COLUMN_SIZE (PRECISION).
# The first row SQL Server answers for each type (Learn, "sp_datatype_info (Transact-SQL)"): datetime, 23,
# for SQL_TYPE_TIMESTAMP, so pyodbc sends datetime parameters to the millisecond, as with SQL Server.
TYPE_INFO_COLUMNS = ["TYPE_NAME", "DATA_TYPE", "PRECISION", "LITERAL_PREFIX", "LITERAL_SUFFIX", "CREATE_PARAMS",
                     "NULLABLE", "CASE_SENSITIVE", "SEARCHABLE", "UNSIGNED_ATTRIBUTE", "MONEY", "AUTO_INCREMENT",
                     "LOCAL_TYPE_NAME", "MINIMUM_SCALE", "MAXIMUM_SCALE", "SQL_DATA_TYPE", "SQL_DATETIME_SUB",
                     "NUM_PREC_RADIX", "INTERVAL_PRECISION", "USERTYPE"]
_TYPES = {  # ODBC type: (name, precision, prefix, suffix, create params, case sensitive, searchable, usertype)
    1: ("char", 8000, "'", "'", "length", 0, 3, 1), 12: ("varchar", 8000, "'", "'", "max length", 0, 3, 2),
    -1: ("text", 2147483647, "'", "'", None, 0, 1, 19), -8: ("nchar", 4000, "N'", "'", "length", 0, 3, 0),
    -9: ("nvarchar", 4000, "N'", "'", "max length", 0, 3, 0), -10: ("ntext", 1073741823, "N'", "'", None, 0, 1, 0),
    -2: ("binary", 8000, "0x", None, "length", 0, 2, 3), -3: ("varbinary", 8000, "0x", None, "max length", 0, 2, 4),
    -4: ("image", 2147483647, "0x", None, None, 0, 0, 20), 4: ("int", 10, None, None, None, 0, 2, 7),
    -5: ("bigint", 19, None, None, None, 0, 2, 0), 5: ("smallint", 5, None, None, None, 0, 2, 6),
    -6: ("tinyint", 3, None, None, None, 0, 2, 5), -7: ("bit", 1, None, None, None, 0, 2, 16),
    8: ("float", 53, None, None, None, 0, 2, 8), 7: ("real", 24, None, None, None, 0, 2, 23),
    93: ("datetime", 23, "'", "'", None, 0, 3, 12), 91: ("date", 10, "'", "'", None, 0, 3, 0),
}
_DATATYPE_INFO = re.compile(r"(?i)^\s*(?:exec(?:ute)?\s+)?(?:master\.dbo\.|dbo\.)?sp_datatype_info(?:_90|_100)?"
                            r"\s+(-?\d+)(?:\s*,\s*\d+)?\s*;?\s*$")


def datatype_info(sql: str) -> bytes | None:
    """SQL Server's answer to sp_datatype_info_100 (a catalog procedure, not the estate: not the engine's)."""
    m = _DATATYPE_INFO.match(sql)
    if not m:
        return None
    t = _TYPES.get(int(m.group(1)))
    rows = []
    if t:
        name, prec, prefix, suffix, params, case, search, usertype = t
        odbc = int(m.group(1))
        rows = [(name, odbc, prec, prefix, suffix, params, 1, case, search, None, 0, None, name, None, None,
                 93 if odbc == 93 else odbc, None, None, None, usertype)]
    return result_set(TYPE_INFO_COLUMNS, rows) + done(TOK_DONE, DONE_COUNT, len(rows))


# ------------------------------------------------------------------------------------------ the wire


class _Wire:
    """TDS packets over one TCP connection, inside TLS once negotiated."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.tls: ssl.SSLObject | None = None
        self._in = ssl.MemoryBIO()
        self._out = ssl.MemoryBIO()
        self._raw = bytearray()  # bytes read from the socket, not yet used (no TLS)
        self._plain = bytearray()  # decrypted bytes not yet used
        self.packet_size = 4096
        self._packet_id = 0

    def pending(self) -> bool:
        return bool(self._raw or self._plain or (self.tls is not None and self.tls.pending()))

    def _recv(self) -> bytes:
        data = self.sock.recv(65536)
        if not data:
            raise EOFError
        return data

    def _read(self, n: int) -> bytes:
        if self.tls is None:
            while len(self._raw) < n:
                self._raw += self._recv()
            b, self._raw = bytes(self._raw[:n]), self._raw[n:]
            return b
        while len(self._plain) < n:
            try:
                chunk = self.tls.read(65536)
                if not chunk:
                    raise EOFError
                self._plain += chunk
            except ssl.SSLWantReadError:
                self._in.write(self._recv())
        b, self._plain = bytes(self._plain[:n]), self._plain[n:]
        return b

    def read_packet(self) -> tuple[int, int, bytes]:
        head = self._read(8)
        ptype, status, length = head[0], head[1], struct.unpack(">H", head[2:4])[0]
        if length < 8 or length > 32768:
            raise ProtocolError(f"packet length {length}")
        return ptype, status, self._read(length - 8)

    def read_message(self) -> tuple[int, bytes]:
        ptype, status, data = self.read_packet()
        if ptype == PKT_ATTENTION:
            return ptype, data
        body = bytearray(data)
        while not status & STATUS_EOM:
            t2, status, data = self.read_packet()
            if t2 != ptype:
                raise ProtocolError("packet type changed inside a message")
            body += data
        return ptype, bytes(body)

    def _send(self, data: bytes) -> None:
        if self.tls is None:
            self.sock.sendall(data)
        else:
            self.tls.write(data)
            self.sock.sendall(self._out.read())

    def _packets(self, ptype: int, payload: bytes, size: int) -> bytes:
        out = bytearray()
        step = size - 8
        chunks = [payload[i:i + step] for i in range(0, len(payload), step)] or [b""]
        for i, chunk in enumerate(chunks):
            self._packet_id = (self._packet_id + 1) % 256
            status = STATUS_EOM if i == len(chunks) - 1 else 0
            out += struct.pack(">BBHHBB", ptype, status, len(chunk) + 8, 0, self._packet_id, 0) + chunk
        return bytes(out)

    def send_message(self, payload: bytes, ptype: int = PKT_REPLY) -> None:
        self._send(self._packets(ptype, payload, self.packet_size))

    def start_tls(self, context: ssl.SSLContext) -> None:
        """The TLS handshake, its records carried in PRELOGIN packets (MS-TDS 3.3.4.4)."""
        tls = context.wrap_bio(self._in, self._out, server_side=True)
        while True:
            try:
                tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                out = self._out.read()
                if out:
                    self.sock.sendall(self._packets(PKT_PRELOGIN, out, 4096))
                ptype, _status, data = self.read_packet()
                if ptype != PKT_PRELOGIN:
                    raise ProtocolError("expected the TLS handshake in a PRELOGIN packet") from None
                self._in.write(data)
        out = self._out.read()
        if out:
            self.sock.sendall(self._packets(PKT_PRELOGIN, out, 4096))
        if self._raw:  # bytes after the handshake are TLS records
            self._in.write(bytes(self._raw))
            self._raw.clear()
        self.tls = tls

    def start_strict_tls(self, context: ssl.SSLContext) -> None:
        """TDS 8.0 (strict): the TLS handshake first, its records straight on the TCP connection, before
        PRELOGIN; every packet after it, PRELOGIN included, inside TLS."""
        tls = context.wrap_bio(self._in, self._out, server_side=True)
        while True:
            try:
                tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                out = self._out.read()
                if out:
                    self.sock.sendall(out)
                if self._raw:
                    self._in.write(bytes(self._raw))
                    self._raw.clear()
                else:
                    self._in.write(self._recv())
        out = self._out.read()
        if out:
            self.sock.sendall(out)
        self.tls = tls

    def stop_tls(self) -> None:
        """ENCRYPT_OFF: only the login packet was encrypted; the session goes on in the clear."""
        self.tls = None
        self._plain.clear()


# ------------------------------------------------------------------------------------------ sessions


class _Handler(socketserver.BaseRequestHandler):
    server: _Server

    def setup(self) -> None:
        self.endpoint = self.server.endpoint
        self.engine = self.endpoint.engine
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.wire = _Wire(self.request)
        self.session: int | None = None
        self.database = "master"
        self.prepared: dict[int, tuple[str, str | None]] = {}
        self._handles = itertools.count(1)
        self._wake_r, self._wake_w = socket.socketpair()

    def handle(self) -> None:
        if not self.engine.available:
            return  # SQL Server is down: the client sees the connection closed
        self.endpoint._track(self.request, True)
        try:
            strict = self._strict()
            if strict is None:
                return
            if not self._login(strict=strict):
                return
            while self.engine.available:
                ptype, payload = self.wire.read_message()
                if ptype == PKT_ATTENTION:
                    self.wire.send_message(done(TOK_DONE, DONE_ATTN))  # nothing was running: acknowledge
                    continue
                if ptype not in (PKT_SQL_BATCH, PKT_RPC):
                    return  # bulk load, transaction manager: not modelled; SQL Server would answer, the lab hangs up
                self._request(ptype, payload)
        except (OSError, EOFError, ProtocolError, ssl.SSLError, ValueError, struct.error, UnicodeDecodeError):
            return
        finally:
            if self.session is not None:
                self.engine.end_session(self.session)  # session-owned application locks go with the session
            self.endpoint._track(self.request, False)
            self._wake_r.close()
            self._wake_w.close()

    # login
    def _strict(self) -> bool | None:
        """TDS 8.0 when the client's first byte is a TLS handshake record (0x16) rather than a PRELOGIN
        packet (0x12): SQL Server 2022 takes both on one port. True after the strict handshake, False for
        TDS 7.x, None when the client hung up or the lab has no certificate for a strict client."""
        try:
            first = self.request.recv(1, socket.MSG_PEEK)
        except OSError:
            return None
        if not first:
            return None
        if first[0] != TLS_HANDSHAKE:
            return False
        ep = self.endpoint
        if ep.strict_context is None:
            return None  # no certificate, or before SQL Server 2022: the TLS-first client is reset
        self.wire.start_strict_tls(ep.strict_context)
        ep._count("tls_strict")
        return True

    def _login(self, *, strict: bool = False) -> bool:
        ptype, payload = self.wire.read_message()
        if ptype != PKT_PRELOGIN:
            return False
        if strict:
            # inside TDS 8.0's TLS the PRELOGIN's encryption option means nothing (MS-TDS 2.2.6.5): the
            # answer says ENCRYPT_NOT_SUP, and no TLS inside TDS follows
            self.wire.send_message(build_prelogin(ENCRYPT_NOT_SUP))
            return self._login7(strict=True)
        offered = parse_prelogin(payload).get(1, bytes([ENCRYPT_NOT_SUP]))[:1] or bytes([ENCRYPT_NOT_SUP])
        ep = self.endpoint
        client = offered[0]
        if ep.tls_context is None:
            answer = ENCRYPT_NOT_SUP
        elif client in (ENCRYPT_ON, ENCRYPT_REQ) or ep.force_encryption and client == ENCRYPT_OFF:
            answer = ENCRYPT_ON
        elif client == ENCRYPT_OFF:
            answer = ENCRYPT_OFF
        else:
            answer = ENCRYPT_REQ if ep.force_encryption else ENCRYPT_NOT_SUP
        self.wire.send_message(build_prelogin(answer))
        if answer == ENCRYPT_REQ:
            return False  # the server requires encryption the client does not support: it hangs up
        if answer in (ENCRYPT_ON, ENCRYPT_OFF):
            assert ep.tls_context is not None  # ON and OFF are answered only when the endpoint has one
            self.wire.start_tls(ep.tls_context)
        ep._count({ENCRYPT_ON: "tls", ENCRYPT_OFF: "tls_login_only"}.get(answer, "plain"))
        return self._login7(login_only=answer == ENCRYPT_OFF)

    def _login7(self, *, strict: bool = False, login_only: bool = False) -> bool:
        """LOGIN7 and its answer: LOGINACK, or the login's error and a hang-up (False)."""
        ep = self.endpoint
        ptype, payload = self.wire.read_message()
        if ptype != PKT_LOGIN7:
            return False
        login = parse_login7(payload)
        if login_only:
            self.wire.stop_tls()
        name = ep.server_name
        if login["sspi"]:
            self.wire.send_message(message(TOK_ERROR, 18452, 1, 14, "Login failed. The login is from an untrusted "
                                           "domain and cannot be used with Integrated authentication.", name)
                                   + done(TOK_DONE, DONE_ERROR))
            return False
        if not ep.check_login(login["user"], login["password"]):
            self.wire.send_message(message(TOK_ERROR, 18456, 1, 14, f"Login failed for user '{login['user']}'.", name)
                                   + done(TOK_DONE, DONE_ERROR))
            return False
        wanted = login["database"] or "master"
        match = next((d for d in self.engine.databases if d.lower() == wanted.lower()), None)
        if match is None:
            self.wire.send_message(
                message(TOK_ERROR, 4060, 1, 11, f'Cannot open database "{wanted}" requested by the login. '
                        "The login failed.", name)
                + message(TOK_ERROR, 18456, 1, 14, f"Login failed for user '{login['user']}'.", name)
                + done(TOK_DONE, DONE_ERROR))
            return False
        self.database = match
        self.session = ep.next_session()
        size = login["packet_size"] if 512 <= login["packet_size"] <= 32767 else 4096
        major, minor, build = SERVER_VERSION
        ack = (bytes([1]) + struct.pack(">I", TDS74) + _bvarchar("Microsoft SQL Server")
               + bytes([major, minor]) + struct.pack(">H", build))
        reply = (envchange(1, match, "master")
                 + message(TOK_INFO, 5701, 2, 0, f"Changed database context to '{match}'.", name)
                 + _token(TOK_ENVCHANGE, bytes([7, len(COLLATION)]) + COLLATION + b"\x00")
                 + envchange(2, "us_english", "")
                 + message(TOK_INFO, 5703, 1, 0, "Changed language setting to us_english.", name)
                 + _token(TOK_LOGINACK, ack)
                 + envchange(4, str(size), "4096")
                 + done(TOK_DONE, DONE_FINAL))
        self.wire.send_message(reply)
        self.wire.packet_size = size
        return True

    # requests
    def _request(self, ptype: int, payload: bytes) -> None:
        cancel = threading.Event()
        box: dict[str, Any] = {}

        def work() -> None:
            try:
                box["reply"] = (self._batch if ptype == PKT_SQL_BATCH else self._rpc)(payload, cancel)
            except BaseException as exc:  # noqa: BLE001 - handed to the session's thread
                box["error"] = exc
            finally:
                with contextlib.suppress(OSError):
                    self._wake_w.send(b"x")

        worker = threading.Thread(target=work, name="lab-tds-statement", daemon=True)
        worker.start()
        attention = False
        while "reply" not in box and "error" not in box:
            if self.wire.pending():
                readable = [self.request]
            else:
                readable, _, _ = select.select([self.request, self._wake_r], [], [])
            if self._wake_r in readable:
                self._wake_r.recv(16)
                continue
            if self.request in readable:
                t, _ = self.wire.read_message()
                if t != PKT_ATTENTION:
                    cancel.set()
                    worker.join()
                    raise ProtocolError("a request arrived while one was running")
                attention = True
                cancel.set()
                worker.join()
                break
        worker.join()
        try:
            self._wake_r.setblocking(False)
            self._wake_r.recv(16)
        except OSError:
            pass
        finally:
            self._wake_r.setblocking(True)
        if attention and "error" not in box:
            # every client message has its own reply (MS-TDS 3.3.5.9; tedious reads exactly one message for
            # the request, then one for the attention): the cancelled request's reply first (what it had
            # produced, or a DONE with DONE_MORE clear, MS-TDS 4.19.2), then the acknowledgement
            self.endpoint._count("attention")
            self.wire.send_message(box.get("reply") or done(TOK_DONE, DONE_FINAL))
            self.wire.send_message(done(TOK_DONE, DONE_ATTN))
            return
        if "error" in box:
            raise box["error"]
        if not self.engine.available:
            raise EOFError
        self.wire.send_message(box["reply"])

    def _run(self, sql: str, params: list[Any], cancel: threading.Event) -> Any:
        kw: dict[str, Any] = {"session": self.session, "login": self.endpoint.username}
        if getattr(self.engine, "supports_cancel", False):
            kw["cancel"] = cancel
        return self.engine.execute(sql, [_engine_value(p) for p in params], self.database, **kw)

    def _results(self, res: Any, tok_done: int, *, last: int = DONE_MORE) -> bytes:
        """INFO for each message, then each result set with its DONE; the last set's DONE has `last`."""
        out = bytearray()
        name = self.endpoint.server_name
        for m in res.messages:
            out += message(TOK_INFO, info_number(m), 1, 0, m, name)
        for i, rs in enumerate(res.sets):
            more = last if i == len(res.sets) - 1 else DONE_MORE
            out += result_set(rs.columns, rs.rows) + done(tok_done, more | DONE_COUNT, len(rs.rows))
        return bytes(out)

    def _error(self, exc: EngineError) -> bytes:
        return message(TOK_ERROR, exc.number, exc.state, exc.severity, exc.message, self.endpoint.server_name)

    def _batch(self, payload: bytes, cancel: threading.Event) -> bytes:
        r = _Reader(payload)
        _skip_all_headers(r)
        sql = r.data[r.pos:].decode("utf-16-le")
        catalog = datatype_info(sql)
        if catalog is not None:
            return catalog
        try:
            res = self._run(sql, [], cancel)
        except EngineError as exc:
            return self._error(exc) + done(TOK_DONE, DONE_ERROR | DONE_FINAL)
        except Cancelled:
            return b""
        if res.sets:  # the last result's DONE ends the batch
            return self._results(res, TOK_DONE, last=DONE_FINAL)
        return self._results(res, TOK_DONE) + done(TOK_DONE, DONE_FINAL)

    def _rpc(self, payload: bytes, cancel: threading.Event) -> bytes:
        r = _Reader(payload)
        _skip_all_headers(r)
        out = bytearray()
        while r.more():
            n = r.u16()
            proc = PROC_IDS.get(r.u16(), "") if n == 0xFFFF else r.take(2 * n).decode("utf-16-le")
            r.u16()  # option flags
            params: list[tuple[str, int, Any]] = []
            while r.more() and r.data[r.pos] not in (0x80, 0xFE, 0xFF):
                pname = r.bvarchar()
                status = r.u8()
                params.append((pname.lower(), status, read_typed(r)))
            if r.more():
                r.u8()  # batch separator
            out += self._call(proc, params, cancel)
        return bytes(out)

    def _call(self, proc: str, params: list[tuple[str, int, Any]], cancel: threading.Event) -> bytes:
        short = proc.lower().split(".")[-1].strip("[]")
        self.endpoint._count(f"rpc:{short}")
        values = [p[2] for p in params]
        handle: int | None = None
        try:
            if short == "sp_executesql":
                stmt, decl, rest = str(values[0] or ""), (values[1] if len(values) > 1 else None), params[2:]
            elif short in ("sp_prepexec", "sp_prepare"):
                handle = next(self._handles)
                stmt, decl, rest = str(values[2] or ""), values[1], params[3:]
                self.prepared[handle] = (stmt, decl)
                if short == "sp_prepare":
                    return self._proc_end(handle, b"")
            elif short == "sp_execute":
                if values[0] not in self.prepared:
                    raise EngineError(8179, 1, 16, f"Could not find prepared statement with handle {values[0]}.")
                (stmt, decl), rest = self.prepared[values[0]], params[1:]
            elif short == "sp_unprepare":
                if values:
                    self.prepared.pop(values[0], None)
                return self._proc_end(None, b"")
            else:
                args = ", ".join(f"{n} = ?" if n else "?" for n, _s, _v in params)
                res = self._run(f"EXEC {proc} {args}".strip(), values, cancel)
                return self._proc_end(None, self._results(res, TOK_DONEINPROC), status=res.status)
            names = declared_names(decl)
            bound = {}
            for i, (pname, _status, v) in enumerate(rest):
                key = pname or (names[i] if i < len(names) else f"@p{i + 1}")
                bound[key] = v
            sql, ordered = bind_named(stmt, bound)
            res = self._run(sql, ordered, cancel)
        except EngineError as exc:
            return self._error(exc) + self._proc_end(handle, b"", error=True, status=exc.status)
        except IndexError:
            missing = EngineError(201, 4, 16, f"Procedure or function '{short}' expects a parameter, which was not "
                                              "supplied.")
            return self._error(missing) + self._proc_end(handle, b"", error=True)
        except Cancelled:
            return b""
        return self._proc_end(handle, self._results(res, TOK_DONEINPROC))

    def _proc_end(self, handle: int | None, body: bytes, *, error: bool = False, status: int | None = None) -> bytes:
        """The end of one RPC: RETURNSTATUS (MS-TDS 2.2.7.18: the procedure's return value, as sp_getapplock's
        -1 for a lock another session holds), the prepared handle, DONEPROC."""
        if status is None:
            status = 1 if error else 0
        out = bytearray(body) + bytes([TOK_RETURNSTATUS]) + struct.pack("<i", status)
        if handle is not None:
            out += (bytes([TOK_RETURNVALUE]) + struct.pack("<H", 0) + _bvarchar("@handle") + b"\x01"
                    + struct.pack("<IH", 0, 0x0001) + bytes([T_INTN, 4, 4]) + struct.pack("<i", handle))
        return bytes(out) + done(TOK_DONEPROC, DONE_ERROR if error else DONE_FINAL, cmd=CMD_EXECUTE)


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    endpoint: TdsEndpoint

    def shutdown_request(self, request: Any) -> None:
        if not self.endpoint.engine.available or self.endpoint._stop.is_set():
            with contextlib.suppress(OSError):  # SO_LINGER 0 and no FIN first: close() resets the connection
                request.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_request(request)
            return
        super().shutdown_request(request)


class TdsEndpoint:
    """The lab's SQL Server on (address, port), speaking TDS 7.4; `.port` is the bound port (0 asks the OS).
    `certificate` (an entsso.lab.pki.IssuedCertificate) enables TLS; without one the server answers
    PRELOGIN with ENCRYPT_NOT_SUP, as SQL Server without a certificate never does (it makes one): tests only."""

    def __init__(self, engine: SqlEngine, address: str, port: int, username: str, password: str, *,
                 certificate: Any = None, force_encryption: bool = False, server_name: str = "LABSQL",
                 strict: bool = True) -> None:
        self.engine = engine
        self.address = address
        self.port = port
        self.username = username
        self._password = password
        self.server_name = server_name
        self.force_encryption = force_encryption
        self.tls_context: ssl.SSLContext | None = None
        self.strict_context: ssl.SSLContext | None = None
        if certificate is not None:  # TLS inside TDS 7.x is TLS 1.2
            self.tls_context = certificate.server_context(maximum=ssl.TLSVersion.TLSv1_2)
        if certificate is not None and strict:
            # TDS 8.0 (strict): TLS 1.2 or 1.3 before anything of TDS, ALPN "tds/8.0" (SQL Server 2022)
            self.strict_context = certificate.server_context()
            self.strict_context.set_alpn_protocols([ALPN_TDS8])
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._sessions = itertools.count(51)  # SQL Server's user sessions start above the system ones
        self._conns: set[socket.socket] = set()
        self._conns_lock = threading.Lock()
        self._watch: threading.Thread | None = None
        self._stop = threading.Event()
        # what clients did, for tests: sessions by encryption ("tls", "tls_login_only", "plain"), RPCs by
        # procedure ("rpc:sp_executesql"), "attention"
        self.counts: dict[str, int] = {}

    def _count(self, key: str) -> None:
        with self._conns_lock:
            self.counts[key] = self.counts.get(key, 0) + 1

    def __repr__(self) -> str:
        return f"TdsEndpoint({self.address}:{self.port}, user={self.username!r})"

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
                # wake the session's reader without a FIN; _Server.shutdown_request then resets the connection,
                # as a stopped SQL Server's connections are reset (the client reports 08S01)
                c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                c.shutdown(socket.SHUT_RD)
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
                                        name=f"lab-tds:{self.address}:{self.port}", daemon=True)
        self._thread.start()
        self._watch = threading.Thread(target=self._watch_availability, name="lab-tds-watch", daemon=True)
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
