"""The change, not the run, is the unit (issue 13): one baseline per change ticket, kept on the estate;
an interrupted run is never a success; the command the console prints continues the change as typed;
a second ticket is refused while a change is unfinished. Each test runs against a lab started by hand,
as a real estate outlives a run."""
from __future__ import annotations

import json
import re
import shlex
import signal
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from entsso.lab.launcher import LabProcess
from selftest.e2e.suite import ROOT, SuiteRun, run_suite, spawn_suite


def biztalk_state(lab: LabProcess) -> dict[str, Any]:
    """What the business runs: every BizTalk server's host instances and services, every SQL Agent job."""
    state = lab.state()
    out: dict[str, Any] = {}
    for name, h in state["estate"]["hosts"].items():
        if h["role"] != "biztalk":
            continue
        out[name] = {"host_instances": {i["host_name"]: i["service_state"] for i in h["host_instances"]},
                     "services": {s: v["status"] for s, v in h["services"].items()}}
    out["jobs"] = {j: bool(v["enabled"]) for j, v in state["sql"]["jobs"].items()}
    return out


def assert_backed_out_to_service(back: Any, lab: LabProcess, before: dict[str, Any]) -> dict[str, Any]:
    """A backout that put the estate back in service: its verdict, BizTalk as before the change, SSODB's secret
    server the cluster name, the ENTSSO resource Online, every node Up. The lab's state, for more."""
    assert back.returncode == 0, back.output[-3000:]
    assert back.summary["verdict"] == "backed-out"
    state = lab.state()
    assert biztalk_state(lab) == before
    assert state["sql"]["secret_server"] == "SSOCLUSTER"
    assert state["estate"]["cluster"]["resource"]["state"] == "Online"
    assert all(n["state"] == "Up" for n in state["estate"]["cluster"]["nodes"])
    return state


def printed_command(run: SuiteRun) -> list[str]:
    """The continue command the console printed last, as the operator would type it."""
    lines = re.findall(r"^Continue this change with: (pytest .*)$", run.output, re.M)
    assert lines, run.output[-3000:]
    words = shlex.split(lines[-1])
    assert words[0] == "pytest"
    return words[1:]


def junit_failures(run: SuiteRun) -> int:
    suite = ET.parse(run.dir / "junit.xml").getroot()
    suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
    return int(suite.get("failures", 0)) + int(suite.get("errors", 0))


