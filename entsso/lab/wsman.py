"""The lab's WinRM service: a WS-Management endpoint per simulated Windows host, on loopback.

Each host listens on its own loopback address (127.0.0.2, 127.0.0.3, …) and the shared port, speaks the
subset of WS-Management that pywinrm and testinfra's winrm backend use (the cmd shell's Create, Command,
Send, Receive, Signal and Delete), authenticates with Basic or NTLM (pyspnego's acceptor, with WinRM
message encryption over HTTP exactly as Windows does it) and hands each command line to a ShellBackend.

Choices a reader may want to know about:
- request_latency(host) is slept once per Command request (before the CommandId is returned), not per
  Receive poll: a call costs one latency however long the command runs, as a ~1 s Windows host would.
- Over HTTP the service is Windows' default, AllowUnencrypted=false: Basic is not offered (401) and a
  plain SOAP body on an NTLM-authenticated connection is refused with HTTP 500 and no envelope, as
  Windows answers it (docs/domain-notes.md, "WinRM over HTTP"); only sealed bodies are served. Pass
  allow_unencrypted=True to model a service configured with AllowUnencrypted=true.
- `tls`: one (certificate, key) pair for every host, or a mapping of host name to its own pair (the lab
  issues one per host from its CA, entsso.lab.pki): each host then listens on HTTPS only.
- cmd.exe's 8191-character command-line limit applies unless the client sets WINRS_SKIP_CMD_SHELL.
- stdin reaches the process only for a command created with WINRS_CONSOLEMODE_STDIN false (stdin as a
  pipe, MS-WSMV 3.1.4.11). A console-mode command starts at once with nothing on its stdin, and Send
  data is dropped (counted as stdin_to_console): powershell.exe's $input stays empty, as Ansible's WinRM
  plugin, which turns console mode off whenever it sends stdin, has it on real Windows.
- Output is returned when the command has finished, in Receive responses of at most 64 KiB of output
  each (State Running until the last), as Windows splits a large output across Receive calls.
- NTLM reads credentials from the process-wide NTLM_USER_FILE: every running WsmanServer shares one
  smbpasswd-style file holding NT hashes only. A user name with two different passwords on two endpoints
  is therefore only known by the first password for NTLM (Basic still checks each endpoint's own).
"""
from __future__ import annotations

import base64
import binascii
import contextlib
import logging
import os
import re
import shutil
import socket
import ssl
import struct
import tempfile
import threading
import time
import traceback
import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol
from collections.abc import Callable
from xml.sax.saxutils import escape as _xml_text

from entsso.lab.pki import server_context

__all__ = ["CommandResult", "HostEndpoint", "ShellBackend", "WsmanFault", "WsmanServer", "user_forms"]

log = logging.getLogger(__name__)

CMD_LINE_LIMIT = 8191  # cmd.exe: "The maximum length of the string that you can use at the command prompt"
CMD_LINE_TOO_LONG = b"The command line is too long.\r\n"
RECEIVE_CHUNK = 64 * 1024  # raw output bytes per Receive response (stays well under MaxEnvelopeSize 153600)
STREAM_CHUNK = 16 * 1024  # raw bytes per <rsp:Stream> element

NS = {
    "s": "http://www.w3.org/2003/05/soap-envelope",
    "a": "http://schemas.xmlsoap.org/ws/2004/08/addressing",
    "x": "http://schemas.xmlsoap.org/ws/2004/09/transfer",
    "w": "http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd",
    "p": "http://schemas.microsoft.com/wbem/wsman/1/wsman.xsd",
    "rsp": "http://schemas.microsoft.com/wbem/wsman/1/windows/shell",
    "f": "http://schemas.microsoft.com/wbem/wsman/1/wsmanfault",
}
SHELL_URI = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell"
CMD_RESOURCE = SHELL_URI + "/cmd"
ACTION_CREATE = "http://schemas.xmlsoap.org/ws/2004/09/transfer/Create"
ACTION_DELETE = "http://schemas.xmlsoap.org/ws/2004/09/transfer/Delete"
ACTION_COMMAND = SHELL_URI + "/Command"
ACTION_SEND = SHELL_URI + "/Send"
ACTION_RECEIVE = SHELL_URI + "/Receive"
ACTION_SIGNAL = SHELL_URI + "/Signal"
ACTION_FAULT = "http://schemas.dmtf.org/wbem/wsman/1/wsman/fault"
STATE_DONE = SHELL_URI + "/CommandState/Done"
STATE_RUNNING = SHELL_URI + "/CommandState/Running"
SIGNAL_TERMINATE = SHELL_URI + "/signal/terminate"
SIGNAL_CTRL_C = SHELL_URI + "/signal/ctrl_c"

ENCRYPTED_PROTOCOL = "application/HTTP-SPNEGO-session-encrypted"
ENCRYPTED_CONTENT_TYPE = f'multipart/encrypted;protocol="{ENCRYPTED_PROTOCOL}";boundary="Encrypted Boundary"'
BOUNDARY = b"--Encrypted Boundary"
SOAP_CONTENT_TYPE = "application/soap+xml;charset=UTF-8"

