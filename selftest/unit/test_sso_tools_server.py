"""Which SSO server a machine's SSO tools use, read from ssomanage's own first line (published forms:
docs/domain-notes.md), and how ensure_tools_server decides from Set-SsoServer's raw answer: the server
before, -serverall's answer, the server after. No ssoclient text and no registry guess is read any more."""
from __future__ import annotations

from typing import Any

import pytest

from entsso.domain import sso
from selftest.unit.test_transcripts import ROOT, read_transcript


def raw(name: str) -> dict[str, Any]:
    headers, text = read_transcript(ROOT / "ssomanage" / f"{name}.txt")
    return {"exit_code": int(headers.get("exit_code", "0")), "stdout": text, "stderr": "", "run_error": None}


LOCAL = "displaydb-local-cpr-2008"  # "Using SSO server on this computer"
REMOTE_DOWN = "displaydb-remote-rpc-unavailable"  # "Using SSO server : NODE1" then ERROR (the server line still comes)
NO_LINE = "displaydb-learn-labels"  # settings, no server line
INVENTED = "displaydb-invented-before-issue-14"


@pytest.mark.parametrize("case, computer, expected", [
    (LOCAL, "DSITEAMSRV", "DSITEAMSRV"),
    (REMOTE_DOWN, "NODE2", "NODE1"),
    (NO_LINE, "NODE1", None),
])
def test_the_tools_server_is_the_server_ssomanage_says_it_uses(case, computer, expected):
    s = sso.parse_sso(computer, {"computer_name": computer, "sso": {"installed": True, "displaydb": raw(case)}})
    assert s.tools_server == expected


def test_unknown_displaydb_text_leaves_the_tools_server_unknown_not_guessed():
    s = sso.parse_sso("NODE1", {"computer_name": "NODE1", "sso": {"installed": True, "displaydb": raw(INVENTED)}})
    assert s.tools_server is None and "does not recognise" in s.displaydb_error


def using(server: str | None) -> dict[str, Any]:
    line = "Using SSO server on this computer" if server is None else f"Using SSO server : {server}"
    text = line + "\r\nERROR: 0xC0002A0F : Could not contact the SSO server 'X'. Check that SSO is configured and " \
                  "that the SSO service is running on that server. (RPC: 0x800706BA: The RPC server is unavailable.)\r\n"
    return {"exit_code": 0, "stdout": text, "stderr": "", "run_error": None}


class FakeHost:
    def __init__(self, answer: dict[str, Any]) -> None:
        self.name, self.answer, self.calls = "NODE2", answer, []

    def invoke(self, operation: str, params: dict[str, Any], timeout: float = 0) -> dict[str, Any]:
        self.calls.append((operation, params))
        return self.answer


def answer(before: dict[str, Any], after: dict[str, Any], serverall: str = "") -> dict[str, Any]:
    return {"computer_name": "NODE2", "before": before, "after": after,
            "serverall": {"exit_code": 0, "stdout": serverall, "stderr": "", "run_error": None}}


def test_a_change_is_proven_by_the_server_line_after_even_when_that_server_does_not_answer():
    host = FakeHost(answer(using("SSOCLUSTER"), using("NODE1")))
    out = sso.ensure_tools_server(host, "node1")  # type: ignore[arg-type]
    assert out.evidence["tools_server_before"] == "SSOCLUSTER" and out.evidence["tools_server"] == "NODE1"
    assert out.changed is True and out.outcome == "ok"
    assert host.calls == [("Set-SsoServer", {"server": "node1"})]


def test_the_same_server_before_is_no_change_and_this_computer_is_its_own_name():
    out = sso.ensure_tools_server(FakeHost(answer(using(None), using(None))), "NODE2")  # type: ignore[arg-type]
    assert out.changed is False and out.evidence["tools_server"] == "NODE2"
    assert out.outcome == "unchanged" and out.noop_reason == "its tools already used NODE2"


def test_a_per_user_setting_that_wins_over_serverall_stops_naming_what_to_do():
    with pytest.raises(sso.ToolsServerNotSet) as info:
        sso.ensure_tools_server(FakeHost(answer(using("SSOCLUSTER"), using("SSOCLUSTER"))), "NODE1")  # type: ignore[arg-type]
    assert "says it uses 'SSOCLUSTER', not 'NODE1'" in str(info.value)
    assert "ssomanage -server NODE1" in str(info.value)


def test_an_error_line_from_serverall_is_a_failure_that_says_where_the_tools_still_point():
    bad = "ERROR: 0xC0002A13 : This function can only be performed by a local administrator.\r\n"
    with pytest.raises(sso.ToolsServerNotSet, match="0xC0002A13.*still use 'SSOCLUSTER'"):
        sso.ensure_tools_server(FakeHost(answer(using("SSOCLUSTER"), using("NODE1"), bad)), "NODE1")  # type: ignore[arg-type]


def test_an_unknown_read_back_is_a_stop_that_shows_the_text_never_a_silent_pass():
    invented = {"exit_code": 0, "stdout": "Secret Server Name: NODE1\r\n", "stderr": "", "run_error": None}
    with pytest.raises(sso.ToolsServerNotSet) as info:
        sso.ensure_tools_server(FakeHost(answer(using("SSOCLUSTER"), invented)), "NODE1")  # type: ignore[arg-type]
    assert "after `ssomanage -serverall NODE1`" in str(info.value) and "Secret Server Name: NODE1" in str(info.value)
