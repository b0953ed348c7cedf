"""The retry policy (entsso.remote.retry): which operations a lost connection may repeat, which errors are
transient, how long; and how a lost update package is judged from the node's answers
(entsso.domain.lostinstall)."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta
from importlib import resources

import pytest

from entsso.domain.lostinstall import InstallStateUnknown, LogLook, decode_log, judge
from entsso.remote.errors import (BadOutput, CertificateRejected, CredentialsRefused, HostNotResolved, HostUnreachable,
                                  OperationTimedOut, ScriptError)
from entsso.remote.retry import NEVER_REPEATED, SAFE_TO_REPEAT, RetryPolicy, may_repeat, transient


def _operations() -> set[str]:
    return {e.name[:-4] for e in resources.files("entsso.remote.ps").iterdir() if e.name.endswith(".ps1")}


def test_every_operation_is_either_safe_to_repeat_or_never_repeated_with_a_reason():
    assert set(SAFE_TO_REPEAT) | set(NEVER_REPEATED) == _operations()
    assert not set(SAFE_TO_REPEAT) & set(NEVER_REPEATED)
    assert all(len(why) > 10 for why in [*SAFE_TO_REPEAT.values(), *NEVER_REPEATED.values()])


# what each safe script's header says that makes a repeat harmless (Update-SsoDatabase's does not say it: writing
# the secret server SSODB already names is the same write, and the suite reads SSODB after it either way)
HEADER_SAYS = {"Get-HostFacts": "Reads (changes nothing", "Read-File": "Reads (changes nothing",
               "Read-SecretBackup": "Reads (changes nothing", "Get-ClusterSsoRoles": "Reads (changes nothing",
               "Get-AdapterHandlers": "Reads (changes nothing", "Set-ServiceState": "is left alone",
               "Set-SsoServer": "already has changes nothing", "Write-File": "is left untouched"}


@pytest.mark.parametrize("op", sorted(HEADER_SAYS))
def test_a_safe_scripts_header_says_it_reads_or_leaves_an_estate_already_so_alone(op):
    assert op in SAFE_TO_REPEAT
    head = resources.files("entsso.remote.ps").joinpath(f"{op}.ps1").read_text(encoding="utf-8")[:2500]
    assert HEADER_SAYS[op] in " ".join(line.lstrip("# ") for line in head.splitlines()), op


@pytest.mark.parametrize("op", ["Install-SsoUpdate", "Backup-MasterSecret", "Restore-MasterSecret", "Restart-Node"])
def test_the_installer_backup_restore_and_restart_are_never_repeated(op):
    assert not may_repeat(op)


def test_only_no_answer_from_the_host_is_transient():
    assert transient(HostUnreachable("NODE1", "Get-HostFacts", "no answer"))
    for error in (HostNotResolved("NODE1", "Get-HostFacts", "does not resolve (DNS)"),
                  CredentialsRefused("NODE1", "Get-HostFacts", "401"),
                  CertificateRejected("NODE1", "Get-HostFacts", "untrusted", "untrusted"),
                  OperationTimedOut("NODE1", "Get-HostFacts", "deadline"),
                  ScriptError("NODE1", "Get-HostFacts", "threw", 1, "text"),
                  BadOutput("NODE1", "Get-HostFacts", "not JSON")):
        assert not transient(error), type(error).__name__


def test_the_waits_grow_then_stay_at_the_last():
    policy = RetryPolicy(window=30)
    assert [policy.delay(a) for a in range(2, 8)] == [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]


T0 = datetime(2026, 12, 7, 23, 50, tzinfo=UTC)
MSP = r"C:\Updates\SSO\EntSSO-CU.msp"


def _log(text: str, minutes: float) -> LogLook:
    return LogLook(True, text, T0 + timedelta(minutes=minutes))


def test_a_log_written_since_the_install_with_its_exit_code_is_finished():
    v = judge(MSP, _log("=== Verbose logging started\r\nMSI (c) (2C:30) [23:52:01:123]: MainEngineThread is "
                        "returning 3010\r\n", 2), T0, "10.0.1000.0")
    assert (v.state, v.exit_code) == ("finished", 3010)


def test_a_log_written_since_without_its_exit_code_is_still_running():
    assert judge(MSP, _log("=== Verbose logging started\r\n", 1), T0, None).state == "running"


def test_no_log_or_an_earlier_installs_log_means_it_never_started():
    assert judge(MSP, LogLook(False), T0, "10.0.1000.0").state == "not-started"
    old = _log("MSI (c) (2C:30) [10:00:00:000]: MainEngineThread is returning 1603\r\n", -60)
    assert judge(MSP, old, T0, "10.0.1000.0").state == "not-started"


def test_an_exe_package_without_msiexecs_log_cannot_be_judged():
    with pytest.raises(InstallStateUnknown) as err:
        judge(r"C:\Updates\setup.exe", LogLook(False), T0, "10.0.1000.0")
    assert "not a Windows Installer package" in str(err.value)


def test_a_utf16_log_is_read():
    data = "\ufeffMSI (c) (2C:30) [23:52:01:123]: MainEngineThread is returning 0\r\n".encode("utf-16-le")
    assert _log(decode_log(data), 1).returned() == 0
