"""Issue 25 item 2: every interruption writes its evidence. A lost session (SIGHUP, the terminal gone so
that writing to it fails), SIGTERM and a nervous double Ctrl-C mid-phase each leave report.html,
summary.json and junit.xml saying `interrupted`, with the command that continues the change; the console
shows no traceback and no pytest KeyboardInterrupt block, and the verdict block is the last thing on it."""
from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from selftest.e2e.suite import ROOT, SuiteRun, _child_env, run_suite, spawn_suite

MID_PHASE = ("uncluster", "upgrade")  # the package scenario's phases 3-4: BizTalk silenced, the MSS unclustered


def mid_phase(records: list[dict]) -> bool:
    return any(r["kind"] == "phase_started" and r["phase"] in MID_PHASE for r in records)


def assert_interrupted_evidence(run_dir: Path, ticket: str, inventory: str) -> None:
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["verdict"] == "interrupted", summary["verdict_reason"]
    resume = f"pytest --inventory={inventory} --apply --change-ticket {ticket}"
    assert summary["continue"] and resume in summary["continue"], summary["continue"]
    root = ET.parse(run_dir / "junit.xml").getroot()
    props = {p.get("name"): p.get("value") for p in root.iter("property")}
    assert props["entsso.verdict"] == "interrupted"
    assert any(c.get("classname", "").startswith("change") and c.find("failure") is not None
               for c in root.iter("testcase")), "the unfinished phase is a failure in junit.xml"
    report = (run_dir / "report.html").read_text()
    assert 'data-verdict="interrupted"' in report and "IN PROGRESS" not in report
    assert resume in report


def assert_verdict_last(output: str) -> None:
    assert "Traceback" not in output, output
    assert "KeyboardInterrupt" not in output, output
    lines = [line for line in output.splitlines() if line.strip()]
    seps = [i for i, line in enumerate(lines) if re.fullmatch(r"=+ entsso: [A-Z-]+ =+", line.strip())]
    assert seps, output[-3000:]
    assert lines[seps[-1]].strip("= ") == "entsso: INTERRUPTED"
    after = lines[seps[-1] + 1:]
    # nothing of pytest's after the verdict: no summary line, no report path, no !!! block
    assert not [line for line in after if re.search(r" in [\d.]+s|Generated html report|^!+|short test summary|^=+",
                                                     line)], after
    assert after and after[-1].startswith("Or back it out"), after


def test_a_double_ctrl_c_mid_phase_leaves_its_evidence_and_no_traceback(start_lab, tmp_path):
    lab = start_lab("package")
    env, inv, ticket = dict(lab.env), f"--inventory={lab.inventory_path}", "CHG-INT-TWICE"
    running = spawn_suite(tmp_path / "reports", inv, "--apply", "--change-ticket", ticket, env=env)
    running.wait_for(mid_phase)
    running.proc.send_signal(signal.SIGINT)
    time.sleep(0.3)  # the reflex: a second Ctrl-C while the run writes its evidence
    if running.proc.poll() is None:
        running.proc.send_signal(signal.SIGINT)
    run: SuiteRun = running.wait(120)
    # non-zero, and not killed by a signal (2 when pytest saw the interruption, 1 when a step turned it into a stop)
    assert run.returncode in (1, 2), (run.returncode, run.output[-3000:])
    assert run.dir is not None
    assert_interrupted_evidence(run.dir, ticket, str(lab.inventory_path))
    assert_verdict_last(run.output)


def test_sigterm_mid_phase_leaves_its_evidence_and_the_verdict_last(start_lab, tmp_path):
    lab = start_lab("package")
    env, inv, ticket = dict(lab.env), f"--inventory={lab.inventory_path}", "CHG-INT-TERM"
    running = spawn_suite(tmp_path / "reports", inv, "--apply", "--change-ticket", ticket, env=env)
    running.wait_for(mid_phase)
    running.proc.send_signal(signal.SIGTERM)
    run = running.wait(120)
    assert run.returncode in (1, 2), (run.returncode, run.output[-3000:])
    assert run.dir is not None
    assert_interrupted_evidence(run.dir, ticket, str(lab.inventory_path))
    assert_verdict_last(run.output)


@pytest.mark.skipif(sys.platform == "win32", reason="a pseudo-terminal")
def test_a_lost_session_sighup_mid_phase_still_writes_report_summary_and_junit(start_lab, tmp_path):
    """The run's terminal is a pseudo-terminal whose other end is closed (the SSH session dropped): writing
    to it fails with EIO from then on; the run gets SIGHUP as a hang-up sends it."""
    lab = start_lab("package")
    ticket, reports = "CHG-INT-HUP", tmp_path / "reports"
    reports.mkdir()
    master, slave = os.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q",
                             f"--inventory={lab.inventory_path}", "--apply", "--change-ticket", ticket,
                             "--checklist-done"],  # a terminal: the checklist said done (not asked)
                            cwd=ROOT, env=_child_env(reports, dict(lab.env)), stdin=slave, stdout=slave, stderr=slave)
    os.close(slave)
    seen: list[bytes] = []

    def drain() -> None:
        with contextlib.suppress(OSError):
            while chunk := os.read(master, 65536):
                seen.append(chunk)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    deadline = time.monotonic() + 120
    run_dir: Path | None = None
    while time.monotonic() < deadline:
        dirs = [p for p in reports.iterdir() if p.is_dir()]
        journal = dirs[0] / "journal.jsonl" if dirs else None
        if journal and journal.exists() and '"phase_started"' in journal.read_text() and any(
                f'"phase": "{p}"' in line for line in journal.read_text().splitlines() if "phase_started" in line
                for p in MID_PHASE):
            run_dir = dirs[0]
            break
        assert proc.poll() is None, b"".join(seen).decode(errors="replace")[-3000:]
        time.sleep(0.02)
    assert run_dir is not None, "the change never reached phase 3"
    os.close(master)  # the terminal is gone: the run's next write to it fails
    proc.send_signal(signal.SIGHUP)
    assert proc.wait(120) in (1, 2)
    assert_interrupted_evidence(run_dir, ticket, str(lab.inventory_path))
    journal = [json.loads(line) for line in (run_dir / "journal.jsonl").read_text().splitlines()]
    assert [r["signal"] for r in journal if r["kind"] == "interrupted"] == ["SIGHUP"]


