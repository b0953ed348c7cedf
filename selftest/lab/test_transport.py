"""entsso.remote.winrm against the lab through real pywinrm: each failure classified with a message an operator
can act on, long scripts over stdin, and secrets kept out of every record."""
from __future__ import annotations

import base64
import logging
import time

import pytest
import winrm

from entsso.remote.winrm import (BadOutput, CallLog, CredentialsRefused, HostUnreachable, OperationTimedOut,
                          ScriptError, plan_invocation)
from selftest.lab.conftest import WINRM_PASSWORD, lab_host

FACTS = {"cluster": None, "services": ["ENTSSO"], "biztalk": False, "package": None,
         "backup_folder": None, "secret_backup_file": None}


def test_host_facts_come_back_as_json(make_lab):
    lab = make_lab()
    facts = lab_host(lab, "NODE1").invoke("Get-HostFacts", FACTS)
    assert facts["computer_name"] == "NODE1"
    assert facts["services"]["ENTSSO"]["exists"] is True


def test_unreachable_host_is_named_with_what_to_check(make_lab):
    lab = make_lab()
    lab.set_unreachable("NODE2", True)
    with pytest.raises(HostUnreachable) as err:
        lab_host(lab, "NODE2").invoke("Get-HostFacts", FACTS)
    assert "NODE2" in str(err.value) and "firewall" in str(err.value)
    assert lab_host(lab, "NODE1").invoke("Get-HostFacts", FACTS)["computer_name"] == "NODE1"


@pytest.mark.parametrize("transport", ["ntlm", "basic"])
def test_wrong_password_is_refused(make_lab, transport):
    lab = make_lab()
    with pytest.raises(CredentialsRefused) as err:
        lab_host(lab, "NODE1", password="not-the-password", transport=transport).invoke("Get-HostFacts", FACTS)
    assert "401" in str(err.value) and "not-the-password" not in str(err.value)


def test_hanging_operation_hits_the_deadline(make_lab):
    lab = make_lab()
    lab.apply_fault({"kind": "hang", "host": "NODE1", "operation": "Get-HostFacts", "seconds": 10**7})
    with pytest.raises(OperationTimedOut) as err:
        lab_host(lab, "NODE1").invoke("Get-HostFacts", FACTS, timeout=3)
    assert "Get-HostFacts" in str(err.value) and "NODE1" in str(err.value)


def test_script_error_carries_powershell_text_decoded_from_clixml(make_lab):
    lab = make_lab()
    lab.apply_fault({"kind": "fail", "host": "NODE1", "operation": "Get-HostFacts",
                     "message": "Access is denied to root\\MSCluster"})
    with pytest.raises(ScriptError) as err:
        lab_host(lab, "NODE1").invoke("Get-HostFacts", FACTS)
    assert "Access is denied to root\\MSCluster" in str(err.value)
    assert "_x000D_" not in str(err.value) and "<Objs" not in str(err.value)


def test_output_that_is_not_json_is_named(make_lab):
    lab = make_lab()
    lab.apply_fault({"kind": "wrong_output", "host": "NODE1", "operation": "Get-HostFacts",
                     "output": "WARNING: something odd"})
    with pytest.raises(BadOutput) as err:
        lab_host(lab, "NODE1").invoke("Get-HostFacts", FACTS)
    assert "WARNING: something odd" in str(err.value)


def test_long_script_goes_over_stdin_and_runs(make_lab):
    lab = make_lab()
    data = bytes(range(256)) * 80  # 20 KB: far past cmd.exe's 8191 characters once encoded
    params = {"path": "C:\\SSOBackup\\big.bin", "content_b64": base64.b64encode(data).decode()}
    assert plan_invocation("Write-File", params).via_stdin
    host = lab_host(lab, "NODE1")
    written = host.invoke("Write-File", params)
    assert written["size"] == len(data)
    back = host.invoke("Read-File", {"path": params["path"]})
    assert base64.b64decode(back["content_b64"]) == data


