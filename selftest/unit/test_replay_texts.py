"""entsso.lab.replay.derive_text: a captured `-displaydb` text once the state it described has changed."""
from __future__ import annotations

from entsso.lab import texts
from entsso.lab.replay import derive_text


def _own(server: str, computer: str, secret_server: str) -> str:
    return texts.displaydb(server, computer, sql_server="SQL1", database="SSODB", secret_server=secret_server)


def test_only_the_fields_that_changed_are_replaced_in_the_captured_text() -> None:
    start, now = _own("SSOCLUSTER", "NODE1", "SSOCLUSTER"), _own("SSOCLUSTER", "NODE1", "NODE2")
    captured = start.replace("Ticket timeout (in minutes) : 2", "Ticket timeout (in minutes) : 5")
    derived = derive_text(captured, start, now)
    assert derived == (captured.replace("SSO secret server name : SSOCLUSTER", "SSO secret server name : NODE2"),
                       ["SSO secret server name"])


def test_the_server_line_is_a_field_too() -> None:
    start, now = _own("SSOCLUSTER", "NODE1", "SSOCLUSTER"), _own("NODE1", "NODE1", "SSOCLUSTER")
    derived = derive_text(start, start, now)
    assert derived is not None and derived[0].startswith("Using SSO server on this computer\r\nSQL Server : SQL1\r\n")
    assert derived[1] == ["Using SSO server"]


def test_a_captured_error_answer_is_not_patched_into_a_success() -> None:
    error = texts.tool_error("SSOCLUSTER", "NODE2", texts.SECOND_HOP)
    assert derive_text(error, error, _own("SSOCLUSTER", "NODE2", "SSOCLUSTER")) is None
    other = texts.tool_error("SSOCLUSTER", "NODE2", texts.COULD_NOT_CONTACT)
    assert derive_text(error, error, other) is None  # another ERROR line: the lab's own text, not a mixed one