# WS-Management fault codes as Windows reports them in <f:WSManFault Code="…">
FAULT_TIMED_OUT = 2150858793  # 0x80338029 ERROR_WSMAN_OPERATION_TIMEDOUT
FAULT_SHELL_NOT_FOUND = 2150858843  # 0x8033805B
FAULT_INVALID_ACTION = 2150858753  # 0x80338001 ERROR_WSMAN_INVALID_ACTIONURI
FAULT_BAD_REQUEST = 2150858817  # 0x80338041 ERROR_WSMAN_INVALID_PARAMETER (lab: anything malformed)
TIMED_OUT_TEXT = ("The WS-Management service cannot complete the operation within the time specified in "
                  "OperationTimeout.  ")


@dataclass(frozen=True)
class CommandResult:
    stdout: bytes
    stderr: bytes
    exit_code: int


class ShellBackend(Protocol):
    def wants_stdin(self, host: str, command_line: str) -> bool: ...  # True: wait for Send(stdin, End=true)

    def execute(self, host: str, command_line: str, stdin: bytes) -> CommandResult: ...  # may block a long time


@dataclass(frozen=True)
class HostEndpoint:
    name: str  # host name, e.g. "NODE1"
    address: str  # e.g. "127.0.0.2"
    port: int
    username: str  # e.g. "LAB\\svc-entsso"; also accepted bare ("svc-entsso") and as "svc-entsso@LAB"
    password: str


def user_forms(username: str) -> list[str]:
    """The spellings of one account Windows accepts: DOMAIN\\user, user@DOMAIN and the bare user name."""
    if "\\" in username:
        domain, user = username.split("\\", 1)
    elif "@" in username:
        user, domain = username.split("@", 1)
    else:
        return [username]
    return [f"{domain}\\{user}", f"{user}@{domain}", user]


# --- NTLM credential store (process-global, as pyspnego reads it from NTLM_USER_FILE) -----------------

class _NtlmStore:
    """One smbpasswd-style file shared by every running WsmanServer in the process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._owners: dict[int, list[str]] = {}
        self._dir: str | None = None
        self._previous_env: str | None = None

    def register(self, owner: int, endpoints: list[HostEndpoint]) -> None:
        from spnego._ntlm_raw.crypto import ntowfv1  # NT hash (MD4 of UTF-16LE), independent of OpenSSL's md4

        lines = []
        for ep in endpoints:
            nt = base64.b16encode(ntowfv1(ep.password)).decode()
            for form in user_forms(ep.username):
                # USERNAME:UID:LM_HASH:NT_HASH:FLAGS:LCT; no LM hash: NTLMv2 only needs the NT hash
                lines.append(f"{form}:1000:{'0' * 32}:{nt}:[U]:LCT-00000000")
        with self._lock:
            if self._dir is None:
                self._dir = tempfile.mkdtemp(prefix="entsso-lab-ntlm-")
                self._previous_env = os.environ.get("NTLM_USER_FILE")
            self._owners[owner] = lines
            self._write()

    def unregister(self, owner: int) -> None:
        with self._lock:
            self._owners.pop(owner, None)
            if self._owners or self._dir is None:
                if self._dir is not None:
                    self._write()
                return
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None
            if self._previous_env is None:
                os.environ.pop("NTLM_USER_FILE", None)
            else:
                os.environ["NTLM_USER_FILE"] = self._previous_env

    def _write(self) -> None:
        assert self._dir is not None
        path = os.path.join(self._dir, "ntlm_user_file")
        seen: dict[str, str] = {}
        out = []
        for lines in self._owners.values():
            for line in lines:
                key, nt = line.split(":", 1)[0].lower(), line.split(":")[3]
                if key not in seen:  # first password wins: pyspnego stops at the first matching line
                    seen[key] = nt
                    out.append(line)
                elif seen[key] != nt:
                    log.warning("lab WinRM: %s has two different passwords on two endpoints; NTLM accepts only "
                                "the first (Basic checks each endpoint's own)", key)
        tmp = path + ".new"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write("\n".join(out) + "\n")
        os.replace(tmp, path)  # atomic: a concurrent NTLM handshake never sees a half-written file
        os.environ["NTLM_USER_FILE"] = path


_NTLM_STORE = _NtlmStore()


# --- shells and commands ---------------------------------------------------------------------------

@dataclass
class _Command:
    id: str
    command_line: str
    wants_stdin: bool
    console_stdin: bool = True  # WINRS_CONSOLEMODE_STDIN: Send data never reaches the process's stdin
    stdin: bytearray = field(default_factory=bytearray)
    started: bool = False
    done: threading.Event = field(default_factory=threading.Event)
    result: CommandResult | None = None
    out_sent: int = 0
    err_sent: int = 0


@dataclass
class _Shell:
    id: str
    owner: str
    commands: dict[str, _Command] = field(default_factory=dict)
    last_used: float = field(default_factory=time.monotonic)  # WinRM deletes a shell idle past IdleTimeout


class WsmanFault(Exception):
    """A SOAP fault to return (HTTP 500), shaped like Windows' WSManFault."""

    def __init__(self, code: int, subcode: str, message: str, *, sender: bool = True) -> None:
        super().__init__(message)
        self.code = code
        self.subcode = subcode
        self.message = message
        self.sender = sender