def test_readme_order_gate_apply_then_full_run_puts_biztalk_back_as_before(start_lab, tmp_path):
    lab = start_lab("package")
    before = biztalk_state(lab)
    assert any(s == "Running" for h in ("BTS1", "BTS2") for s in before[h]["host_instances"].values())
    env, inv = dict(lab.env), f"--inventory={lab.inventory_path}"
    prepared = run_suite(tmp_path / "reports", "tests_pre", inv, "--apply", "--change-ticket", "CHG-README-1", env=env)
    assert prepared.returncode == 0, prepared.output[-3000:]
    assert prepared.summary["verdict"] == "stopped"  # BizTalk is silenced: never a green report
    assert "Phases 1–2 done as asked" in prepared.summary["verdict_reason"]
    assert 'data-verdict="stopped"' in (prepared.dir / "report.html").read_text()
    silenced = biztalk_state(lab)
    assert silenced["BTS1"]["host_instances"]["ReceiveHost"] == "Stopped" and not any(silenced["jobs"].values())

    full = run_suite(tmp_path / "reports", inv, "--apply", "--change-ticket", "CHG-README-1", env=env)
    assert full.returncode == 0, full.output[-3000:]
    assert full.summary["verdict"] == "completed"
    assert biztalk_state(lab) == before  # every host instance, service and job exactly as before the change
    # one baseline for the change: the one the first acting run recorded, not the silenced estate
    assert json.loads((full.dir / "baseline.json").read_text()) == json.loads((prepared.dir / "baseline.json").read_text())
    assert full.summary["change"]["runs"] == [prepared.dir.name, full.dir.name]
    assert full.summary["change"]["status"] == "completed"
    assert 'data-verdict="completed"' in (full.dir / "report.html").read_text()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_run_interrupted_in_phase_4_is_interrupted_and_continues_to_completion(start_lab, tmp_path, sig):
    lab = start_lab("fast")  # manual upgrades: the lab's operator takes a while on each node
    before = biztalk_state(lab)
    env, inv = dict(lab.env), f"--inventory={lab.inventory_path}"
    running = spawn_suite(tmp_path / "reports", inv, "--apply", "--change-ticket", f"CHG-INT-{sig.name}", env=env)
    running.wait_for(lambda rs: any(r["kind"] == "phase_started" and r["phase"] == "upgrade" for r in rs))
    running.proc.send_signal(sig)
    first = running.wait(120)
    assert first.returncode != 0, first.output[-3000:]
    assert first.summary["verdict"] == "interrupted"
    interrupted = [r for r in first.journal() if r["kind"] == "interrupted"]
    assert interrupted and interrupted[0]["signal"] == sig.name and interrupted[0]["phase"] == "upgrade"
    assert junit_failures(first) >= 1  # the unfinished phase counts as a failure
    report = (first.dir / "report.html").read_text()
    assert 'data-verdict="interrupted"' in report and "INTERRUPTED" in report
    assert "Nothing: the change is complete" not in report
    # the business's outage, named: BizTalk is still silenced
    down = first.summary["estate_now"]["down"]
    assert any(d["what"] == "host instance ReceiveHost on BTS1" for d in down)
    assert "Where the estate is now" in report

    second = spawn_suite(tmp_path / "reports", env=env, command=printed_command(first)).wait(300)
    assert second.returncode == 0, second.output[-3000:]
    assert second.summary["verdict"] == "completed"
    assert biztalk_state(lab) == before


def test_stop_then_stop_again_then_the_printed_command_completes_with_the_original_baseline(start_lab, tmp_path):
    lab = start_lab("package")
    before = biztalk_state(lab)
    env, inv = dict(lab.env), f"--inventory={lab.inventory_path}"
    lab.post("/faults", {"kind": "installer_exit", "host": "NODE2", "exit_code": 1603})
    first = run_suite(tmp_path / "reports", inv, "--apply", "--change-ticket", "CHG-TWICE-STOP", env=env)
    assert first.returncode == 1 and first.summary["verdict"] == "stopped"
    second = spawn_suite(tmp_path / "reports", env=env, command=printed_command(first)).wait(300)
    assert second.returncode == 1 and second.summary["verdict"] == "stopped", second.output[-3000:]
    assert "exit code 1603" in second.summary["verdict_reason"]
    lab.post("/faults/clear", {})  # the operator fixed NODE2
    third = spawn_suite(tmp_path / "reports", env=env, command=printed_command(second)).wait(300)
    assert third.returncode == 0, third.output[-3000:]
    assert third.summary["verdict"] == "completed"
    assert json.loads((third.dir / "baseline.json").read_text()) == json.loads((first.dir / "baseline.json").read_text())
    assert biztalk_state(lab) == before
    assert third.summary["change"]["runs"] == [first.dir.name, second.dir.name, third.dir.name]
    # one report covers the whole change: the last run's report lists its three runs and draws them all
    report = (third.dir / "report.html").read_text()
    runs_table = re.search(r'<table class="entsso-runs".*?</table>', report, re.S).group(0)
    for run in (first, second, third):
        assert run.dir.name in runs_table
    assert runs_table.count("continued it (same ticket)") == 2 and "started the change" in runs_table
    assert f"../{first.dir.name}/report.html" in runs_table
    chart = re.search(r'<svg class="entsso-gantt".*?</svg>', report, re.S).group(0)
    assert 'data-runs="3"' in chart
    assert re.findall(r'class="entsso-gantt-run" data-run="([^"]+)"', chart) == [first.dir.name, second.dir.name,
                                                                                 third.dir.name]
    # the runs that stopped left the installer's failure on NODE2 drawn red, the last one its success
    failed = re.findall(r'data-phase="upgrade" data-host="NODE2" data-outcome="exit code 1603"[^>]* fill="([^"]+)"', chart)
    assert failed == ["#cf222e", "#cf222e"], failed  # red, once in each stopped run


