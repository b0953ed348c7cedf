"""Errors that name the real cause: a host name with no address is a DNS problem, said so; a host that
resolves but does not answer is a different one; an awaited upgrade that timed out says, in words, what
the node reported meanwhile."""
from __future__ import annotations

import socket

import pytest

from entsso.change.runbook import _versions_seen
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
