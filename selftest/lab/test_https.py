"""WinRM over HTTPS as a real estate has it, through pywinrm and entsso.remote.winrm: certificates from the lab's CA
validated, and each way a certificate can be wrong (another CA, another name, expired; TLS against an HTTP
listener; a CA file that is not there) named for the operator with its fix. Over HTTP the service is
Windows' default, AllowUnencrypted=false: sealed NTLM is served, a plain body is refused with HTTP 500."""
from __future__ import annotations

import datetime

import pytest
import winrm
import winrm.exceptions

from entsso.lab.pki import LabCA
from entsso.lab.server import _free_port
from entsso.lab.wsman import CommandResult, HostEndpoint, WsmanServer
from entsso.remote.winrm import CertificateRejected, WindowsHost, WinRMSettings

USER = "LAB\\svc-entsso"
PASSWORD = "Lab-only-Pa55w.rd"  # a lab credential, not a secret (the same as test_wsman's: one NTLM file)
ADDRESSES = {"GOOD": "127.0.0.2", "FOREIGN": "127.0.0.3", "MISNAMED": "127.0.0.4", "EXPIRED": "127.0.0.5"}


class Hostname:
    def wants_stdin(self, host: str, command_line: str) -> bool:
        return False

    def execute(self, host: str, command_line: str, stdin: bytes) -> CommandResult:
        return CommandResult(f"{host}\r\n".encode(), b"", 0)


@pytest.fixture(scope="module")
def estate(tmp_path_factory):
    """One WinRM service, four hosts on HTTPS each with its own certificate, and the same hosts on HTTP."""
    ca, foreign = LabCA("entsso lab CA"), LabCA("someone else's CA")
    now = datetime.datetime.now(datetime.timezone.utc)
    certs = {
        "GOOD": ca.issue("GOOD", addresses=[ADDRESSES["GOOD"]]),
        "FOREIGN": foreign.issue("FOREIGN", addresses=[ADDRESSES["FOREIGN"]]),
        "MISNAMED": ca.issue("OTHERNODE", addresses=["127.0.0.9"]),
        "EXPIRED": ca.issue("EXPIRED", addresses=[ADDRESSES["EXPIRED"]], not_before=now - datetime.timedelta(days=60),
                            not_after=now - datetime.timedelta(days=2)),
    }
    ca_file = ca.write_certificate(tmp_path_factory.mktemp("pki") / "lab-ca.pem")
    https_port, http_port = _free_port(list(ADDRESSES.values())), None
    tls = WsmanServer([HostEndpoint(n, a, https_port, USER, PASSWORD) for n, a in ADDRESSES.items()], Hostname(),
                      tls={n: (c.cert_path, c.key_path) for n, c in certs.items()})
    tls.start()
    http_port = _free_port([ADDRESSES["GOOD"]])
    plain = WsmanServer([HostEndpoint("GOOD", ADDRESSES["GOOD"], http_port, USER, PASSWORD)], Hostname())
    plain.start()
    yield tls, plain, https_port, http_port, str(ca_file)
    tls.stop()
    plain.stop()
    ca.cleanup()
    foreign.cleanup()


def host(name: str, port: int, ca_file: str | None, *, https: bool = True) -> WindowsHost:
    settings = WinRMSettings(transport="ntlm", https=https, port=port, ca_trust_path=ca_file, connect_timeout=3,
                             read_timeout=10, operation_timeout=2)
    return WindowsHost(name, ADDRESSES[name], USER, PASSWORD, settings)


def refused(name: str, port: int, ca_file: str | None, **kw) -> CertificateRejected:
    with pytest.raises(CertificateRejected) as info:
        host(name, port, ca_file, **kw).run("hostname", operation="Get-HostFacts")
    return info.value


def test_a_certificate_from_the_trusted_ca_is_validated_and_one_connection_serves_every_call(estate):
    tls, _, port, _, ca_file = estate
    h = host("GOOD", port, ca_file)
    before = tls.stats["hosts"]["GOOD"]["tls_handshakes"]
    assert [h.run("hostname")[0] for _ in range(3)] == [b"GOOD\r\n"] * 3
    assert tls.stats["hosts"]["GOOD"]["tls_handshakes"] - before == 1  # keep-alive: one handshake per host
    assert tls.stats["hosts"]["GOOD"]["encrypted_requests"] == 0  # TLS protects it: no WinRM sealing inside
    h.close()


