"""Bad input — options, credentials, an unreachable SQL Server — gets one clear message and changes
nothing. (Inventory mistakes: selftest/unit/test_inventory.py.)"""
from __future__ import annotations

import os

import pytest

from entsso.remote.winrm import CredentialsRefused, WindowsHost, WinRMSettings
from selftest.e2e.suite import run_suite


@pytest.fixture
def lab(start_lab):
    return start_lab("fast")


def test_resume_of_an_unknown_run_is_refused(tmp_path):
    run = run_suite(tmp_path, "--lab", "--resume", "20990101T000000Z-NOPE")
    assert run.returncode == 4
    assert "--resume 20990101T000000Z-NOPE: no run of that id" in run.output


def test_keep_silenced_without_apply_is_refused(tmp_path):
    run = run_suite(tmp_path, "--lab", "--keep-silenced")
    assert run.returncode == 4 and "--keep-silenced only means something with --apply" in run.output


def test_unknown_lab_scenario_is_refused_naming_the_known_ones(tmp_path):
    run = run_suite(tmp_path, "--lab=no-such-scenario")
    assert run.returncode == 4
    assert "no lab scenario 'no-such-scenario'" in run.output and "default" in run.output


def test_wrong_winrm_password_is_named_and_nothing_changes(lab, tmp_path):
    env = {**lab.env, "ENTSSO_WINRM_PASSWORD": "wrong-" + lab.env["ENTSSO_WINRM_PASSWORD"]}
    run = run_suite(tmp_path / "r", f"--inventory={lab.inventory_path}", "--apply", "--change-ticket", "CHG-PW",
                    env=env)
    assert run.returncode == 1
    message = run.message("test_host_answers_over_winrm[NODE1]")
    assert "refused" in message and "401" in message and "password environment variable" in message
    assert "refusing to silence BizTalk" in run.output
    assert env["ENTSSO_WINRM_PASSWORD"] not in run.output
    assert lab.state()["changes"] == 0


def test_missing_password_variable_is_named_before_anything_connects(lab, tmp_path):
    env = {**lab.env, "ENTSSO_SQL_PASSWORD": None}
    before = lab.state()["winrm"]["stats"]["totals"]["requests"]
    run = run_suite(tmp_path / "r", f"--inventory={lab.inventory_path}", "tests_pre", env=env)
    assert run.returncode == 4
    assert "ENTSSO_SQL_PASSWORD" in run.output and "sql.password_env" in run.output
    assert lab.state()["winrm"]["stats"]["totals"]["requests"] == before  # nothing connected


def test_unreachable_sql_server_fails_the_gate_and_refuses_apply(lab, tmp_path):
    lab.post("/faults", {"kind": "sql_unavailable"})
    gate = run_suite(tmp_path / "g", f"--inventory={lab.inventory_path}", "tests_pre", "-m", "readiness",
                     env=dict(lab.env))
    assert gate.returncode == 1
    assert "could not be reached" in gate.message("test_sql_server_answers")
    apply = run_suite(tmp_path / "a", f"--inventory={lab.inventory_path}", "--apply", "--change-ticket", "CHG-SQL",
                      env=dict(lab.env))
    assert apply.returncode == 4
    assert "cannot take the estate lock" in apply.output and "could not be reached" in apply.output
    assert lab.state()["changes"] == 0


def test_kerberos_failure_says_to_check_the_ticket(lab):
    import yaml

    inv = yaml.safe_load(lab.inventory_path.read_text())
    node = inv["cluster"]["nodes"][0]
    host = WindowsHost(node["name"], node["address"], "svc-entsso@LAB.EXAMPLE", None,
                       WinRMSettings(transport="kerberos", https=True, port=inv["winrm"]["port"],
                                     ca_trust_path=inv["winrm"]["ca_trust_path"], connect_timeout=3,
                                     read_timeout=10, operation_timeout=5))
    with pytest.raises(CredentialsRefused) as err:
        host.invoke("Get-HostFacts", {"cluster": None, "services": [], "biztalk": False, "package": None,
                                      "backup_folder": None, "secret_backup_file": None})
    assert "klist" in str(err.value) and "kinit" in str(err.value)


def test_help_works_in_the_project_without_an_estate_and_creates_nothing(tmp_path):
    reports = tmp_path / "reports"
    run = run_suite(reports, "--help")
    assert run.returncode == 0, run.output[-2000:]
    assert "--change-ticket" in run.output and "--backout" in run.output and "--window-ends" in run.output
    assert list(reports.iterdir()) == []


def test_collect_only_and_a_refused_inventory_leave_no_run_folder(tmp_path):
    reports = tmp_path / "reports"
    listed = run_suite(reports, "--lab", "fast", "--collect-only")
    assert listed.returncode == 0 and "tests collected" in listed.output, listed.output[-2000:]
    refused = run_suite(reports, "--inventory=inventory/example.yml", env={"ENTSSO_WINRM_PASSWORD": None})
    assert refused.returncode == 4 and "ENTSSO_WINRM_PASSWORD" in refused.output
    assert list(reports.iterdir()) == []


def test_lab_scenario_with_an_unknown_key_is_a_usage_error_naming_the_key(tmp_path):
    scenario = tmp_path / "bad.yml"
    scenario.write_text("extends: fast\nupgrade:\n  restart_delay: 30\n")
    run = run_suite(tmp_path / "r", f"--lab={scenario}", "tests_pre")
    assert run.returncode == 4
    assert "upgrade.restart_delay: unknown key 'restart_delay'" in run.output
    assert "restart_delay_sec" in run.output  # the keys the lab knows there
