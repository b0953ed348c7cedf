"""PowerShell operations over WinRM: the only module that speaks WinRM.

`WindowsHost.invoke("Get-HostFacts", params)` runs entsso/remote/ps/Get-HostFacts.ps1 on the host inside the
envelope of docs/operations.md (entsso.remote.envelope) and returns its JSON document. Failures are classified
(`classify`: unreachable, credentials refused, certificate, timed out; then script threw, bad output); every
call is counted, timed and recorded without its secrets. A call safe to repeat that found no answer is repeated
within the settings' retry policy (entsso.remote.retry), each repeat recorded.
"""
from __future__ import annotations

import contextlib
import json
import logging
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import requests
import urllib3.exceptions
import winrm.exceptions
import winrm.transport
from winrm.protocol import Protocol

from entsso.remote.certificates import certificate_problem
from entsso.remote.envelope import (CMD_LIMIT, ENVELOPE_HEAD, POWERSHELL, REDACTED, SECRET_KEYS, STDIN_BOOTSTRAP,
                                    Invocation, SecretLike, build_envelope, decode_clixml, encode_command, has_secret,
                                    plan_invocation, redact, script_text)
from entsso.remote.errors import (BadOutput, CertificateRejected, CredentialsRefused, HostNotResolved, HostUnreachable,
                                  OperationTimedOut, RemoteError, ScriptError)
from entsso.remote.retry import RetryPolicy, may_repeat, transient

log = logging.getLogger(__name__)

__all__ = [  # with the envelope's and the errors' names, which callers import from here
    "CMD_LIMIT", "ENVELOPE_HEAD", "POWERSHELL", "REDACTED", "SECRET_KEYS", "SHELL_NOT_FOUND", "STDIN_BOOTSTRAP",
    "BadOutput", "CallLog", "CallRecord", "CertificateRejected", "CredentialsRefused", "HostNotResolved",
    "HostUnreachable", "Invocation", "OperationTimedOut", "RemoteError", "RetryPolicy", "RetryRecord", "ScriptError",
    "SecretLike", "WindowsHost",
    "WinRMSettings", "build_envelope", "certificate_problem", "classify", "decode_clixml", "encode_command",
    "has_secret", "plan_invocation", "redact", "script_text",
]


# --- call records ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CallRecord:
    host: str
    operation: str
    params: dict[str, Any]  # redacted
    started: float  # time.time()
    seconds: float
    via_stdin: bool
    command_chars: int
    outcome: str  # "ok" or an error kind
    exit_code: int | None = None
    answer: dict[str, Any] | None = None  # the script's JSON document (secret-named keys redacted), when it gave one
    attempt: int = 1  # 2, 3, …: a repeat after a transient error (entsso.remote.retry)


@dataclass(frozen=True)
class RetryRecord:
    """A call about to be repeated after a transient error (entsso.remote.retry): which attempt comes next,
    after how long, and what the last one met."""

    host: str
    operation: str
    attempt: int  # the attempt about to be made (2 for the first repeat)
    error_kind: str
    error: str  # the error's message (the suite's own words; no secret reaches it)
    wait: float  # real seconds before the attempt
    since_first: float  # real seconds since the first attempt began


@dataclass
class CallLog:
    """Every WinRM call of a run: counted and timed per host, secrets redacted; and each repeat."""

    records: list[CallRecord] = field(default_factory=list)
    retries: list[RetryRecord] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    listeners: list[Callable[[CallRecord], None]] = field(default_factory=list, repr=False)
    retry_listeners: list[Callable[[RetryRecord], object]] = field(default_factory=list, repr=False)

    def add(self, record: CallRecord) -> None:
        with self._lock:
            self.records.append(record)
        for listener in self.listeners:
            listener(record)

    def retried(self, record: RetryRecord) -> None:
        with self._lock:
            self.retries.append(record)
        for listener in self.retry_listeners:
            listener(record)

    def count(self, host: str | None = None) -> int:
        with self._lock:
            return sum(1 for r in self.records if host is None or r.host == host)

    def per_host(self) -> dict[str, dict[str, float]]:
        out: dict[str, dict[str, float]] = {}
        with self._lock:
            for r in self.records:
                h = out.setdefault(r.host, {"calls": 0, "seconds": 0.0})
                h["calls"] += 1
                h["seconds"] += r.seconds
        return out