BOOM = '''
def pytest_fixture_setup(fixturedef, request):
    if fixturedef.argname == "upgraded":  # phase 4's fixture, after phase 3 unclustered the MSS
        raise RuntimeError("an exception from a plugin's hook")
'''


def test_an_exception_from_a_hook_mid_change_is_an_interruption_with_its_evidence(start_lab, tmp_path):
    """An exception raised outside the runbook's steps (here a plugin's pytest_fixture_setup, as phase 4
    begins): the change is interrupted there, as by a signal, with report.html, summary.json and junit.xml
    saying `interrupted`, the traceback in the run folder and not on the console, the verdict last; the
    printed command then continues the change to `completed`."""
    lab = start_lab("package")
    (tmp_path / "plugin").mkdir()
    (tmp_path / "plugin" / "boom_plugin.py").write_text(BOOM, encoding="utf-8")
    env, ticket = dict(lab.env), "CHG-INT-EXC"
    run = run_suite(tmp_path / "reports", f"--inventory={lab.inventory_path}", "--apply", "--change-ticket", ticket,
                    "-p", "boom_plugin", env={**env, "PYTHONPATH": str(tmp_path / "plugin")})
    assert run.returncode == 2, (run.returncode, run.output[-3000:])
    assert run.dir is not None
    assert_interrupted_evidence(run.dir, ticket, str(lab.inventory_path))
    assert_verdict_last(run.output)
    assert "an exception from a plugin's hook" in run.summary["verdict_reason"]
    trace = (run.dir / "internal-error.txt").read_text()
    assert "RuntimeError: an exception from a plugin's hook" in trace and "boom_plugin.py" in trace
    journal = run.journal()
    interruptions = [(r["signal"], r["phase"]) for r in journal if r["kind"] == "interrupted"]
    assert interruptions == [("INTERNALERROR", "uncluster")]
    assert not [r for r in journal if r["kind"] == "phase_started" and r["phase"] == "upgrade"]
    typed = re.search(r"with: pytest (.+)$", run.summary["continue"])
    assert typed, run.summary["continue"]
    again = run_suite(tmp_path / "reports", *typed.group(1).split(), env=env)
    assert again.returncode == 0, again.output[-3000:]
    assert again.summary["verdict"] == "completed"
    # the report is the change's (issue 25 item 8): the first run's steps one line each, the checks it verified
    # counted and not rows of raw skips, the secret backup it made, and the change's own start
    report = (again.dir / "report.html").read_text()
    first = run.dir.name
    done = re.findall(r"<li>phase \d: [^<]+ — done in run ([^ ]+) at", report)
    assert done and set(done) == {first}, done
    assert len(done) == len([r for r in journal if r["kind"] == "result" and r["outcome"] in ("ok", "noop")])
    assert re.search(r"<li>\d+ checks not run again: change CHG-INT-EXC is under way: its readiness was verified by "
                     f"run {first}", report)
    assert "Skipped: change CHG-INT-EXC" not in report
    assert "Master secret backup" in report and "SHA-256 of the copy" in report
    started = next(r["ts"] for r in journal if r["kind"] == "run_started")
    assert re.search(rf"<th[^>]*>Started</th><td>{started[:10]} {started[11:19]}[^<]*the change&#x27;s first run",
                     report), re.findall(r"Started</th><td>[^<]*", report)


RAISING_HOOK = '''
def pytest_runtest_logreport(report):
    if report.when == "call" and "test_readiness" in report.nodeid:
        raise RuntimeError("an exception from a reporting hook")
'''


def test_an_exception_that_escapes_pytest_at_the_gate_is_an_interruption_and_changes_nothing(tmp_path):
    """An exception that pytest itself would end with an INTERNALERROR block (a reporting hook raising, at the
    gate): the run is `interrupted` with its evidence, nothing on the estate changed, no traceback on the
    console and the verdict last."""
    (tmp_path / "plugin").mkdir()
    (tmp_path / "plugin" / "raising_plugin.py").write_text(RAISING_HOOK, encoding="utf-8")
    run = run_suite(tmp_path / "reports", "--lab", "--apply", "--change-ticket", "CHG-INT-HOOK", "-p", "raising_plugin",
                    env={"PYTHONPATH": str(tmp_path / "plugin")})
    assert run.returncode == 2, (run.returncode, run.output[-3000:])
    assert "INTERNALERROR" not in run.output and "Traceback" not in run.output, run.output[-3000:]
    assert run.summary["verdict"] == "interrupted", run.summary["verdict_reason"]
    assert "an exception from a reporting hook" in run.summary["verdict_reason"]
    assert run.lab_state["changes"] == 0
    assert "RuntimeError: an exception from a reporting hook" in (run.dir / "internal-error.txt").read_text()
    root = ET.parse(run.dir / "junit.xml").getroot()
    assert {p.get("name"): p.get("value") for p in root.iter("property")}["entsso.verdict"] == "interrupted"
    lines = [line for line in run.output.splitlines() if line.strip()]
    assert [line for line in lines if re.fullmatch(r"=+ entsso: [A-Z-]+ =+", line.strip())][-1].strip("= ") == \
        "entsso: INTERRUPTED"
