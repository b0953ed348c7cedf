"""Reboots end to end: the suite waits for a restarted node to go down and come back (never returning at
the first answer of a node still counting down), and 1641 is the installer restarting the node itself."""
from __future__ import annotations

from pathlib import Path

from selftest.e2e.suite import SuiteRun, run_suite

# speed 200: 400 estate seconds of restart gap are 2 real seconds, longer than a Get-HostFacts call, so a
# wait that returned at the first answer would start ENTSSO on a node that then goes down
SLOW_RESTART = "upgrade:\n  restart_delay_sec: 400\n"


def _scenario(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / f"{name}.yml"
    path.write_text(f"name: {name}\n{text}")
    return path


def _events(run: SuiteRun, host: str) -> list[str]:
    return [e["what"] for e in run.lab_state["estate"]["events"] if e["host"] == host]


def test_allow_reboot_with_3010_waits_for_the_node_to_go_and_come_back_and_completes(tmp_path):
    scenario = _scenario(tmp_path, "reboot-slow", "extends: package-reboot\n" + SLOW_RESTART)
    run = run_suite(tmp_path / "r", f"--lab={scenario}", "--apply", "--change-ticket", "CHG-REBOOT-1",
                    "--allow-reboot")
    assert run.returncode == 0, run.output[-4000:]
    assert run.summary["verdict"] == "completed"
    assert run.lab_state["winrm"]["received"].get("NODE2 Restart-Node") == 1
    events = _events(run, "NODE2")
    asked, down = events.index("Restart-Computer"), events.index("restarting: down")
    up = next(i for i, e in enumerate(events) if e.startswith("restarted: up"))
    # the suite started ENTSSO only once NODE2 had gone down and come back, never into the reboot
    start = next(i for i, e in enumerate(events) if i > asked and e == "ENTSSO start requested (SCM)")
    assert asked < down < up < start, events[asked:]
    waited = [r for r in run.journal() if r["kind"] == "result" and r.get("step") == "wait for the node to come back"]
    assert len(waited) == 1 and waited[0]["host"] == "NODE2"
    evidence = waited[0].get("evidence") or {}
    assert evidence["booted"] > evidence["booted_before"], evidence
    assert run.lab_state["estate"]["hosts"]["NODE2"]["sso"]["version"] == "10.0.2000.0"
    assert run.lab_state["estate"]["cluster"]["restart_policy"]["actions"] == []  # the run never stopped the cluster's own ENTSSO behind its back (its restart policy is active)


INSTALLER_RESTARTS_PRIMARY = ("extends: package\nfaults:\n"
                              "  - {kind: installer_exit, host: NODE1, exit_code: 1641}\n")


def test_1641_on_the_primary_without_allow_reboot_stops_saying_the_installer_restarts_it(tmp_path):
    scenario = _scenario(tmp_path, "installer-restarts", INSTALLER_RESTARTS_PRIMARY)
    run = run_suite(tmp_path / "r", f"--lab={scenario}", "--apply", "--change-ticket", "CHG-1641-1")
    assert run.returncode == 1
    assert run.summary["verdict"] == "stopped"
    assert "the installer is restarting NODE1 itself (exit code 1641" in run.output
    assert "Reboot NODE1 yourself" not in run.output
    received = run.lab_state["winrm"]["received"]
    assert not any(k.endswith(" Restart-Node") for k in received), received
    assert "NODE2 Install-SsoUpdate" not in received  # nothing after the stop


def test_1641_on_the_primary_with_allow_reboot_waits_for_it_and_completes(tmp_path):
    scenario = _scenario(tmp_path, "installer-restarts-slow", INSTALLER_RESTARTS_PRIMARY + SLOW_RESTART)
    run = run_suite(tmp_path / "r", f"--lab={scenario}", "--apply", "--change-ticket", "CHG-1641-2",
                    "--allow-reboot")
    assert run.returncode == 0, run.output[-4000:]
    assert run.summary["verdict"] == "completed"
    assert not any(k.endswith(" Restart-Node") for k in run.lab_state["winrm"]["received"])
    events = _events(run, "NODE1")
    down = events.index("restarting: down")
    up = next(i for i, e in enumerate(events) if e.startswith("restarted: up"))
    start = next(i for i, e in enumerate(events) if "update package finished" in e)
    assert start < down < up < events.index("ENTSSO start requested (SCM)", up), events[start:]
    assert run.lab_state["estate"]["hosts"]["NODE1"]["sso"]["version"] == "10.0.2000.0"
