"""Issue 25 item 1: a verdict for every outcome that cannot be misread. One estate (a lab started by hand)
goes through each outcome a change can have — read-only, stopped, refused, backed-out, interrupted,
completed — and each run says the same word in the report's banner (and its colour, as Chromium renders
it), the console's last `entsso: …` line, summary.json and junit.xml. A backout is never `completed` and
never green: the upgrade was not done."""
from __future__ import annotations

import re
import signal
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from entsso.lab.launcher import LabProcess
from entsso.report.html import BANNER_COLOURS
from selftest.e2e.suite import SuiteRun, run_suite, spawn_suite
from selftest.e2e.test_report import _chromium, keep_artifact, png_pixel

VERDICT_WORDS = ("read-only", "stopped", "refused", "backed-out", "interrupted", "completed")


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, SuiteRun]:
    work = tmp_path_factory.mktemp("verdicts")
    reports = work / "reports"
    out: dict[str, SuiteRun] = {}
    lab = LabProcess("package", work / "lab-1" / "lab-inventory.yml").start()
    try:  # one estate: a gate, a stop in phase 5 (both nodes upgraded), a refusal meanwhile, the backout
        env, inv = dict(lab.env), f"--inventory={lab.inventory_path}"
        out["read-only"] = run_suite(reports, "tests_pre", inv, "-m", "readiness", env=env)
        lab.post("/faults", {"kind": "fail", "host": "NODE2", "operation": "Restore-MasterSecret", "call": 1,
                             "message": "injected fault"})
        out["stopped"] = run_suite(reports, inv, "--apply", "--change-ticket", "CHG-V-1", env=env)
        lab.post("/faults/clear", {})
        # another change while CHG-V-1 is unfinished: refused, nothing changed
        out["refused"] = run_suite(reports, inv, "--apply", "--change-ticket", "CHG-V-2", env=env)
        out["backed-out"] = run_suite(reports, inv, "--backout", "--change-ticket", "CHG-V-1", env=env)
    finally:
        lab.stop()
    lab = LabProcess("package", work / "lab-2" / "lab-inventory.yml").start()
    try:  # another: Ctrl-C in phase 3, then the same command to completion
        env, inv = dict(lab.env), f"--inventory={lab.inventory_path}"
        running = spawn_suite(reports, inv, "--apply", "--change-ticket", "CHG-V-3", env=env)
        running.wait_for(lambda rs: any(r["kind"] == "phase_started" and r["phase"] == "uncluster" for r in rs))
        running.proc.send_signal(signal.SIGINT)
        out["interrupted"] = running.wait(120)
        out["completed"] = run_suite(reports, inv, "--apply", "--change-ticket", "CHG-V-3", env=env)
    finally:
        lab.stop()
    return out


def junit_verdict(run: SuiteRun) -> dict[str, str]:
    assert run.dir is not None
    root = ET.parse(run.dir / "junit.xml").getroot()
    return {p.get("name", ""): p.get("value", "") for p in root.iter("property")}


def last_verdict_line(output: str) -> str:
    lines = [line for line in output.splitlines() if re.fullmatch(r"=+ entsso: [A-Z-]+ =+", line.strip())]
    return lines[-1].strip("= ") if lines else ""


@pytest.mark.parametrize("word", VERDICT_WORDS)
def test_the_same_word_in_summary_console_junit_and_report(runs, word):
    run = runs[word]
    assert run.summary["verdict"] == word, (run.summary["verdict_reason"], run.output[-3000:])
    assert last_verdict_line(run.output) == f"entsso: {word.upper()}", run.output[-3000:]
    props = junit_verdict(run)
    assert props.get("entsso.verdict") == word and props.get("entsso.verdict_reason") == run.summary["verdict_reason"]
    assert run.dir is not None
    report = (run.dir / "report.html").read_text()
    assert f'data-verdict="{word}"' in report
    assert run.returncode == (0 if word in ("read-only", "completed", "backed-out") else 1) or (
        word == "interrupted" and run.returncode != 0), run.returncode


def test_a_backout_says_the_upgrade_is_not_done_and_which_nodes_stay_upgraded(runs):
    back = runs["backed-out"]
    reason = back.summary["verdict_reason"]
    assert reason.startswith("The change was backed out: the upgrade is not done; the estate is back in service")
    # the stop was in phase 5: both nodes had been upgraded, and a backout does not downgrade SSO
    assert re.search(r"NODE1 \([\d.]+\), NODE2 \([\d.]+\) stay upgraded", reason), reason
    assert back.summary["change"]["status"] == "backed-out"
    # junit.xml: not a passed upgrade; the upgrade's own case says it was not done
    assert back.outcomes.get("upgrade") == "skipped", back.outcomes
    assert "Nothing: the change is complete" not in (back.dir / "report.html").read_text()  # type: ignore[operator]
    assert "entsso: COMPLETED" not in back.output


def test_no_two_verdicts_share_a_colour_and_only_completed_is_green():
    colours = [BANNER_COLOURS[w] for w in VERDICT_WORDS]
    assert len(set(colours)) == len(colours)
    assert BANNER_COLOURS["backed-out"] != BANNER_COLOURS["completed"]


@pytest.mark.parametrize("word", VERDICT_WORDS)
def test_chromium_renders_each_banner_with_its_word_and_colour(runs, word, tmp_path):
    run = runs[word]
    assert run.dir is not None
    report = (run.dir / "report.html").as_uri()
    dom = _chromium(str(tmp_path / "x"), "--virtual-time-budget=3000", "--dump-dom", report)
    assert dom.returncode == 0, dom.stderr[-2000:]
    banner = re.search(r'<div class="entsso-verdict" data-verdict="([a-z -]+)" style="background:(#[0-9a-f]{6})[^"]*">'
                       r"<b>([^<]+)</b>", dom.stdout)
    assert banner, "no verdict banner in the rendered page"
    assert banner.groups() == (word, BANNER_COLOURS[word], word.upper())
    assert re.search(rf'<h1 id="title">{re.escape(word.upper())} — ', dom.stdout)
    shot = tmp_path / "shot.png"
    snap = _chromium(str(tmp_path / "y"), "--window-size=1400,900", "--virtual-time-budget=3000",
                     f"--screenshot={shot}", report)
    assert snap.returncode == 0, snap.stderr[-2000:]
    keep_artifact(shot, f"verdict-{word}.png")
    want = tuple(int(BANNER_COLOURS[word][i:i + 2], 16) for i in (1, 3, 5))
    assert png_pixel(Path(shot), 1200, 30) == want  # the title bar, as a person sees it
