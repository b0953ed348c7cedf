"""The stop message for each Windows Installer failure says what the installer did and what the operator
does next (entsso.domain.sso.installer_failure)."""
from __future__ import annotations

import pytest

from entsso.domain import sso

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
    text = sso.installer_failure("NODE2", code, LOG, "10.0.1000.0", PACKAGE)
    assert text.startswith(f"NODE2: the update package returned exit code {code} (")
    assert what_happened in text and what_to_do in text
    assert "10.0.1000.0" in text


def test_installer_failure_without_a_version_says_it_is_unchanged():
    assert "NODE1's version is unchanged" in sso.installer_failure("NODE1", 1618, LOG, None, PACKAGE)