def test_stdin_borne_envelope_is_sent_to_a_command_with_console_mode_stdin_off(make_lab, monkeypatch):
    """The transport creates a stdin-fed command with WINRS_CONSOLEMODE_STDIN false, as Ansible's WinRM
    plugin does; a command that sends none keeps pywinrm's console mode."""
    seen: list[tuple[str, bool]] = []
    real = winrm.protocol.Protocol.run_command

    def spy(self, shell_id, command, arguments=(), console_mode_stdin=True, skip_cmd_shell=False):
        seen.append((command[:40], console_mode_stdin))
        return real(self, shell_id, command, arguments, console_mode_stdin, skip_cmd_shell)

    monkeypatch.setattr(winrm.protocol.Protocol, "run_command", spy)
    lab = make_lab()
    host = lab_host(lab, "NODE1")
    assert plan_invocation("Get-HostFacts", FACTS).via_stdin
    assert host.invoke("Get-HostFacts", FACTS)["computer_name"] == "NODE1"
    assert not plan_invocation("Read-File", {"path": "C:\\x"}).via_stdin
    with pytest.raises(ScriptError):
        host.invoke("Read-File", {"path": "C:\\no-such-file.bin"})
    assert [mode for _, mode in seen] == [False, True]


def test_a_console_mode_command_gets_no_envelope_from_stdin(make_lab, monkeypatch):
    """What happens without the fix: the lab, like powershell.exe under console-mode stdin, never sees the
    envelope; the empty scriptblock prints nothing and the transport names the empty answer."""
    real = winrm.protocol.Protocol.run_command

    def console_always(self, shell_id, command, arguments=(), console_mode_stdin=True, skip_cmd_shell=False):
        return real(self, shell_id, command, arguments, True, skip_cmd_shell)

    monkeypatch.setattr(winrm.protocol.Protocol, "run_command", console_always)
    lab = make_lab()
    with pytest.raises(BadOutput) as err:
        lab_host(lab, "NODE1").invoke("Get-HostFacts", FACTS)
    assert "Get-HostFacts on NODE1" in str(err.value)
    assert lab.wsman.stats["hosts"]["NODE1"]["stdin_to_console"] >= 1


def test_the_same_long_command_line_is_refused_as_cmd_would(make_lab):
    lab = make_lab()
    session = winrm.Session(f"https://{lab.addresses['NODE1']}:{lab.winrm_port}/wsman",
                            auth=(lab.username, WINRM_PASSWORD), transport="ntlm", ca_trust_path=str(lab.ca_path))
    result = session.run_cmd("echo " + "x" * 9000)
    assert result.status_code == 1
    assert b"The command line is too long." in result.std_err


def test_secret_never_in_call_records_logs_or_errors(make_lab, caplog):
    caplog.set_level(logging.DEBUG)
    canary = "Canary-Secret-" + "7f3a9c"
    lab = make_lab()
    calls = CallLog()
    host = lab_host(lab, "NODE1", calls=calls)
    doc = host.invoke("Backup-MasterSecret", {"file": "C:\\SSOBackup\\t.bak", "password": canary,
                                              "reminder": "selftest"})
    assert doc["size"] > 0
    with pytest.raises(ScriptError) as err:  # a wrong password on restore fails: its text must not echo it
        host.invoke("Restore-MasterSecret", {"file": "C:\\SSOBackup\\t.bak", "password": canary + "-wrong"})
    texts = [repr(r) for r in calls.records] + [m.getMessage() for m in caplog.records] + [str(err.value)]
    assert all(canary not in t for t in texts)
    assert all(r.via_stdin for r in calls.records)  # a secret never rides on a command line
    assert calls.records[0].params["password"] == "***"


def test_every_call_is_counted_and_timed_per_host(make_lab):
    lab = make_lab()
    calls = CallLog()
    for name in ("NODE1", "NODE2", "NODE2"):
        lab_host(lab, name, calls=calls).invoke("Get-HostFacts", FACTS)
    per_host = calls.per_host()
    assert per_host["NODE1"]["calls"] == 1 and per_host["NODE2"]["calls"] == 2
    assert all(r.seconds > 0 for r in calls.records)


def _requests(lab, host: str = "NODE1") -> int:
    return lab.wsman.stats["hosts"][host]["requests"]


def _commands(lab, host: str = "NODE1") -> int:
    return lab.wsman.stats["hosts"][host]["commands"]


