"""Moving the master secret server (sso.ensure_secret_server): ssomanage -updatedb's ERROR line is a
failure the operator can act on; without one, SSODB is read back until it names the new server."""
from __future__ import annotations

from typing import Any

import pytest

from entsso.domain import sso
from entsso.domain.poll import Poller

NO_ADMIN = "Using SSO server : SSOCLUSTER\r\nERROR: 0xC0002A13 : This function can only be performed by a local administrator.\r\n"


class Scalar:
    def __init__(self, value: Any) -> None:
        self.value = value

    def scalar(self) -> Any:
        return self.value


class FakeSql:
    """SSODB's gi_SecretServer as a sequence of answers (the last one repeats)."""

    def __init__(self, *answers: str) -> None:
        self.answers = list(answers)

    def execute(self, statement: str, database: str | None = None) -> Scalar:
        return Scalar(self.answers.pop(0) if len(self.answers) > 1 else self.answers[0])


class FakeHost:
    name = "NODE1"

    def __init__(self, stdout: str) -> None:
        self.stdout = stdout
        self.calls: list[dict[str, Any]] = []

    def invoke(self, operation: str, params: dict[str, Any], timeout: float | None = None) -> dict[str, Any]:
        self.calls.append(params)
        return {"exit_code": 0, "stdout": self.stdout, "stderr": ""}


def quick() -> Poller:
    return Poller(first=0.001, cap=0.001, sleep=lambda s: None)


def test_an_error_line_stops_the_move_naming_it_and_what_to_check():
    host = FakeHost(NO_ADMIN)
    with pytest.raises(RuntimeError) as info:
        sso.ensure_secret_server(host, FakeSql("SSOCLUSTER"), "NODE1", poller=quick())  # type: ignore[arg-type]
    message = str(info.value)
    assert "ERROR: 0xC0002A13 : This function can only be performed by a local administrator." in message
    assert "still 'SSOCLUSTER'" in message and "ENTSSO runs on SSOCLUSTER" in message


def test_without_an_error_the_move_is_read_back_from_ssodb():
    host = FakeHost("Using SSO server : SSOCLUSTER\r\n")
    out = sso.ensure_secret_server(host, FakeSql("SSOCLUSTER", "SSOCLUSTER", "NODE1"), "NODE1",  # type: ignore[arg-type]
                                   poller=quick())
    assert (out.evidence["secret_server_before"], out.evidence["secret_server"], out.changed) == (
        "SSOCLUSTER", "NODE1", True)
    assert host.calls == [{"secret_server": "NODE1"}]


def test_ssodb_that_never_names_the_server_is_an_error_showing_what_ssomanage_printed():
    host = FakeHost("Using SSO server : SSOCLUSTER\r\nSomething ssomanage said\r\n")
    with pytest.raises(RuntimeError) as info:
        sso.ensure_secret_server(host, FakeSql("SSOCLUSTER"), "NODE1", timeout=0.01, poller=quick())  # type: ignore[arg-type]
    message = str(info.value)
    assert "printed no error (Something ssomanage said, exit code 0)" in message
    assert "SSODB names 'SSOCLUSTER', not 'NODE1'" in message


def test_nothing_runs_when_ssodb_already_names_the_server():
    host = FakeHost(NO_ADMIN)
    out = sso.ensure_secret_server(host, FakeSql("node1"), "NODE1", poller=quick())  # type: ignore[arg-type]
    assert out.changed is False and host.calls == [] and out.noop_reason == "SSODB already names node1"
