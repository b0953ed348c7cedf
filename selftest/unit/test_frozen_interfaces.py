"""Interfaces a layout change must keep (frozen on 45684ed): the packaged scripts (the lab and the
transcripts know them by name and content), the command lines an operator types, and the logger names
the report groups its per-phase log by."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

SCRIPTS = {"Backup-MasterSecret", "Get-AdapterHandlers", "Get-ClusterSsoRoles", "Get-HostFacts",
           "Install-SsoUpdate", "Move-ClusterGroup", "Read-File", "Read-SecretBackup", "Restart-Node", "Restore-MasterSecret",
           "Set-ClusterResourceState", "Set-ServiceState", "Set-SsoServer", "Update-SsoDatabase", "Write-File"}


def test_every_packaged_script_is_found_by_its_operation_name():
    from entsso.remote.winrm import script_text

    for name in SCRIPTS:
        assert script_text(name).strip(), name


@pytest.mark.parametrize("command", [
    ["-m", "entsso", "doctor", "--help"],
    ["-m", "entsso.inventory", "--help"],
    ["-m", "entsso.discover", "--help"],
    ["-m", "entsso.lab", "--help"],
])
def test_command_lines_still_answer(command):
    done = subprocess.run([sys.executable, *command], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "usage" in (done.stdout + done.stderr).lower()


def test_the_report_groups_by_the_same_logger_names():
    import entsso.change.operator
    import entsso.change.steps

    assert entsso.change.steps.log.name == "entsso.phases"
    assert "entsso.operator" in Path(entsso.change.operator.__file__).read_text()
