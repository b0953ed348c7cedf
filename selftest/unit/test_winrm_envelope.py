"""The WinRM transport's pure parts: the envelope, the command-line/stdin decision, CLIXML, redaction."""
import base64
import re

import pytest

from entsso.remote import envelope, winrm
from entsso.remote.winrm import (CMD_LIMIT, STDIN_BOOTSTRAP, CallLog, build_envelope, decode_clixml, has_secret,
                          plan_invocation, redact)

SCRIPT = "# entsso-operation: Get-Thing\n$x = $EntssoParams.name\n[pscustomobject]@{x=$x} | ConvertTo-Json -Compress\nexit 0\n"


@pytest.fixture(autouse=True)
def fake_script(monkeypatch):
    monkeypatch.setattr(envelope, "script_text", lambda op: SCRIPT.replace("Get-Thing", op))


def decoded(command_line: str) -> str:
    b64 = command_line.split()[-1]
    return base64.b64decode(b64).decode("utf-16-le")


def test_short_call_goes_on_the_command_line_with_profile_and_prompts_off():
    plan = plan_invocation("Get-Thing", {"name": "NODE1"})
    assert plan.stdin is None
    assert plan.command_line.startswith("powershell.exe -NoProfile -NonInteractive")
    assert len(plan.command_line) <= CMD_LIMIT
    text = decoded(plan.command_line)
    assert "$ProgressPreference = 'SilentlyContinue'" in text
    assert '{"name":"NODE1"}' in text and text.endswith(SCRIPT)


def test_call_past_cmd_limit_goes_over_stdin_behind_the_bootstrap():
    plan = plan_invocation("Get-Thing", {"name": "x" * 5000})
    assert plan.via_stdin
    assert decoded(plan.command_line) == STDIN_BOOTSTRAP
    assert len(plan.command_line) < 500
    assert plan.stdin.decode("utf-8").endswith(SCRIPT)


def test_secret_param_forces_stdin_even_when_short():
    plan = plan_invocation("Get-Thing", {"file": "C:\\b.bak", "password": "Canary-7f3a"})
    assert plan.via_stdin
    assert "Canary" not in plan.command_line
    assert "Canary-7f3a" in plan.stdin.decode("utf-8")


def test_envelope_json_stays_on_one_line_so_the_here_string_cannot_break():
    text = build_envelope("Get-Thing", {"name": "a\n'@\nb", "é": "ü"})
    body = text.split("@'\n", 1)[1].split("\n'@\n", 1)[0]
    assert "\n" not in body and "'@" not in body.split('"')[0]


def test_secret_objects_are_revealed_only_inside_the_envelope():
    class Secret:
        def get_secret_value(self):
            return "Canary-42"

        def __repr__(self):
            return "***"

    params = {"password": Secret()}
    assert "Canary-42" in build_envelope("Get-Thing", params)
    assert redact(params) == {"password": "***"}
    assert has_secret({"a": [{"password": 1}]}) and not has_secret({"passwords_env": "X"})


def test_clixml_error_records_decoded_and_progress_dropped():
    stderr = (b'#< CLIXML\r\n<Objs Version="1.1.0.1" xmlns="http://schemas.microsoft.com/powershell/2004/04">'
              b'<Obj S="progress" RefId="0"><TN RefId="0"><T>System.Management.Automation.PSCustomObject</T>'
              b'</TN><MS><I64 N="SourceId">1</I64><PR N="Record"><AV>Preparing modules for first use.</AV>'
              b'</PR></MS></Obj><S S="Error">ENTSSO did not start_x000D__x000A_</S>'
              b'<S S="Error">At line:1 char:1_x000D__x000A_</S></Objs>')
    text = decode_clixml(stderr)
    assert text.startswith("ENTSSO did not start\r\nAt line:1 char:1")
    assert "Preparing modules" not in text


def test_plain_stderr_is_kept_as_text():
    assert decode_clixml(b"The command line is too long.\r\n") == "The command line is too long."


def test_call_log_counts_per_host():
    log = CallLog()
    for host in ("A", "A", "B"):
        log.add(winrm.CallRecord(host, "Op-X", {}, 0.0, 0.5, False, 10, "ok"))
    assert log.count() == 3 and log.count("A") == 2
    assert log.per_host()["A"]["calls"] == 2 and log.per_host()["B"]["seconds"] == pytest.approx(0.5)


# --- which failed Command on a kept shell may be tried again ------------------------------------------------
def _fault(code: int) -> Exception:
    import winrm.exceptions as we

    return we.WSManFaultError(500, "fault", "<xml/>", "reason", wsman_fault_code=code)


@pytest.mark.parametrize("exc, retried", [
    (_fault(2150858843), True),  # the shell was deleted (IdleTimeout, a restarted service): nothing ran
    (_fault(2150858793), False),  # another fault: the service received the Command; no retry
])
def test_only_a_missing_shell_fault_retries(exc, retried):
    from entsso.remote.winrm import _command_never_ran

    assert _command_never_ran(exc) is retried


def test_a_refusal_before_processing_retries_and_a_lost_answer_never_does():
    import requests
    import urllib3.exceptions as ue
    import winrm.exceptions as we

    from entsso.remote.winrm import _command_never_ran

    not_connected = requests.exceptions.ConnectionError(
        ue.MaxRetryError(None, "/wsman", reason=ue.NewConnectionError(None, "refused")))
    reset_after_send = requests.exceptions.ConnectionError(
        ue.ProtocolError("Connection aborted.", ConnectionResetError(104, "reset by peer")))
    assert _command_never_ran(not_connected)
    assert _command_never_ran(requests.exceptions.ConnectTimeout())
    assert _command_never_ran(we.InvalidCredentialsError("401"))
    assert _command_never_ran(we.WinRMTransportError("http", 400, "bad request"))
    assert not _command_never_ran(reset_after_send)  # it may have run: never sent twice
    assert not _command_never_ran(requests.exceptions.ReadTimeout())
    assert not _command_never_ran(RuntimeError("anything else"))


def test_a_connection_that_breaks_mid_answer_is_an_unreachable_host(monkeypatch):
    """The host vanished while its answer was on the wire (requests' ChunkedEncodingError, found by the CI
    fault matrix): that is the host dropping off, said as such, not an unclassified exception."""
    import requests

    from entsso.remote.winrm import HostUnreachable, WindowsHost, WinRMSettings

    class Broken:
        transport = type("T", (), {"close_session": lambda self: None})()

        def open_shell(self, **_):
            raise requests.exceptions.ChunkedEncodingError("Connection broken: IncompleteRead(0 bytes read)")

    host = WindowsHost("NODE1", "10.0.0.11", "CORP\\svc", "pw", WinRMSettings(https=False))
    monkeypatch.setattr(host, "_new_protocol", lambda: Broken())
    with pytest.raises(HostUnreachable) as err:
        host.invoke("Get-HostFacts", {})
    assert "NODE1" in str(err.value) and "ChunkedEncodingError" in str(err.value)