# --- the host ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class WinRMSettings:
    transport: Literal["ntlm", "kerberos", "credssp", "basic"] = "ntlm"
    https: bool = True
    port: int | None = None
    cert_validation: bool = True
    ca_trust_path: str | None = None
    connect_timeout: float = 10.0
    read_timeout: float = 60.0
    operation_timeout: float = 20.0  # WS-Man OperationTimeout: how long one Receive may wait
    call_timeout: float = 120.0  # the deadline of one call, added to an operation's own timeout_sec
    proxy: str | None = None  # an HTTP proxy for WinRM; None: straight to the host, whatever the environment says
    # how a safe call that met a transient error is repeated; none unless asked (the change asks: inventory's
    # winrm.retry_window)
    retry: RetryPolicy = RetryPolicy(window=0.0)

    @property
    def pywinrm_transport(self) -> Literal["ntlm", "kerberos", "credssp", "plaintext"]:
        return "plaintext" if self.transport == "basic" else self.transport

    @property
    def listener_port(self) -> int:
        """The port of the hosts' WinRM listener: the inventory's, else WinRM's default for the scheme."""
        return self.port or (5986 if self.https else 5985)

    def endpoint(self, address: str) -> str:
        return f"{'https' if self.https else 'http'}://{address}:{self.listener_port}/wsman"


class _Transport(winrm.transport.Transport):
    """pywinrm's transport with a session that ignores the environment (`requests`' trust_env): no proxy,
    CA bundle or .netrc is taken from it. A corporate HTTP(S)_PROXY must not carry WinRM to the estate
    unasked (pywinrm deprecates reading it), and looking the environment up cost about a millisecond of
    CPU per request (docs/performance.md). A proxy the inventory names is set explicitly."""

    def setup_encryption(self, session: requests.Session) -> None:
        session.trust_env = False  # NTLM/Kerberos over http: this is the session's first request
        super().setup_encryption(session)

    def send_message(self, message: str | bytes) -> bytes:
        self.build_session().trust_env = False
        return super().send_message(message)


SHELL_NOT_FOUND = 2150858843  # WSManFault 0x8033805B: the shell was deleted (its IdleTimeout passed, WinRM restarted)


def _name_not_resolved(exc: BaseException) -> bool:
    """Whether a connection failed because the host name has no address: a getaddrinfo failure somewhere in
    requests' chain (urllib3 2 wraps it as NameResolutionError inside MaxRetryError)."""
    seen: set[int] = set()
    pending: list[object] = [exc]
    while pending:
        e = pending.pop()
        if not isinstance(e, BaseException) or id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, (socket.gaierror, getattr(urllib3.exceptions, "NameResolutionError", socket.gaierror))):
            return True
        pending += [e.__cause__, e.__context__, getattr(e, "reason", None), *e.args]
    return False


def _command_never_ran(exc: BaseException) -> bool:
    """Whether a failed Command request on a kept shell certainly ran nothing, so that the call may try once
    more on a fresh connection and shell. Only refusals qualify: the shell is gone, the connection's login
    is gone, an HTTP error without a WS-Man fault (a message sealed for a login the host no longer has), or
    a connection that could not be made. A reset or timeout after the request went out may have started
    the command: that is never retried."""
    if isinstance(exc, winrm.exceptions.WSManFaultError):
        return exc.wsman_fault_code == SHELL_NOT_FOUND
    if isinstance(exc, (winrm.exceptions.InvalidCredentialsError, winrm.exceptions.WinRMTransportError,
                        requests.exceptions.ConnectTimeout)):
        return True
    if isinstance(exc, requests.exceptions.ConnectionError) and not isinstance(exc, requests.exceptions.ReadTimeout):
        reason = getattr(exc.args[0] if exc.args else None, "reason", None)
        return isinstance(reason, urllib3.exceptions.NewConnectionError)
    return False