class _HostState:
    """Everything the server knows about one simulated host; guarded by `lock`."""

    STAT_KEYS = ("requests", "commands", "shells_created", "auth_failures", "receive_timeouts", "shells_open",
                 "bytes_in", "bytes_out", "encrypted_requests", "stdin_to_console", "tls_handshakes",
                 "unencrypted_refused")

    def __init__(self, endpoint: HostEndpoint) -> None:
        self.endpoint = endpoint
        self.lock = threading.Lock()
        self.switch = threading.Lock()  # serialises opening/closing the listener (set_reachable, start, stop)
        self.reachable = True
        self.listener: _Listener | None = None
        self.thread: threading.Thread | None = None
        self.shells: dict[str, _Shell] = {}
        self.stats: dict[str, int] = {k: 0 for k in self.STAT_KEYS}
        self.accepted_users = {u.lower() for u in user_forms(endpoint.username)}

    def count(self, key: str, n: int = 1) -> None:
        with self.lock:
            self.stats[key] += n


# --- HTTP ------------------------------------------------------------------------------------------

class _Listener(ThreadingHTTPServer):
    """The HTTP listener of one host; remembers its live connections so they can be cut."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

    def __init__(self, wsman: WsmanServer, host: _HostState, ssl_context: ssl.SSLContext | None) -> None:
        self.wsman = wsman
        self.host = host
        self.ssl_context = ssl_context
        self.connections: set[socket.socket] = set()
        self.conn_lock = threading.Lock()
        super().__init__((host.endpoint.address, host.endpoint.port), _Handler)

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, addr = super().get_request()
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # SOAP round trips, not bulk transfer
        if self.ssl_context is not None:
            # the TLS handshake happens in the connection's own thread (Handler.setup), not in accept()
            sock = self.ssl_context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        with self.conn_lock:
            self.connections.add(sock)
        return sock, addr

    def forget(self, sock: socket.socket) -> None:
        with self.conn_lock:
            self.connections.discard(sock)

    def cut(self) -> None:
        """Stop listening and reset every established connection (a host that went away)."""
        self.shutdown()
        self.server_close()
        with self.conn_lock:
            conns, self.connections = list(self.connections), set()
        for sock in conns:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # a client that vanished mid-response is normal here (reachability faults, abandoned polls)
        log.debug("wsman connection from %s ended with an error", client_address, exc_info=True)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: NTLM authenticates the connection, not the request
    server: _Listener
    server_version = "Microsoft-HTTPAPI/2.0"
    sys_version = ""

    def setup(self) -> None:
        if isinstance(self.request, ssl.SSLSocket):
            try:
                self.request.do_handshake()
            except (OSError, ssl.SSLError):
                self.server.forget(self.request)
                raise
            self.server.host.count("tls_handshakes")
        super().setup()
        self.ntlm: Any = None  # spnego server context of this connection, once complete
        self.ntlm_pending: Any = None  # context between NEGOTIATE and AUTHENTICATE

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.forget(self.request)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        log.debug("%s %s", self.server.host.endpoint.name, format % args)

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        self._read_body()
        self._reply(405, b"", {"Allow": "POST"})

    def do_POST(self) -> None:  # noqa: N802 - stdlib naming
        host = self.server.host
        body = self._read_body()
        host.count("requests")
        host.count("bytes_in", len(body))
        if self.path.split("?", 1)[0].rstrip("/").lower() != "/wsman":
            self._reply(404, b"")
            return
        if not self._authenticate():
            return
        content_type = self.headers.get("Content-Type", "")
        encrypted = content_type.lower().startswith("multipart/encrypted")
        if encrypted:
            if self.ntlm is None or ENCRYPTED_PROTOCOL.lower() not in content_type.lower():
                self._reply(400, b"")
                return
            try:
                body = _unwrap(self.ntlm, body)
            except Exception:  # noqa: BLE001 - sealed under another connection's keys, or damaged
                # typically a client whose connection was cut re-authenticated and resent a body sealed with
                # the old session's keys: a bad request, not bad credentials
                log.debug("undecryptable message on %s", host.endpoint.name, exc_info=True)
                self._reply(400, b"")
                return
            host.count("encrypted_requests")
        elif body and not self.server.wsman.allow_unencrypted and self.server.ssl_context is None:
            # AllowUnencrypted=false over HTTP: Windows refuses a plain body on an authenticated connection
            # with HTTP 500 and logs that it received an unencrypted message (docs/domain-notes.md)
            host.count("unencrypted_refused")
            self._reply(500, b"")
            return
        if not body:
            # pywinrm's setup_encryption: an empty POST that only authenticates the connection
            self._reply(200, b"")
            return
        status, xml = self.server.wsman._dispatch(host, body)
        if encrypted:
            self._reply(status, _wrap(self.ntlm, xml), {"Content-Type": ENCRYPTED_CONTENT_TYPE})
        else:
            self._reply(status, xml, {"Content-Type": SOAP_CONTENT_TYPE})

    # authentication
    def _authenticate(self) -> bool:
        host = self.server.host
        header = self.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        scheme = scheme.lower()
        if scheme == "basic":
            try:
                user, _, password = base64.b64decode(token.strip()).decode("utf-8").partition(":")
            except (binascii.Error, UnicodeDecodeError):
                user, password = "", None
            if user.lower() in host.accepted_users and password == host.endpoint.password:
                if not self.server.wsman.allow_unencrypted and self.server.ssl_context is None:
                    self._deny()  # Windows default: Basic only over HTTPS
                    return False
                return True
            host.count("auth_failures")
            self._deny()
            return False
        if scheme in ("negotiate", "ntlm"):
            return self._ntlm_step(scheme, token.strip())
        if self.ntlm is not None:
            return True  # the connection authenticated earlier
        self._deny()
        return False

    def _ntlm_step(self, scheme: str, token_b64: str) -> bool:
        import spnego
        import spnego.exceptions

        host = self.server.host
        label = "NTLM" if scheme == "ntlm" else "Negotiate"
        try:
            token = base64.b64decode(token_b64)
        except binascii.Error:
            token = b""
        msg_type = struct.unpack("<I", token[8:12])[0] if token.startswith(b"NTLMSSP\x00") and len(token) >= 12 else 0
        try:
            if msg_type == 1:
                self.ntlm = None
                self.ntlm_pending = spnego.server(protocol="ntlm", service="http")
                challenge = self.ntlm_pending.step(token)
                self._reply(401, b"", {"WWW-Authenticate": f"{label} {base64.b64encode(challenge or b'').decode()}"})
                return False
            if msg_type == 3 and self.ntlm_pending is not None:
                ctx, self.ntlm_pending = self.ntlm_pending, None
                ctx.step(token)
                if ctx.complete:
                    self.ntlm = ctx
                    return True
        except spnego.exceptions.SpnegoError:
            log.debug("NTLM refused on %s", host.endpoint.name, exc_info=True)
        self.ntlm = self.ntlm_pending = None
        host.count("auth_failures")
        self._deny()
        return False

    def _deny(self) -> None:
        headers = [("WWW-Authenticate", "Negotiate")]
        if self.server.wsman.allow_unencrypted or self.server.ssl_context is not None:
            headers.append(("WWW-Authenticate", 'Basic realm="WSMAN"'))
        self._reply(401, b"", headers)

    # plumbing
    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _reply(self, status: int, body: bytes, headers: dict[str, str] | list[tuple[str, str]] | None = None) -> None:
        self.send_response(status)
        items = headers.items() if isinstance(headers, dict) else (headers or [])
        for name, value in items:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body:
            self.wfile.write(body)
        self.wfile.flush()
        self.server.host.count("bytes_out", len(body))


# --- WinRM message encryption (MS-WSMV 2.2.9.1.1, as pywinrm's winrm/encryption.py frames it) --------

def _unwrap(ctx: Any, body: bytes) -> bytes:
    m = re.search(rb"Length=(\d+)\r\n", body)
    marker = b"\tContent-Type: application/octet-stream\r\n"
    start = body.find(marker)
    if not m or start < 0:
        raise ValueError("not a multipart/encrypted WinRM message")
    length = int(m.group(1))
    pos = start + len(marker)
    sig_len = struct.unpack("<i", body[pos:pos + 4])[0]
    header = body[pos + 4:pos + 4 + sig_len]
    data = body[pos + 4 + sig_len:pos + 4 + sig_len + length]  # RC4 sealing keeps the length
    plain = ctx.unwrap_winrm(header, data)
    if len(plain) != length:
        raise ValueError("encrypted length does not match OriginalContent")
    return plain


def _wrap(ctx: Any, plain: bytes) -> bytes:
    res = ctx.wrap_winrm(plain)
    return (BOUNDARY + b"\r\n"
            + f"\tContent-Type: {ENCRYPTED_PROTOCOL}\r\n".encode()
            + f"\tOriginalContent: type={SOAP_CONTENT_TYPE};Length={len(plain)}\r\n".encode()
            + BOUNDARY + b"\r\n\tContent-Type: application/octet-stream\r\n"
            + struct.pack("<i", len(res.header)) + res.header + res.data
            + BOUNDARY + b"--\r\n")


# --- SOAP ------------------------------------------------------------------------------------------

def _q(prefix: str, name: str) -> str:
    return f"{{{NS[prefix]}}}{name}"


def _duration_seconds(text: str | None) -> float | None:
    m = re.fullmatch(r"P(?:T(?:([\d.]+)H)?(?:([\d.]+)M)?(?:([\d.]+)S)?)?", (text or "").strip())
    if not m or not text:
        return None
    h, mi, s = (float(g) if g else 0.0 for g in m.groups())
    return h * 3600 + mi * 60 + s


def _envelope(action: str, relates_to: str, body: str) -> bytes:
    return (
        '<s:Envelope xml:lang="en-US" '
        + " ".join(f'xmlns:{p}="{u}"' for p, u in NS.items() if p != "f")
        + f"><s:Header><a:Action>{action}</a:Action>"
        f"<a:MessageID>uuid:{str(uuid.uuid4()).upper()}</a:MessageID>"
        "<a:To>http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous</a:To>"
        f"<a:RelatesTo>{_xml_text(relates_to)}</a:RelatesTo></s:Header>"
        f"<s:Body>{body}</s:Body></s:Envelope>"
    ).encode("utf-8")


def _fault_body(fault: WsmanFault, machine: str) -> str:
    text = _xml_text(fault.message)
    return (
        f"<s:Fault><s:Code><s:Value>{'s:Sender' if fault.sender else 's:Receiver'}</s:Value>"
        f"<s:Subcode><s:Value>{fault.subcode}</s:Value></s:Subcode></s:Code>"
        f'<s:Reason><s:Text xml:lang="en-US">{text}</s:Text></s:Reason>'
        f'<s:Detail><f:WSManFault xmlns:f="{NS["f"]}" Code="{fault.code}" Machine="{_xml_text(machine)}">'
        f"<f:Message>{text}</f:Message></f:WSManFault></s:Detail></s:Fault>"
    )


class WsmanServer:
    """The WinRM service of every simulated host. Thread-safe; start() before use, stop() at the end."""

    def __init__(self, endpoints: list[HostEndpoint], backend: ShellBackend, *, max_receive_wait: float = 5.0,
                 request_latency: Callable[[str], float] | None = None,
                 tls: tuple[str, str] | dict[str, tuple[str, str]] | None = None,
                 allow_unencrypted: bool = False, shell_idle_timeout: float = 7200.0) -> None:
        names = [e.name for e in endpoints]
        if len(set(names)) != len(names):
            raise ValueError(f"host names must be unique, got {names}")
        self.backend = backend
        self.max_receive_wait = max_receive_wait
        self.request_latency = request_latency
        # winrm/config/winrs IdleTimeout (real seconds here): a shell with no request for longer is deleted
        # by the service, and a request naming it gets fault 2150858843
        self.shell_idle_timeout = shell_idle_timeout
        self.tls = tls
        self.allow_unencrypted = allow_unencrypted
        self._hosts = {e.name: _HostState(e) for e in endpoints}
        self._ssl_contexts: dict[str, ssl.SSLContext] = {}
        self._started = False
        self._lifecycle = threading.Lock()

    # lifecycle
    def start(self) -> None:
        with self._lifecycle:
            if self._started:
                return
            for name in self._hosts:
                pair = self.tls.get(name) if isinstance(self.tls, dict) else self.tls
                if pair:
                    self._ssl_contexts[name] = server_context(*pair)
            _NTLM_STORE.register(id(self), [h.endpoint for h in self._hosts.values()])
            self._started = True
            try:
                for host in self._hosts.values():
                    with host.switch, host.lock:
                        if host.reachable:
                            self._listen(host)
            except Exception:
                self._started = False
                self._stop_all()
                raise

    def stop(self) -> None:
        with self._lifecycle:
            if not self._started:
                return
            self._started = False
            self._stop_all()

    def _stop_all(self) -> None:
        for host in self._hosts.values():
            with host.switch:
                with host.lock:
                    listener, host.listener = host.listener, None
                if listener is not None:
                    listener.cut()
        _NTLM_STORE.unregister(id(self))

    def _listen(self, host: _HostState) -> None:
        """Open the host's listener (caller holds host.lock)."""
        listener = _Listener(self, host, self._ssl_contexts.get(host.endpoint.name))
        host.listener = listener
        host.thread = threading.Thread(target=listener.serve_forever, kwargs={"poll_interval": 0.05},
                                       name=f"wsman-{host.endpoint.name}", daemon=True)
        host.thread.start()

    def set_reachable(self, host: str, reachable: bool, *, restarted: bool = False) -> None:
        """Unreachable: the host's port refuses connections and open connections are reset. `restarted`
        (a reboot, a node that is down): its WinRM service stops too, and with it every shell it kept; off
        the network only, the shells wait for their IdleTimeout as on Windows."""
        state = self._hosts[host]
        if state.reachable == reachable:  # the lab's watcher calls this every 50 ms
            return
        with state.switch:
            if state.reachable == reachable:
                return
            if not reachable:
                with state.lock:
                    state.reachable = False
                    listener, state.listener = state.listener, None
                if listener is not None:
                    listener.cut()
                if restarted:
                    with state.lock:
                        state.shells.clear()
                return
            with state.lock:
                if self._started and state.listener is None:
                    self._listen(state)  # raises (and stays unreachable, so the next call retries) if bind fails
                state.reachable = True

    @property
    def stats(self) -> dict[str, Any]:
        """{"hosts": {NAME: {requests, commands, auth_failures, receive_timeouts, shells_open, bytes_in,
        bytes_out, encrypted_requests, stdin_to_console, tls_handshakes, unencrypted_refused}},
        "totals": {same keys summed}}; shells_open is the current count."""
        hosts: dict[str, dict[str, int]] = {}
        for name, h in self._hosts.items():
            with h.lock:
                hosts[name] = dict(h.stats, shells_open=len(h.shells))
        totals = {k: sum(s[k] for s in hosts.values()) for k in _HostState.STAT_KEYS}
        return {"hosts": hosts, "totals": totals}

    def endpoint_url(self, host: str) -> str:
        ep = self._hosts[host].endpoint
        return f"{'https' if self._uses_tls(host) else 'http'}://{ep.address}:{ep.port}/wsman"

    def _uses_tls(self, host: str) -> bool:
        return bool(self.tls.get(host) if isinstance(self.tls, dict) else self.tls)

    # SOAP dispatch
    def _dispatch(self, host: _HostState, body: bytes) -> tuple[int, bytes]:
        relates_to = ""
        try:
            try:
                root = ET.fromstring(body)
            except ET.ParseError as exc:
                raise WsmanFault(FAULT_BAD_REQUEST, "w:InvalidMessageInformationHeader",
                                 f"The WS-Management service cannot process the request because the XML is "
                                 f"invalid: {exc}.") from None
            header = root.find(_q("s", "Header"))
            soap_body = root.find(_q("s", "Body"))
            if header is None or soap_body is None:
                raise WsmanFault(FAULT_BAD_REQUEST, "w:InvalidMessageInformationHeader",
                                 "The WS-Management service cannot process the request: the SOAP envelope has no "
                                 "Header or no Body.")
            relates_to = (header.findtext(_q("a", "MessageID")) or "").strip()
            action = (header.findtext(_q("a", "Action")) or "").strip()
            handler = {
                ACTION_CREATE: self._create,
                ACTION_COMMAND: self._command,
                ACTION_SEND: self._send,
                ACTION_RECEIVE: self._receive,
                ACTION_SIGNAL: self._signal,
                ACTION_DELETE: self._delete,
            }.get(action)
            if handler is None:
                raise WsmanFault(FAULT_INVALID_ACTION, "a:ActionNotSupported",
                                 f"The WS-Management service cannot process the request: the action "
                                 f"{action or '(none)'} is not supported. This lab endpoint implements the cmd "
                                 "shell's Create, Command, Send, Receive, Signal and Delete.")
            resource = (header.findtext(_q("w", "ResourceURI")) or "").strip()
            if resource and resource.lower() != CMD_RESOURCE:
                raise WsmanFault(2150858752, "w:DestinationUnreachable",
                                 f"The WS-Management service cannot process the request. The service cannot find "
                                 f"the resource identified by the resource URI {resource}; this lab endpoint only "
                                 f"serves {CMD_RESOURCE}.")
            out_action, out_body = handler(host, header, soap_body)
            return 200, _envelope(out_action, relates_to, out_body)
        except WsmanFault as fault:
            return 500, _envelope(ACTION_FAULT, relates_to, _fault_body(fault, host.endpoint.name))

    @staticmethod
    def _options(header: ET.Element) -> dict[str, str]:
        opts = {}
        for opt in header.iter(_q("w", "Option")):
            opts[opt.get("Name", "").upper()] = (opt.text or "").strip()
        return opts

    def _shell(self, host: _HostState, header: ET.Element) -> _Shell:
        shell_id = ""
        for sel in header.iter(_q("w", "Selector")):
            if sel.get("Name") == "ShellId":
                shell_id = (sel.text or "").strip()
        now = time.monotonic()
        with host.lock:
            shell = host.shells.get(shell_id.upper())
            if shell is not None and now - shell.last_used > self.shell_idle_timeout:
                del host.shells[shell.id]  # idle past IdleTimeout: the service deleted it
                shell = None
            if shell is not None:
                shell.last_used = now
        if shell is None:
            raise WsmanFault(FAULT_SHELL_NOT_FOUND, "w:InvalidSelectors",
                             f"The request for the Windows Remote Shell with ShellId {shell_id} failed because the "
                             "shell was not found on the server. Possible causes are: the specified ShellId is "
                             "incorrect or the shell no longer exists on the server. Provide the correct ShellId or "
                             "create a new shell and retry the operation.")
        return shell

    @staticmethod
    def _command_of(host: _HostState, shell: _Shell, command_id: str) -> _Command:
        with host.lock:
            cmd = shell.commands.get(command_id.upper())
        if cmd is None:
            raise WsmanFault(FAULT_BAD_REQUEST, "w:InvalidParameter",
                             f"The Windows Remote Shell received a request to perform an operation on a command "
                             f"identifier {command_id} that does not exist. Either the command has completed "
                             "execution or the client specified an invalid command identifier.")
        return cmd

    def _create(self, host: _HostState, header: ET.Element, body: ET.Element) -> tuple[str, str]:
        shell_id = str(uuid.uuid4()).upper()
        with host.lock:
            host.shells[shell_id] = _Shell(shell_id, host.endpoint.username)
            host.stats["shells_created"] += 1
        ep = host.endpoint
        addr = f"{'https' if self._uses_tls(ep.name) else 'http'}://{ep.address}:{ep.port}/wsman"
        return "http://schemas.xmlsoap.org/ws/2004/09/transfer/CreateResponse", (
            f"<x:ResourceCreated><a:Address>{addr}</a:Address><a:ReferenceParameters>"
            f"<w:ResourceURI>{CMD_RESOURCE}</w:ResourceURI><w:SelectorSet>"
            f'<w:Selector Name="ShellId">{shell_id}</w:Selector></w:SelectorSet></a:ReferenceParameters>'
            f"</x:ResourceCreated>"
            f"<rsp:Shell><rsp:ShellId>{shell_id}</rsp:ShellId><rsp:ResourceUri>{CMD_RESOURCE}</rsp:ResourceUri>"
            f"<rsp:Owner>{_xml_text(ep.username)}</rsp:Owner><rsp:ClientIP>127.0.0.1</rsp:ClientIP>"
            f"<rsp:IdleTimeOut>PT{self.shell_idle_timeout:.3f}S</rsp:IdleTimeOut><rsp:InputStreams>stdin</rsp:InputStreams>"
            "<rsp:OutputStreams>stdout stderr</rsp:OutputStreams><rsp:ShellRunTime>P0DT0H0M0S</rsp:ShellRunTime>"
            "<rsp:ShellInactivity>P0DT0H0M0S</rsp:ShellInactivity></rsp:Shell>"
        )

    def _command(self, host: _HostState, header: ET.Element, body: ET.Element) -> tuple[str, str]:
        shell = self._shell(host, header)
        line_el = body.find(_q("rsp", "CommandLine"))
        if line_el is None:
            raise WsmanFault(FAULT_BAD_REQUEST, "w:InvalidParameter",
                             "The WS-Management service cannot process the request: the Command body has no "
                             "rsp:CommandLine element.")
        command = line_el.findtext(_q("rsp", "Command")) or ""
        args = [a.text or "" for a in line_el.findall(_q("rsp", "Arguments"))]
        command_line = " ".join([command, *args]) if args else command
        options = self._options(header)
        skip_cmd = options.get("WINRS_SKIP_CMD_SHELL", "FALSE").upper() == "TRUE"
        # MS-WSMV 3.1.4.11: "console if TRUE and pipe if FALSE"; absent, console (what pywinrm sends by default)
        console_stdin = options.get("WINRS_CONSOLEMODE_STDIN", "TRUE").upper() != "FALSE"
        name = host.endpoint.name
        cmd = _Command(str(uuid.uuid4()).upper(), command_line, wants_stdin=False, console_stdin=console_stdin)
        if len(command_line) > CMD_LINE_LIMIT and not skip_cmd:
            # cmd.exe refuses the line before anything runs
            cmd.result = CommandResult(b"", CMD_LINE_TOO_LONG, 1)
            cmd.started = True
            cmd.done.set()
        elif not console_stdin:
            # stdin is a pipe: the process reads what Send delivers, so it starts once stdin has ended
            cmd.wants_stdin = bool(self.backend.wants_stdin(name, command_line))
        # else console-mode stdin: the process starts at once with nothing redirected to its stdin, and
        # what Send delivers goes to a console input buffer powershell.exe's $input never reads
        with host.lock:
            shell.commands[cmd.id] = cmd
            host.stats["commands"] += 1
        if not cmd.done.is_set() and not cmd.wants_stdin:
            self._run(host, cmd)
        if self.request_latency is not None:
            time.sleep(max(0.0, float(self.request_latency(name))))
        return SHELL_URI + "/CommandResponse", (
            f"<rsp:CommandResponse><rsp:CommandId>{cmd.id}</rsp:CommandId></rsp:CommandResponse>")

    def _run(self, host: _HostState, cmd: _Command) -> None:
        cmd.started = True
        name = host.endpoint.name

        def work() -> None:
            try:
                result = self.backend.execute(name, cmd.command_line, bytes(cmd.stdin))
            except Exception as exc:  # noqa: BLE001 - a lab bug must reach the caller, not hang it
                log.exception("lab backend failed on %s for %r", name, cmd.command_line[:200])
                result = CommandResult(b"", f"entsso.lab.wsman: the lab backend raised {exc!r}\r\n"
                                       f"{traceback.format_exc()}".encode(), 1)
            cmd.result = result
            cmd.done.set()

        threading.Thread(target=work, name=f"wsman-cmd-{name}-{cmd.id[:8]}", daemon=True).start()

    def _send(self, host: _HostState, header: ET.Element, body: ET.Element) -> tuple[str, str]:
        shell = self._shell(host, header)
        for stream in body.iter(_q("rsp", "Stream")):
            cmd = self._command_of(host, shell, stream.get("CommandId", ""))
            if stream.get("Name", "stdin") != "stdin":
                continue
            try:
                data = base64.b64decode((stream.text or "").strip())
            except binascii.Error:
                raise WsmanFault(FAULT_BAD_REQUEST, "w:InvalidParameter",
                                 "The stdin stream of the Send request is not valid base64.") from None
            start = False
            with host.lock:
                if cmd.console_stdin:
                    host.stats["stdin_to_console"] += 1
                    continue  # not the process's stdin (see _command)
                cmd.stdin.extend(data)
                if stream.get("End", "false").lower() == "true" and cmd.wants_stdin and not cmd.started:
                    cmd.started = start = True
            if start:
                self._run(host, cmd)
        return SHELL_URI + "/SendResponse", "<rsp:SendResponse/>"

    def _receive(self, host: _HostState, header: ET.Element, body: ET.Element) -> tuple[str, str]:
        shell = self._shell(host, header)
        desired = body.find(f"{_q('rsp', 'Receive')}/{_q('rsp', 'DesiredStream')}")
        command_id = desired.get("CommandId", "") if desired is not None else ""
        cmd = self._command_of(host, shell, command_id)
        op_timeout = _duration_seconds(header.findtext(_q("w", "OperationTimeout")))
        wait = self.max_receive_wait if op_timeout is None else min(op_timeout, self.max_receive_wait)
        finished_waiting = cmd.done.wait(wait)
        shell.last_used = time.monotonic()  # a Receive long-poll is activity until it answers
        if not finished_waiting:
            host.count("receive_timeouts")
            raise WsmanFault(FAULT_TIMED_OUT, "w:TimedOut", TIMED_OUT_TEXT, sender=False)
        assert cmd.result is not None
        with host.lock:
            out = cmd.result.stdout[cmd.out_sent:cmd.out_sent + RECEIVE_CHUNK]
            err = cmd.result.stderr[cmd.err_sent:cmd.err_sent + RECEIVE_CHUNK - len(out)]
            cmd.out_sent += len(out)
            cmd.err_sent += len(err)
            finished = cmd.out_sent >= len(cmd.result.stdout) and cmd.err_sent >= len(cmd.result.stderr)
        cid = cmd.id
        parts = []
        for name, data in (("stdout", out), ("stderr", err)):
            for i in range(0, len(data), STREAM_CHUNK):
                chunk = base64.b64encode(data[i:i + STREAM_CHUNK]).decode()
                parts.append(f'<rsp:Stream Name="{name}" CommandId="{cid}">{chunk}</rsp:Stream>')
        if finished:
            parts.append(f'<rsp:Stream Name="stdout" CommandId="{cid}" End="true"></rsp:Stream>')
            parts.append(f'<rsp:Stream Name="stderr" CommandId="{cid}" End="true"></rsp:Stream>')
            parts.append(f'<rsp:CommandState CommandId="{cid}" State="{STATE_DONE}">'
                         f"<rsp:ExitCode>{cmd.result.exit_code}</rsp:ExitCode></rsp:CommandState>")
        else:
            parts.append(f'<rsp:CommandState CommandId="{cid}" State="{STATE_RUNNING}"></rsp:CommandState>')
        return SHELL_URI + "/ReceiveResponse", f"<rsp:ReceiveResponse>{''.join(parts)}</rsp:ReceiveResponse>"

    def _signal(self, host: _HostState, header: ET.Element, body: ET.Element) -> tuple[str, str]:
        shell = self._shell(host, header)
        signal = body.find(_q("rsp", "Signal"))
        command_id = signal.get("CommandId", "") if signal is not None else ""
        code = (signal.findtext(_q("rsp", "Code")) or "").strip() if signal is not None else ""
        if code not in (SIGNAL_TERMINATE, SIGNAL_CTRL_C):
            raise WsmanFault(FAULT_BAD_REQUEST, "w:InvalidParameter",
                             f"The WS-Management service does not support the signal code {code or '(none)'}; "
                             f"use {SIGNAL_TERMINATE} or {SIGNAL_CTRL_C}.")
        self._command_of(host, shell, command_id)
        with host.lock:
            # the command entry ends; a backend thread still running is left to finish on its own
            shell.commands.pop(command_id.upper(), None)
        return SHELL_URI + "/SignalResponse", "<rsp:SignalResponse/>"

    def _delete(self, host: _HostState, header: ET.Element, body: ET.Element) -> tuple[str, str]:
        shell = self._shell(host, header)
        with host.lock:
            host.shells.pop(shell.id, None)
        return "http://schemas.xmlsoap.org/ws/2004/09/transfer/DeleteResponse", ""