def test_a_certificate_from_another_ca_names_its_issuer_and_ca_trust_path(estate):
    _, _, port, _, ca_file = estate
    err = refused("FOREIGN", port, ca_file)
    assert err.cause == "untrusted" and err.kind == "certificate"
    assert "issued by CN=someone else's CA" in str(err) and f"winrm.ca_trust_path ({ca_file}) does not trust" in str(err)
    assert "Set winrm.ca_trust_path in the inventory to the PEM file of the CA" in str(err)
    assert str(err).startswith("Get-HostFacts on FOREIGN: ") and "nothing was sent to the host" in str(err)


def test_without_ca_trust_path_the_lab_certificate_is_not_trusted_by_the_system_store(estate):
    _, _, port, _, _ = estate
    err = refused("GOOD", port, None)
    assert err.cause == "untrusted" and "this machine's CA store does not trust" in str(err)


def test_a_certificate_for_another_name_says_which_names_it_holds(estate):
    _, _, port, _, ca_file = estate
    err = refused("MISNAMED", port, ca_file)
    assert err.cause == "name_mismatch"
    assert "is issued for OTHERNODE, 127.0.0.9, not for 127.0.0.4" in str(err)
    assert "an address in the inventory that the certificate names" in str(err)


def test_an_expired_certificate_says_when_it_expired_and_how_to_rebind_it(estate):
    _, _, port, _, ca_file = estate
    err = refused("EXPIRED", port, ca_file)
    expired = (datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=2)).strftime("%Y-%m-%d")
    assert err.cause == "expired" and f"expired on {expired}" in str(err)
    assert "winrm set winrm/config/Listener?Address=*+Transport=HTTPS" in str(err)


def test_https_against_an_http_listener_says_to_check_the_port(estate):
    _, _, _, http_port, ca_file = estate
    err = refused("GOOD", http_port, ca_file)
    assert err.cause == "tls" and f"Check that port {http_port} is the host's WinRM HTTPS listener" in str(err)


def test_a_ca_trust_path_that_does_not_exist_is_named(estate, tmp_path):
    _, _, port, _, _ = estate
    missing = str(tmp_path / "no-such-ca.pem")
    err = refused("GOOD", port, missing)
    assert err.cause == "ca_file" and f"winrm.ca_trust_path ({missing}) cannot be read" in str(err)


def test_over_http_sealed_ntlm_is_served(estate):
    _, plain, _, http_port, _ = estate
    before = plain.stats["hosts"]["GOOD"]["encrypted_requests"]
    assert host("GOOD", http_port, None, https=False).run("hostname")[0] == b"GOOD\r\n"
    assert plain.stats["hosts"]["GOOD"]["encrypted_requests"] - before >= 4  # every SOAP body sealed


def test_over_http_an_unsealed_ntlm_body_is_refused_with_500_as_allowunencrypted_false_does(estate):
    _, plain, _, http_port, _ = estate
    before = plain.stats["hosts"]["GOOD"]["unencrypted_refused"]
    s = winrm.Session(f"http://{ADDRESSES['GOOD']}:{http_port}/wsman", auth=(USER, PASSWORD), transport="ntlm",
                      message_encryption="never", read_timeout_sec=5, operation_timeout_sec=2)
    with pytest.raises(winrm.exceptions.WinRMTransportError) as info:
        s.run_cmd("hostname")
    assert info.value.code == 500  # not 401: the login was fine, the body was not encrypted
    assert plain.stats["hosts"]["GOOD"]["unencrypted_refused"] - before == 1


def test_over_http_basic_is_not_offered(estate):
    _, _, _, http_port, _ = estate
    s = winrm.Session(f"http://{ADDRESSES['GOOD']}:{http_port}/wsman", auth=(USER, PASSWORD), transport="basic",
                      read_timeout_sec=5, operation_timeout_sec=2)
    with pytest.raises(winrm.exceptions.InvalidCredentialsError):
        s.run_cmd("hostname")
