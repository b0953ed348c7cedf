"""The lab's WinRM endpoint, driven by the real clients: pywinrm (basic and NTLM with message encryption)
and pytest-testinfra's winrm backend, against a fake shell backend that echoes what it is given."""
from __future__ import annotations

import base64
import socket
import threading
import time
import uuid

import pytest
import requests
import testinfra
import winrm
import winrm.exceptions
import xmltodict
from winrm.protocol import Protocol

from entsso.lab.wsman import CommandResult, HostEndpoint, WsmanServer

USER = "LAB\\svc-entsso"
PASSWORD = "Lab-only-Pa55w.rd"  # a lab credential, not a secret
ADDRESSES = {"NODE1": "127.0.0.2", "NODE2": "127.0.0.3"}


class EchoBackend:
    """cmd.exe stand-in: `hostname`, `sleep N`, `more` (reads stdin), powershell -EncodedCommand, else echo."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, bytes]] = []
        self._lock = threading.Lock()

    def wants_stdin(self, host: str, command_line: str) -> bool:
        return command_line == "more"

    def execute(self, host: str, command_line: str, stdin: bytes) -> CommandResult:
        with self._lock:
            self.calls.append((host, command_line, stdin))
        if command_line == "hostname":
            return CommandResult(f"{host}\r\n".encode(), b"", 0)
        if command_line.startswith("sleep "):
            time.sleep(float(command_line.split()[1]))
            return CommandResult(b"slept\r\n", b"", 0)
        if command_line == "more":
            return CommandResult(stdin, b"", 0)
        if command_line.lower().startswith("powershell -encodedcommand "):
            script = base64.b64decode(command_line.split()[-1]).decode("utf-16-le")
            return CommandResult(f"PS {host}: {script}\r\n".encode(), b"", 0)
        if command_line.startswith("exit "):
            return CommandResult(b"", b"bye\r\n", int(command_line.split()[1]))
        return CommandResult(f"{host} ran {command_line}\r\n".encode(), b"", 0)


def _free_port() -> int:
    for _ in range(50):
        with socket.socket() as s:
            s.bind((ADDRESSES["NODE1"], 0))
            port = s.getsockname()[1]
        try:
            with socket.socket() as s:
                s.bind((ADDRESSES["NODE2"], port))
            return port
        except OSError:
            continue
    raise OSError("no port free on both 127.0.0.2 and 127.0.0.3")


@pytest.fixture(scope="module")
def lab():
    backend = EchoBackend()
    latency_calls: list[str] = []

    def latency(host: str) -> float:
        latency_calls.append(host)
        return 0.0

    port = _free_port()
    endpoints = [HostEndpoint(name, addr, port, USER, PASSWORD) for name, addr in ADDRESSES.items()]
    # a service configured with AllowUnencrypted=true, as these tests drive Basic over http
    server = WsmanServer(endpoints, backend, max_receive_wait=0.5, request_latency=latency, allow_unencrypted=True)
    server.start()
    yield server, backend, port, latency_calls
    server.stop()


def url(port: int, host: str = "NODE1") -> str:
    return f"http://{ADDRESSES[host]}:{port}/wsman"


def session(port: int, transport: str = "basic", host: str = "NODE1", password: str = PASSWORD) -> winrm.Session:
    return winrm.Session(url(port, host), auth=(USER, password), transport=transport,
                         read_timeout_sec=5, operation_timeout_sec=2)


def test_basic_run_cmd_returns_backend_output_and_exit_code(lab):
    server, backend, port, _ = lab
    r = session(port).run_cmd("exit", ["7"])
    assert (r.std_out, r.std_err, r.status_code) == (b"", b"bye\r\n", 7)
    assert ("NODE1", "exit 7", b"") in backend.calls


def test_command_and_arguments_reach_backend_joined_by_one_space(lab):
    _, _, port, _ = lab
    r = session(port, host="NODE2").run_cmd("sc.exe", ["query", "ENTSSO"])
    assert r.std_out == b"NODE2 ran sc.exe query ENTSSO\r\n"


def test_run_ps_reaches_backend_as_encoded_command(lab):
    _, _, port, _ = lab
    r = session(port).run_ps("Get-Service ENTSSO")
    assert r.status_code == 0
    assert r.std_out == b"PS NODE1: Get-Service ENTSSO\r\n"


def test_ntlm_runs_commands_with_every_soap_body_encrypted_on_the_wire(lab):
    server, _, port, _ = lab
    before = server.stats["hosts"]["NODE2"]["encrypted_requests"]
    proto = Protocol(url(port, "NODE2"), transport="ntlm", username=USER, password=PASSWORD,
                     read_timeout_sec=5, operation_timeout_sec=2)
    bodies: list[tuple[str, bytes]] = []
    proto.transport.build_session().hooks["response"].append(
        lambda r, **kw: bodies.append((r.request.headers.get("Content-Type", ""), r.request.body or b"")))
    shell = proto.open_shell()
    cid = proto.run_command(shell, "hostname")
    out, err, code = proto.get_command_output(shell, cid)
    proto.cleanup_command(shell, cid)
    proto.close_shell(shell)
    assert (out, code) == (b"NODE2\r\n", 0)
    soap = [(ct, body) for ct, body in bodies if body]
    assert len(soap) == 5  # Create, Command, Receive, Signal, Delete
    assert all(ct.startswith("multipart/encrypted") and b"hostname" not in body for ct, body in soap)
    assert server.stats["hosts"]["NODE2"]["encrypted_requests"] - before == 5


def test_ntlm_accepts_the_bare_user_name(lab):
    _, _, port, _ = lab
    s = winrm.Session(url(port), auth=("svc-entsso", PASSWORD), transport="ntlm",
                      read_timeout_sec=5, operation_timeout_sec=2)
    assert s.run_cmd("hostname").std_out == b"NODE1\r\n"


@pytest.mark.parametrize("transport", ["basic", "ntlm"])
def test_wrong_password_is_refused_with_401(lab, transport):
    server, _, port, _ = lab
    before = server.stats["hosts"]["NODE1"]["auth_failures"]
    with pytest.raises(winrm.exceptions.InvalidCredentialsError):
        session(port, transport, password="wrong").run_cmd("hostname")
    assert server.stats["hosts"]["NODE1"]["auth_failures"] == before + 1


def test_testinfra_winrm_backend_runs_hostname(lab):
    _, _, port, _ = lab
    host = testinfra.get_host(f"winrm://svc-entsso:{PASSWORD}@{ADDRESSES['NODE2']}:{port}"
                              "?no_ssl=true&no_verify_ssl=true")
    result = host.run("hostname")
    assert (result.rc, result.stdout) == (0, "NODE2\r\n")


def test_command_line_over_8191_chars_fails_like_cmd_without_reaching_backend(lab):
    _, backend, port, _ = lab
    arg = "x" * 8190  # "echo " + 8190 = 8195 characters
    r = session(port).run_cmd("echo", [arg])
    assert (r.std_out, r.std_err, r.status_code) == (b"", b"The command line is too long.\r\n", 1)
    assert not any(line.endswith(arg) for _, line, _ in backend.calls)


def test_command_line_of_exactly_8191_chars_runs(lab):
    _, _, port, _ = lab
    arg = "y" * (8191 - len("echo "))
    r = session(port).run_cmd("echo", [arg])
    assert r.status_code == 0 and r.std_out.endswith(arg.encode() + b"\r\n")


def test_long_command_completes_through_operation_timeout_repolls(lab):
    server, _, port, _ = lab
    before = server.stats["hosts"]["NODE1"]["receive_timeouts"]
    r = session(port).run_cmd("sleep 1.2")  # max_receive_wait is 0.5 s
    assert (r.std_out, r.status_code) == (b"slept\r\n", 0)
    assert server.stats["hosts"]["NODE1"]["receive_timeouts"] - before >= 2


def test_receive_timeout_is_the_windows_operation_timeout_fault(lab):
    _, _, port, _ = lab
    proto = Protocol(url(port), transport="basic", username=USER, password=PASSWORD,
                     read_timeout_sec=5, operation_timeout_sec=2)
    shell = proto.open_shell()
    cid = proto.run_command(shell, "sleep 0.8")
    with pytest.raises(winrm.exceptions.WinRMOperationTimeoutError):
        proto.get_command_output_raw(shell, cid)
    proto.close_shell(shell)


def test_stdin_sent_with_end_reaches_backend(lab):
    _, backend, port, _ = lab
    proto = Protocol(url(port), transport="ntlm", username=USER, password=PASSWORD,
                     read_timeout_sec=5, operation_timeout_sec=2)
    shell = proto.open_shell()
    cid = proto.run_command(shell, "more", console_mode_stdin=False)
    proto.send_command_input(shell, cid, b"first ", end=False)
    proto.send_command_input(shell, cid, b"second", end=True)
    out, _, code = proto.get_command_output(shell, cid)
    proto.cleanup_command(shell, cid)
    proto.close_shell(shell)
    assert (out, code) == (b"first second", 0)
    assert ("NODE1", "more", b"first second") in backend.calls


def test_a_console_mode_command_gets_no_stdin(lab):
    """WINRS_CONSOLEMODE_STDIN TRUE (pywinrm's default): the process runs with nothing on stdin and what
    Send delivers never reaches it."""
    server, backend, port, _ = lab
    proto = Protocol(url(port, "NODE2"), transport="ntlm", username=USER, password=PASSWORD,
                     read_timeout_sec=5, operation_timeout_sec=2)
    shell = proto.open_shell()
    before = server.stats["hosts"]["NODE2"]["stdin_to_console"]
    cid = proto.run_command(shell, "more")  # console_mode_stdin=True
    proto.send_command_input(shell, cid, b"lost", end=True)
    out, _, code = proto.get_command_output(shell, cid)
    proto.cleanup_command(shell, cid)
    proto.close_shell(shell)
    assert (out, code) == (b"", 0)
    assert ("NODE2", "more", b"") in backend.calls and ("NODE2", "more", b"lost") not in backend.calls
    assert server.stats["hosts"]["NODE2"]["stdin_to_console"] - before == 1


def test_large_output_arrives_complete_across_several_receives(lab, monkeypatch):
    server, backend, port, _ = lab
    big = bytes(range(256)) * 1024  # 256 KiB, more than one Receive response carries
    monkeypatch.setattr(backend, "execute", lambda host, line, stdin: CommandResult(big, b"tail", 0))
    r = session(port).run_cmd("type", ["big.bin"])
    assert (r.std_out, r.std_err) == (big, b"tail")


def test_unknown_action_is_a_wsman_fault_naming_the_action(lab):
    _, _, port, _ = lab
    proto = Protocol(url(port), transport="basic", username=USER, password=PASSWORD,
                     read_timeout_sec=5, operation_timeout_sec=2)
    req = {"env:Envelope": proto.build_wsman_header(
        action="http://schemas.xmlsoap.org/ws/2004/09/enumeration/Enumerate",
        resource_uri="http://schemas.microsoft.com/wbem/wsman/1/windows/shell/cmd")}
    req["env:Envelope"]["env:Body"] = {}
    with pytest.raises(winrm.exceptions.WSManFaultError) as info:
        proto.send_message(xmltodict.unparse(req))
    assert info.value.code == 500
    assert "enumeration/Enumerate is not supported" in info.value.reason


def test_unknown_shell_is_the_windows_shell_not_found_fault(lab):
    _, _, port, _ = lab
    proto = Protocol(url(port), transport="basic", username=USER, password=PASSWORD,
                     read_timeout_sec=5, operation_timeout_sec=2)
    with pytest.raises(winrm.exceptions.WSManFaultError) as info:
        proto.run_command(str(uuid.uuid4()).upper(), "hostname")
    assert info.value.wsman_fault_code == 2150858843
    assert "shell was not found on the server" in info.value.reason


def test_request_latency_is_applied_once_per_command(lab):
    _, _, port, latency_calls = lab
    before = len(latency_calls)
    session(port, host="NODE2").run_cmd("sleep 0.7")  # one Command, at least two Receive polls
    assert latency_calls[before:] == ["NODE2"]


def test_unreachable_host_refuses_connections_until_reachable_again(lab):
    server, _, port, _ = lab
    server.set_reachable("NODE1", False)
    try:
        server.set_reachable("NODE1", False)  # repeated calls with no change are harmless
        with pytest.raises(requests.exceptions.ConnectionError):
            session(port).run_cmd("hostname")
        assert session(port, host="NODE2").run_cmd("hostname").std_out == b"NODE2\r\n"
    finally:
        server.set_reachable("NODE1", True)
    assert session(port).run_cmd("hostname").std_out == b"NODE1\r\n"


def test_stats_count_shells_open_and_commands(lab):
    server, _, port, _ = lab
    proto = Protocol(url(port, "NODE2"), transport="basic", username=USER, password=PASSWORD,
                     read_timeout_sec=5, operation_timeout_sec=2)
    before = server.stats
    shell = proto.open_shell()
    during = server.stats
    proto.close_shell(shell)
    after = server.stats
    assert during["hosts"]["NODE2"]["shells_open"] == before["hosts"]["NODE2"]["shells_open"] + 1
    assert after["hosts"]["NODE2"]["shells_open"] == before["hosts"]["NODE2"]["shells_open"]
    assert after["totals"]["requests"] == sum(h["requests"] for h in after["hosts"].values())


def test_concurrent_clients_on_both_hosts_each_get_their_own_output(lab):
    _, _, port, _ = lab
    results: dict[int, bytes] = {}

    def call(i: int) -> None:
        host = "NODE1" if i % 2 else "NODE2"
        transport = "ntlm" if i % 3 else "basic"
        results[i] = session(port, transport, host=host).run_cmd("echo", [f"call-{i}"]).std_out

    threads = [threading.Thread(target=call, args=(i,)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert results == {i: f"{'NODE1' if i % 2 else 'NODE2'} ran echo call-{i}\r\n".encode() for i in range(12)}


def _self_signed(tmp_path) -> tuple[str, str]:
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "NODE1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(a))
                                                        for a in ADDRESSES.values()]), critical=False)
            .sign(key, hashes.SHA256()))
    certfile, keyfile = tmp_path / "node.crt", tmp_path / "node.key"
    certfile.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    keyfile.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    return str(certfile), str(keyfile)


@pytest.mark.parametrize("transport", ["basic", "ntlm"])
def test_https_endpoint_serves_basic_and_ntlm_beside_the_http_server(lab, tmp_path, transport):
    _, backend, _, _ = lab
    port = _free_port()
    # same account as the module's server: the process shares one NTLM credential file (see wsman's docstring)
    server = WsmanServer([HostEndpoint("NODE1", ADDRESSES["NODE1"], port, USER, PASSWORD)], backend,
                         tls=_self_signed(tmp_path))
    server.start()
    try:
        s = winrm.Session(f"https://{ADDRESSES['NODE1']}:{port}/wsman", auth=(USER, PASSWORD),
                          transport=transport, server_cert_validation="ignore",
                          read_timeout_sec=5, operation_timeout_sec=2)
        assert s.run_cmd("hostname").std_out == b"NODE1\r\n"
        assert server.stats["hosts"]["NODE1"]["encrypted_requests"] == 0  # TLS protects it; no WinRM sealing
    finally:
        server.stop()


def test_ntlm_credential_file_holds_hashes_only_and_is_private(lab):
    import os
    import stat

    path = os.environ["NTLM_USER_FILE"]
    text = open(path, encoding="utf-8").read()
    assert PASSWORD not in text and "svc-entsso" in text
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_ntlm_session_cut_by_unreachability_is_a_bad_request_not_bad_credentials(lab):
    # the client's pooled connection died; requests_ntlm re-authenticates and resends a body sealed with
    # the old session's keys. That must not read as "credentials refused" to the operator.
    server, _, port, _ = lab
    proto = Protocol(url(port, "NODE2"), transport="ntlm", username=USER, password=PASSWORD,
                     read_timeout_sec=5, operation_timeout_sec=2)
    proto.close_shell(proto.open_shell(), close_session=False)
    server.set_reachable("NODE2", False)
    server.set_reachable("NODE2", True)
    with pytest.raises(winrm.exceptions.WinRMTransportError) as info:
        proto.open_shell()
    assert info.value.code == 400