# --- failures ----------------------------------------------------------------------------------------------
def classify(exc: Exception, host: str, operation: str, address: str, settings: WinRMSettings,
             username: str) -> RemoteError | None:
    """The RemoteError of the right kind for what pywinrm or requests raised during a call to `host` (at
    `address`), by the exception and the transport; None when `exc` is not the estate's answer."""
    endpoint = settings.endpoint(address)
    if isinstance(exc, winrm.exceptions.InvalidCredentialsError):
        return CredentialsRefused(
            host, operation,
            f"the credentials for {username} were refused by {endpoint} (HTTP 401). "
            "Check the user name and the password environment variable named in the inventory, "
            "and that the account is allowed to use WinRM on that host.")
    if isinstance(exc, (requests.exceptions.ConnectionError, requests.exceptions.Timeout,
                        requests.exceptions.ChunkedEncodingError)):  # the last: the connection broke mid-answer
        return _no_answer(exc, host, operation, address, settings)
    if isinstance(exc, OSError):
        # requests, before it connects: "Could not find a suitable TLS CA certificate bundle, invalid path"
        if "CA certificate bundle" not in str(exc):
            return None
        return CertificateRejected(
            host, operation,
            f"winrm.ca_trust_path ({settings.ca_trust_path}) cannot be read; nothing was sent to the host. "
            "Name the PEM file of the CA that issued the hosts' WinRM certificates, readable by this user "
            "(python -m entsso doctor checks it).", "ca_file")
    kerberos = settings.transport in ("kerberos", "credssp")
    if isinstance(exc, (winrm.exceptions.WinRMTransportError, winrm.exceptions.WinRMError)):
        if kerberos and not isinstance(exc, winrm.exceptions.WSManFaultError):
            return CredentialsRefused(
                host, operation,
                f"{settings.transport} authentication to {endpoint} failed ({exc}). Check the "
                "Kerberos ticket with klist and renew an expired one with kinit user@REALM; the host must "
                "be named by its DNS name (an SPN exists for it), not an IP address.")
        return RemoteError(host, operation, f"WinRM refused the request: {exc}")
    if kerberos:  # gssapi/spnego errors of a Kerberos login have no common base
        return CredentialsRefused(
            host, operation,
            f"{settings.transport} authentication to {endpoint} failed "
            f"({type(exc).__name__}: {exc}). Check the Kerberos ticket with klist and renew an expired "
            "one with kinit user@REALM.")
    return None


def _no_answer(exc: Exception, host: str, operation: str, address: str, settings: WinRMSettings) -> RemoteError:
    """A connection that could not be made or broke: a refused certificate, the proxy, a name without an
    address, or a host that does not answer."""
    endpoint = settings.endpoint(address)
    if settings.https:
        problem = certificate_problem(host, operation, endpoint, address, settings.listener_port,
                                      settings.ca_trust_path, exc, settings.connect_timeout)
        if problem is not None:
            return problem
    if settings.proxy and isinstance(exc, requests.exceptions.ProxyError):
        return HostUnreachable(
            host, operation,
            f"no answer from {endpoint} through the proxy {settings.proxy} "
            f"({type(exc).__name__}). Check that the proxy is up and lets this machine reach WinRM's "
            "port, or remove winrm.proxy from the inventory to go straight to the hosts.")
    if not settings.proxy and _name_not_resolved(exc):
        return HostNotResolved(
            host, operation,
            f"{address} does not resolve (DNS): check the inventory's address for {host} or "
            "the admin box's DNS (nslookup " + address + "); nothing was sent to the host.")
    return HostUnreachable(
        host, operation,
        f"no answer from {endpoint} ({type(exc).__name__}). Check that the host is up, that "
        "WinRM listens on that port (winrm enumerate winrm/config/listener) and that the firewall "
        "allows it.")


