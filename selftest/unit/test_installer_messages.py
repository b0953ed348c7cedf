"""The stop message for each Windows Installer failure says what the installer did and what the operator
does next (entsso.domain.installer.installer_failure)."""
from __future__ import annotations

import pytest

from entsso.domain import installer

LOG = r"C:\Windows\Temp\entsso-update.log"
PACKAGE = r"C:\Updates\sso.msp"


@pytest.mark.parametrize("code, what_happened, what_to_do", [
    (1618, "Windows Installer did not start it and changed nothing", "Get-Process msiexec on NODE2"),
    (1619, rf"Windows Installer could not open {PACKAGE} and changed nothing", "compare its size and hash"),
    (1638, "Windows Installer refused it and changed nothing", "check Programs and Features on NODE2"),
    (1603, "Windows Installer rolled the installation back", rf"Read the installer log {LOG} on NODE2"),
    (1234, "NODE2 still reports Enterprise SSO 10.0.1000.0", rf"Read the installer log {LOG} on NODE2"),
])
def test_installer_failure_names_the_effect_and_the_way_out(code, what_happened, what_to_do):
    text = installer.installer_failure("NODE2", code, LOG, "10.0.1000.0", PACKAGE)
    assert text.startswith(f"NODE2: the update package returned exit code {code} (")
    assert what_happened in text and what_to_do in text
    assert "10.0.1000.0" in text


def test_installer_failure_without_a_version_says_it_is_unchanged():
    assert "NODE1's version is unchanged" in installer.installer_failure("NODE1", 1618, LOG, None, PACKAGE)


@pytest.mark.parametrize("code, allow_reboot, expected", [
    (0, False, "DONE"), (0, True, "DONE"),
    (3010, False, "STOP_REBOOT_REQUIRED"), (3010, True, "RESTART"),
    (1641, False, "STOP_RESTARTING"), (1641, True, "AWAIT_RESTART"),
    (1603, True, "FAILED"), (1618, False, "FAILED"), (-1, True, "FAILED"), (1, False, "FAILED"),
])
def test_next_action_after_the_package(code, allow_reboot, expected):
    exit = installer.parse_installer_exit("", "", code)
    assert installer.next_action(exit, allow_reboot) is installer.Next[expected]
