"""Errors that name the real cause: a host name with no address is a DNS problem, said so; a host that
resolves but does not answer is a different one; an awaited upgrade that timed out says, in words, what
the node reported meanwhile."""
from __future__ import annotations

import socket

import pytest

from entsso.domain.sso import versions_seen as _versions_seen
from entsso.domain.poll import Poller, WaitTimedOut
from entsso.remote.winrm import HostNotResolved, HostUnreachable, WindowsHost, WinRMSettings

PARAMS = {"cluster": None, "services": [], "biztalk": False, "package": None, "backup_folder": None,
          "secret_backup_file": None}


def test_a_name_that_does_not_resolve_is_reported_as_dns() -> None:
    # .invalid is reserved (RFC 6761): no resolver answers it, nothing leaves the machine
    host = WindowsHost("NODE9", "node9.corp.invalid", "CORP\\svc", "pw", WinRMSettings(https=False, connect_timeout=3))
    with pytest.raises(HostNotResolved) as info:
        host.invoke("Get-HostFacts", PARAMS)
    assert str(info.value) == (
        "Get-HostFacts on NODE9: node9.corp.invalid does not resolve (DNS): check the inventory's address for "
        "NODE9 or the admin box's DNS (nslookup node9.corp.invalid); nothing was sent to the host.")
    assert info.value.kind == "dns"
    assert isinstance(info.value, HostUnreachable)  # still a host the run cannot reach, for every caller


def test_a_host_that_resolves_but_does_not_answer_is_not_called_dns() -> None:
    with socket.socket() as s:  # a port nobody listens on: bound, never listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        host = WindowsHost("NODE8", "127.0.0.1", "CORP\\svc", "pw",
                           WinRMSettings(https=False, port=port, connect_timeout=3))
        with pytest.raises(HostUnreachable) as info:
            host.invoke("Get-HostFacts", PARAMS)
    assert not isinstance(info.value, HostNotResolved) and info.value.kind == "unreachable"
    assert f"no answer from http://127.0.0.1:{port}/wsman" in str(info.value)
    assert "DNS" not in str(info.value)


@pytest.mark.parametrize(("reported", "words"), [
    (["10.0.1000.0"], "it reported 10.0.1000.0 the whole time"),
    ([None], "it did not answer WinRM the whole time"),
    (["10.0.1000.0", None, "10.0.1500.0"], "it reported 10.0.1000.0, then no answer, then 10.0.1500.0 (the last)"),
])
def test_versions_seen_during_an_upgrade_wait_are_told_in_words(reported: list[str | None], words: str) -> None:
    assert _versions_seen(reported) == words


def test_a_wait_that_times_out_says_what_it_saw_instead_of_the_last_value() -> None:
    poller = Poller(first=0.01, cap=0.01)
    with pytest.raises(WaitTimedOut) as info:
        poller.until(lambda: None, 0.05, what="NODE1 to report SSO 10.0.2000.0",
                     seen=lambda: "it reported 10.0.1000.0 the whole time")
    assert str(info.value) == ("gave up waiting for NODE1 to report SSO 10.0.2000.0 after 0 s; "
                               "it reported 10.0.1000.0 the whole time")
    with pytest.raises(WaitTimedOut, match=r"after 0 s \(last seen: 7\)$"):
        Poller(first=0.01, cap=0.01).until(lambda: None, 0.02, what="x", describe=lambda: 7)


# --- winrm.classify: what pywinrm and requests raise, named for the operator ------------------------------
def _classified(exc: Exception, **settings: object):
    from entsso.remote.winrm import classify

    return classify(exc, "NODE1", "Get-HostFacts", "node1.corp.example", WinRMSettings(https=False, **settings),
                    "CORP\\svc")


def test_refused_credentials_name_the_account_and_the_endpoint() -> None:
    import winrm.exceptions as we

    from entsso.remote.winrm import CredentialsRefused

    err = _classified(we.InvalidCredentialsError("401"))
    assert isinstance(err, CredentialsRefused) and err.kind == "credentials"
    assert str(err).startswith("Get-HostFacts on NODE1: the credentials for CORP\\svc were refused by "
                               "http://node1.corp.example:5985/wsman (HTTP 401).")


def test_a_proxy_that_does_not_answer_is_named_with_the_way_around_it() -> None:
    import requests

    err = _classified(requests.exceptions.ProxyError("refused"), proxy="http://proxy.corp.example:8080")
    assert isinstance(err, HostUnreachable) and not isinstance(err, HostNotResolved)
    assert "through the proxy http://proxy.corp.example:8080 (ProxyError)" in str(err)
    assert "remove winrm.proxy from the inventory" in str(err)


def test_an_unreadable_ca_file_is_a_certificate_failure_and_another_os_error_is_not_the_estates() -> None:
    from entsso.remote.winrm import CertificateRejected

    err = _classified(OSError("Could not find a suitable TLS CA certificate bundle, invalid path: /nope.pem"),
                      ca_trust_path="/nope.pem")
    assert isinstance(err, CertificateRejected) and err.cause == "ca_file"
    assert "winrm.ca_trust_path (/nope.pem) cannot be read" in str(err)
    assert _classified(OSError("disk full"), transport="kerberos") is None  # re-raised as it is, even for Kerberos


@pytest.mark.parametrize(("transport", "raised", "kind", "words"), [
    ("ntlm", "transport", "remote", "WinRM refused the request"),
    ("kerberos", "transport", "credentials", "kerberos authentication to http://node1.corp.example:5985/wsman failed"),
    ("kerberos", "fault", "remote", "WinRM refused the request"),  # a WS-Man fault: the login itself worked
    ("credssp", "other", "credentials", "credssp authentication to"),  # gssapi/spnego's own errors
    ("ntlm", "other", None, None),  # a bug of the suite's, not the estate's answer
])
def test_winrm_errors_are_a_refused_request_or_a_kerberos_login_by_transport(transport: str, raised: str,
                                                                            kind: str | None,
                                                                            words: str | None) -> None:
    import winrm.exceptions as we

    exc = {"transport": we.WinRMTransportError("http", 500, "Bad HTTP response returned from server"),
           "fault": we.WSManFaultError(500, "fault", "<xml/>", "access denied", wsman_fault_code=5),
           "other": RuntimeError("gss failure")}[raised]
    err = _classified(exc, transport=transport)
    if kind is None:
        assert err is None
        return
    assert err is not None and err.kind == kind and words in str(err)