class WindowsHost:
    """One Windows host reached over WinRM. Thread-safe: each concurrent call takes its own connection
    from a small pool. Connections are kept between calls with their cmd shell (pywinrm runs any number
    of commands in one shell): a call on a kept shell is Command, [Send], Receive, Signal; close() deletes
    the shells."""

    def __init__(
        self,
        name: str,
        address: str,
        username: str,
        password: SecretLike | str,
        settings: WinRMSettings,
        calls: CallLog | None = None,
    ) -> None:
        self.name = name
        self.address = address
        self.settings = settings
        self._username = username
        self._password = password
        self.calls = calls if calls is not None else CallLog()
        self._pool: list[tuple[Protocol, str]] = []  # (connection, its open shell)
        self._pool_lock = threading.Lock()
        self.port = settings.listener_port
        self.endpoint = settings.endpoint(address)

    def __repr__(self) -> str:
        return f"WindowsHost({self.name!r}, {self.endpoint!r})"

    # connections
    def _new_protocol(self) -> Protocol:
        s = self.settings
        password = self._password.get_secret_value() if hasattr(self._password, "get_secret_value") else self._password
        proto = Protocol(
            endpoint=self.endpoint,
            transport=s.pywinrm_transport,
            username=self._username,
            password=password,
            server_cert_validation="validate" if s.cert_validation else "ignore",
            # None: requests' own store (pywinrm's legacy env lookup is deprecated); its transport reads None so
            # (transport.py build_session: `ca_trust_path is not None`) though its annotation leaves None out
            ca_trust_path=s.ca_trust_path,  # type: ignore[arg-type]
            read_timeout_sec=int(max(s.read_timeout, s.operation_timeout + 1)),
            operation_timeout_sec=int(s.operation_timeout),
            proxy=s.proxy,  # None: pywinrm sets no_proxy=* (and _Transport reads nothing from the environment)
        )
        proto.transport.__class__ = _Transport  # the same transport, with an environment-free session
        # pywinrm hands read_timeout_sec to requests as-is (annotated int, any requests timeout works); a
        # (connect, read) pair lets an unreachable host fail in connect_timeout instead of the long read timeout.
        proto.transport.read_timeout_sec = (  # type: ignore[assignment]
            s.connect_timeout, max(s.read_timeout, s.operation_timeout + 1))
        return proto

    def _acquire(self) -> tuple[Protocol, str | None]:
        """A kept connection with its shell, or a new connection (shell None)."""
        with self._pool_lock:
            if self._pool:
                return self._pool.pop()
        return self._new_protocol(), None

    def _release(self, proto: Protocol, shell_id: str | None, healthy: bool) -> None:
        if healthy and shell_id:
            with self._pool_lock:
                self._pool.append((proto, shell_id))
            return
        self._discard(proto, shell_id)

    @staticmethod
    def _discard(proto: Protocol, shell_id: str | None, *, delete_shell: bool = False) -> None:
        if delete_shell and shell_id:
            with contextlib.suppress(Exception):  # best effort: WinRM deletes an idle shell itself (IdleTimeout)
                proto.close_shell(shell_id, close_session=False)
        with contextlib.suppress(Exception):  # a broken session is discarded either way
            proto.transport.close_session()

    def close(self) -> None:
        """Delete the kept shells and close their connections."""
        with self._pool_lock:
            pool, self._pool = self._pool, []
        for proto, shell_id in pool:
            self._discard(proto, shell_id, delete_shell=True)

    # the call
    def run(self, command_line: str, stdin: bytes | None = None, *, timeout: float | None = None,
            operation: str = "cmd") -> tuple[bytes, bytes, int]:
        """Run one command line in a cmd shell; return (stdout, stderr, exit code). Raises RemoteError
        subclasses for transport failures and the deadline."""
        deadline = time.monotonic() + timeout if timeout else None
        # A command fed over stdin is created with stdin as a pipe (WINRS_CONSOLEMODE_STDIN false, MS-WSMV
        # 3.1.4.11): powershell.exe fills $input only from redirected stdin. Ansible's WinRM connection
        # plugin does the same (console mode only when it sends no stdin); pywinrm's default is console.
        console_stdin = stdin is None
        proto, shell_id = self._acquire()
        healthy = False
        command_id = None
        try:
            if shell_id is None:
                shell_id = proto.open_shell(codepage=65001)
                command_id = proto.run_command(shell_id, command_line, console_mode_stdin=console_stdin)
            else:
                try:
                    command_id = proto.run_command(shell_id, command_line, console_mode_stdin=console_stdin)
                except Exception as exc:  # noqa: BLE001 - classified just below
                    if not _command_never_ran(exc):
                        raise
                    # the kept shell or connection is gone (WinRM's IdleTimeout, a restarted host) and the
                    # Command was refused before anything ran: once more on a fresh connection and shell
                    self._discard(proto, shell_id)
                    proto, shell_id = self._new_protocol(), None
                    shell_id = proto.open_shell(codepage=65001)
                    command_id = proto.run_command(shell_id, command_line, console_mode_stdin=console_stdin)
            if stdin is not None:
                proto.send_command_input(shell_id, command_id, stdin, end=True)
            out, err, code = self._collect(proto, shell_id, command_id, deadline, operation)
            try:
                proto.cleanup_command(shell_id, command_id)  # the command ends; the shell stays for the next call
                healthy = True
            except Exception:  # noqa: BLE001 - the answer is in hand; this connection and shell are not kept
                pass
            return out, err, code
        except OperationTimedOut:
            self._abandon(proto, shell_id, command_id)
            shell_id = None
            raise
        except Exception as exc:  # noqa: BLE001 - what is not the estate's answer is re-raised as it is
            error = classify(exc, self.name, operation, self.address, self.settings, self._username)
            if error is None:
                raise
            raise error from None
        finally:
            self._release(proto, shell_id, healthy)

    def _collect(self, proto: Protocol, shell_id: str, command_id: str, deadline: float | None,
                 operation: str) -> tuple[bytes, bytes, int]:
        out: list[bytes] = []
        err: list[bytes] = []
        while True:
            if deadline is not None and time.monotonic() > deadline:
                raise OperationTimedOut(
                    self.name, operation,
                    "did not finish within its deadline; the command was told to stop. "
                    "Check the host's state before re-running.")
            try:
                o, e, code, done = proto.get_command_output_raw(shell_id, command_id)
            except winrm.exceptions.WinRMOperationTimeoutError:
                continue  # WinRM's OperationTimeout: the command still runs; ask again
            out.append(o)
            err.append(e)
            if done:
                return b"".join(out), b"".join(err), code

    def _abandon(self, proto: Protocol, shell_id: str | None, command_id: str | None) -> None:
        """A call past its deadline: tell its command to stop, then delete its shell (best effort)."""
        try:
            if shell_id and command_id:
                proto.cleanup_command(shell_id, command_id)
        except Exception:  # noqa: BLE001 - best effort; the deadline error is what matters
            pass
        self._discard(proto, shell_id, delete_shell=True)

    def invoke(self, operation: str, params: dict[str, Any] | None = None, *,
               timeout: float | None = None) -> dict[str, Any]:
        """Run entsso/remote/ps/<operation>.ps1 with params; return its JSON document. An operation safe to
        repeat (entsso.remote.retry) that meets a transient error is repeated within the retry policy's
        window, each repeat logged (CallLog.retried); the last error is raised when the window is spent."""
        params = params or {}
        if timeout is None:
            # WinRM itself never gives up (OperationTimeout is re-polled): every call gets a deadline,
            # the operation's own wait plus a margin for the call itself
            timeout = float(params.get("timeout_sec") or 0) + self.settings.call_timeout
        policy = self.settings.retry
        first = time.monotonic()
        attempt = 1
        while True:
            try:
                return self._invoke_once(operation, params, timeout, attempt)
            except RemoteError as exc:
                if not (transient(exc) and may_repeat(operation)):
                    raise
                since = time.monotonic() - first
                wait = policy.delay(attempt + 1) if policy.window > 0 else 0.0
                if policy.window <= 0 or since + wait > policy.window:
                    if attempt == 1:
                        raise
                    raise type(exc)(self.name, operation,
                                    f"{exc.detail} (tried {attempt} times over {since:.0f} s; "
                                    f"the retry window is {policy.window:g} s)") from None
                log.warning("%s on %s found no answer (%s); trying again in %g s (attempt %d, retry window %g s)",
                            operation, self.name, exc.kind, wait, attempt + 1, policy.window)
                self.calls.retried(RetryRecord(self.name, operation, attempt + 1, exc.kind, str(exc), wait, since))
                time.sleep(wait)
                attempt += 1

    def _invoke_once(self, operation: str, params: dict[str, Any], timeout: float, attempt: int) -> dict[str, Any]:
        plan = plan_invocation(operation, params)
        started_wall, started = time.time(), time.monotonic()
        outcome, exit_code = "ok", None
        answer: dict[str, Any] | None = None
        try:
            out, err, exit_code = self.run(plan.command_line, plan.stdin, timeout=timeout, operation=operation)
            if exit_code != 0:
                text = decode_clixml(err) or out.decode("utf-8", errors="replace").strip()
                raise ScriptError(self.name, operation,
                                  f"the script failed (exit code {exit_code}): {text or 'no error text'}",
                                  exit_code, text)
            try:
                doc = json.loads(out.decode("utf-8-sig"))
            except (UnicodeDecodeError, json.JSONDecodeError):
                preview = out[:200].decode("utf-8", errors="replace")
                raise BadOutput(self.name, operation,
                                f"the output was not the JSON document expected: {preview!r}") from None
            if not isinstance(doc, dict):
                raise BadOutput(self.name, operation, f"expected a JSON object, got {type(doc).__name__}")
            answer = redact(doc)
            return doc
        except RemoteError as exc:
            outcome = exc.kind
            raise
        finally:
            self.calls.add(CallRecord(
                host=self.name, operation=operation, params=redact(params), started=started_wall,
                seconds=time.monotonic() - started, via_stdin=plan.via_stdin,
                command_chars=len(plan.command_line), outcome=outcome, exit_code=exit_code, answer=answer,
                attempt=attempt))