def test_a_kept_connection_keeps_its_shell_and_close_deletes_it(make_lab):
    """pywinrm runs several commands in one shell: after the first call (NTLM's handshake, Create, Command,
    Send, Receive, Signal) a call is Command, [Send], Receive, Signal, on the same TLS connection."""
    lab = make_lab()
    host = lab_host(lab, "NODE1")

    def requests_of(operation: str, params: dict) -> int:
        before = _requests(lab)
        host.invoke(operation, params)
        return _requests(lab) - before

    # over https NTLM's handshake is the refused first request and the challenge; then Create, Command,
    # Send (stdin), Receive, Signal
    assert requests_of("Get-HostFacts", FACTS) == 2 + 5
    assert requests_of("Get-HostFacts", FACTS) == 4  # the kept shell: Command, Send, Receive, Signal
    small = {"path": "C:\\SSOBackup\\t.txt", "content_b64": "eA=="}
    assert not plan_invocation("Write-File", small).via_stdin  # fits the command line: no Send
    assert requests_of("Write-File", small) == 3
    assert lab.wsman.stats["hosts"]["NODE1"]["shells_open"] == 1
    assert lab.wsman.stats["hosts"]["NODE1"]["tls_handshakes"] == 1  # keep-alive: one handshake for three calls
    host.close()
    assert lab.wsman.stats["hosts"]["NODE1"]["shells_open"] == 0  # the run's end deletes what it kept


def test_a_shell_winrm_deleted_for_idleness_is_replaced_and_the_command_runs_once(make_lab):
    lab = make_lab(winrm={"shell_idle_timeout_sec": 20})  # winrm/config/winrs IdleTimeout, estate seconds
    host = lab_host(lab, "NODE1")
    host.invoke("Get-HostFacts", FACTS)
    time.sleep(lab.clock.real(20) + 0.2)  # the kept shell idles past IdleTimeout: the service deletes it
    before = _commands(lab)
    assert host.invoke("Get-HostFacts", FACTS)["computer_name"] == "NODE1"
    assert _commands(lab) - before == 1  # refused with 2150858843, then run once on a fresh shell
    assert [r.outcome for r in host.calls.records] == ["ok", "ok"]


@pytest.mark.parametrize("restarted", [False, True], ids=["off the network", "restarted"])
def test_a_host_that_went_away_and_came_back_is_reached_again_and_the_command_runs_once(make_lab, restarted):
    """Its connections were reset; restarted, its WinRM service also lost the kept shell (2150858843)."""
    lab = make_lab()
    host = lab_host(lab, "NODE1")
    host.invoke("Get-HostFacts", FACTS)
    lab.wsman.set_reachable("NODE1", False, restarted=restarted)
    lab.wsman.set_reachable("NODE1", True)
    assert lab.wsman.stats["hosts"]["NODE1"]["shells_open"] == (0 if restarted else 1)
    before = _commands(lab)
    assert host.invoke("Get-HostFacts", FACTS)["computer_name"] == "NODE1"
    assert _commands(lab) - before == 1


def test_a_command_lost_after_it_was_sent_is_not_sent_again(make_lab):
    """The host drops the connection while the Command runs: it may have run, so the call fails and says
    so; it is never retried (a mutating operation must not run twice)."""
    lab = make_lab()
    host = lab_host(lab, "NODE1")
    host.invoke("Get-HostFacts", FACTS)  # a kept shell, so the retry path would be open
    lab.apply_fault({"kind": "unreachable", "host": "NODE1", "operation": "Read-File"})
    before = _commands(lab)
    with pytest.raises(HostUnreachable):
        host.invoke("Read-File", {"path": "C:\\SSOBackup\\t.txt"})
    assert _commands(lab) - before == 1


def test_proxy_variables_of_the_environment_do_not_carry_winrm(make_lab, monkeypatch):
    """An admin box often has HTTP(S)_PROXY set for the web; WinRM must still go straight to the hosts."""
    lab = make_lab()
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    assert lab_host(lab, "NODE1").invoke("Get-HostFacts", FACTS)["computer_name"] == "NODE1"


def test_a_named_proxy_is_used_and_named_when_it_does_not_answer(make_lab):
    lab = make_lab()
    host = lab_host(lab, "NODE1", proxy="http://127.0.0.1:9")
    with pytest.raises(HostUnreachable) as err:
        host.invoke("Get-HostFacts", FACTS)
    assert "through the proxy http://127.0.0.1:9" in str(err.value)