def test_a_second_ticket_is_refused_while_a_change_is_unfinished_and_the_documented_command_continues_it(
        start_lab, tmp_path):
    lab = start_lab("package")
    before = biztalk_state(lab)
    env, inv = dict(lab.env), f"--inventory={lab.inventory_path}"
    lab.post("/faults", {"kind": "installer_exit", "host": "NODE2", "exit_code": 1603})
    first = run_suite(tmp_path / "reports", inv, "--apply", "--change-ticket", "CHG-FIRST-1", env=env)
    assert first.returncode == 1
    lab.post("/faults/clear", {})
    changes = lab.state()["changes"]

    other = run_suite(tmp_path / "reports", inv, "--apply", "--change-ticket", "CHG-OTHER-2", env=env)
    assert other.returncode != 0
    assert other.summary["verdict"] == "refused"
    assert "change CHG-FIRST-1" in other.output and "next: phase 4 (upgrade)" in other.output
    assert f"--inventory={lab.inventory_path} --apply --change-ticket CHG-FIRST-1" in other.output
    assert other.outcomes["test_no_other_change_unfinished_on_the_estate"] == "failed"
    assert lab.state()["changes"] == changes  # nothing changed for the second ticket

    # a read-only gate names the unfinished change as well
    gate = run_suite(tmp_path / "reports", "tests_pre", inv, "-m", "readiness", env=env)
    assert gate.outcomes["test_no_other_change_unfinished_on_the_estate"] == "failed"
    assert "CHG-FIRST-1" in gate.message("test_no_other_change_unfinished_on_the_estate")
    assert gate.summary["verdict"] == "read-only"

    # docs/recovery.md's command, typed as written there
    doc = (ROOT / "docs" / "recovery.md").read_text()
    form = re.search(r"`(pytest --inventory=<file> --apply --change-ticket <ticket>)`", doc)
    assert form, "docs/recovery.md must show the continue command"
    typed = form.group(1).replace("<file>", str(lab.inventory_path)).replace("<ticket>", "CHG-FIRST-1")
    done = spawn_suite(tmp_path / "reports", env=env, command=shlex.split(typed)[1:]).wait(300)
    assert done.returncode == 0, done.output[-3000:]
    assert done.summary["verdict"] == "completed"
    assert biztalk_state(lab) == before

    # and now the estate takes the next change's gate (which refuses only for what the estate is: upgraded)
    again = run_suite(tmp_path / "reports", inv, "--apply", "--change-ticket", "CHG-OTHER-2", env=env)
    assert again.outcomes["test_no_other_change_unfinished_on_the_estate"] == "passed"


def test_a_stop_is_reported_once_and_the_console_counts_phases(start_lab, tmp_path):
    lab = start_lab("package")
    lab.post("/faults", {"kind": "installer_exit", "host": "NODE2", "exit_code": 1603})
    run = run_suite(tmp_path / "reports", f"--inventory={lab.inventory_path}", "--apply", "--change-ticket",
                    "CHG-ONCE-1", env=dict(lab.env))
    assert run.returncode == 1
    outcomes = run.outcomes
    assert sum(1 for s in outcomes.values() if s == "error") == 1  # one cause, one message
    skipped = [n for n, s in outcomes.items() if s == "skipped"]
    assert len(skipped) >= 10
    assert run.output.count("exit code 1603 (fatal error during installation") <= 3  # error, verdict, summary
    assert "[phase 4/7] Upgrade each node" in run.output and "[phase 5/7]" not in run.output
    assert "NODE1      install the SSO update package: done" in run.output
