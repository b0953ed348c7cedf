"""Windows Installer's exit codes end to end, on a lab started by hand as an estate that outlives a run:
1618 (another installation) changes nothing and the MSS keeps running; 1603 rolls back. Each run stops at
"install the SSO update package" naming the cause and what to do, nothing after it changes, and once the
cause is gone the change's own command (`pytest --inventory=F --apply --change-ticket X`) completes it."""
from __future__ import annotations

import time
from typing import Any

from entsso.lab.launcher import LabProcess
from selftest.e2e.suite import SuiteRun, run_suite

OLD, NEW = "10.0.1000.0", "10.0.2000.0"


def _host(lab: LabProcess, name: str) -> dict[str, Any]:
    return lab.state()["estate"]["hosts"][name]


def _events(lab: LabProcess, host: str) -> list[str]:
    return [e["what"] for e in lab.state()["estate"]["events"] if e["host"] == host]


def _steps_after(run: SuiteRun, phase: str, step: str, host: str) -> list[tuple[str, str | None]]:
    """The intents journalled after `step` on `host` (what the run did once the installer answered)."""
    records = run.journal()
    at = max(i for i, r in enumerate(records)
             if r["kind"] == "result" and r.get("phase") == phase and r.get("step") == step and r.get("host") == host)
    return [(r["step"], r.get("host")) for r in records[at + 1:] if r["kind"] == "intent"]


def _change_command(lab: LabProcess, ticket: str) -> tuple[str, ...]:
    return (f"--inventory={lab.inventory_path}", "--apply", "--change-ticket", ticket)


def _received(lab: LabProcess, key: str) -> int:
    return lab.state()["winrm"]["received"].get(key, 0)


def test_1618_on_the_primary_stops_at_the_install_changes_nothing_and_the_change_command_completes(
        start_lab, tmp_path):
    lab = start_lab("package")
    lab.post("/faults", {"kind": "installer_exit", "host": "NODE1", "exit_code": 1618})
    first = run_suite(tmp_path / "reports", *_change_command(lab, "CHG-1618-1"), env=dict(lab.env))
    assert first.returncode == 1, first.output[-3000:]
    assert first.summary["verdict"] == "stopped"
    reason = first.summary["verdict_reason"]
    assert "NODE1: the update package returned exit code 1618 (another installation is already in progress" in reason
    assert "changed nothing (NODE1 still reports Enterprise SSO 10.0.1000.0" in reason
    assert "Get-Process msiexec on NODE1" in reason  # what the operator does
    assert f"--inventory={lab.inventory_path} --apply --change-ticket CHG-1618-1" in first.output
    # the stop is at the install: no step after it, ENTSSO left as it was (the MSS still running), no NODE2
    assert _steps_after(first, "upgrade", "install the SSO update package", "NODE1") == []
    node1 = _host(lab, "NODE1")
    assert node1["sso"]["version"] == OLD
    assert node1["services"]["ENTSSO"]["status"] == "Running" and node1["sso"]["is_mss_now"]
    assert not any("update package stops ENTSSO" in e for e in _events(lab, "NODE1"))
    assert _received(lab, "NODE2 Install-SsoUpdate") == 0

    lab.post("/faults/clear", {})  # the other installation finished
    second = run_suite(tmp_path / "reports", *_change_command(lab, "CHG-1618-1"), env=dict(lab.env))
    assert second.returncode == 0, second.output[-3000:]
    assert second.summary["verdict"] == "completed"
    assert _received(lab, "NODE1 Install-SsoUpdate") == 2
    assert {n: _host(lab, n)["sso"]["version"] for n in ("NODE1", "NODE2")} == {"NODE1": NEW, "NODE2": NEW}


def test_1603_on_the_second_node_rolls_back_stops_naming_the_log_and_the_change_command_completes(
        start_lab, tmp_path):
    lab = start_lab("package")
    lab.post("/faults", {"kind": "installer_exit", "host": "NODE2", "exit_code": 1603})
    first = run_suite(tmp_path / "reports", *_change_command(lab, "CHG-1603-1"), env=dict(lab.env))
    assert first.returncode == 1, first.output[-3000:]
    assert first.summary["verdict"] == "stopped"
    reason = first.summary["verdict_reason"]
    assert "NODE2: the update package returned exit code 1603 (fatal error during installation" in reason
    assert "rolled the installation back (NODE2 still reports Enterprise SSO 10.0.1000.0" in reason
    assert r"Read the installer log C:\Windows\Temp\entsso-update.log on NODE2" in reason
    assert _steps_after(first, "upgrade", "install the SSO update package", "NODE2") == []
    # the rollback: version kept, ENTSSO started again as it ran before the package stopped it
    events = _events(lab, "NODE2")
    assert any(e.startswith("update package rolled back (exit code 1603)") for e in events), events[-10:]
    deadline = time.monotonic() + 30
    while _host(lab, "NODE2")["services"]["ENTSSO"]["status"] != "Running" and time.monotonic() < deadline:
        time.sleep(0.2)
    node2 = _host(lab, "NODE2")
    assert node2["services"]["ENTSSO"]["status"] == "Running" and node2["sso"]["version"] == OLD
    assert _host(lab, "NODE1")["sso"]["version"] == NEW  # the primary, done before NODE2, stays done

    lab.post("/faults/clear", {})  # the operator fixed the cause the log named
    second = run_suite(tmp_path / "reports", *_change_command(lab, "CHG-1603-1"), env=dict(lab.env))
    assert second.returncode == 0, second.output[-3000:]
    assert second.summary["verdict"] == "completed"
    assert _host(lab, "NODE2")["sso"]["version"] == NEW
