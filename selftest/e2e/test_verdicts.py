"""Issue 25 item 1: a verdict for every outcome that cannot be misread. One estate (a lab started by hand)
goes through each outcome a change can have — read-only, stopped, refused, backed-out, interrupted,
completed — and each run says the same word in the report's banner (and its colour, as Chromium renders
it), the console's last `entsso: …` line, summary.json and junit.xml. A backout is never `completed` and
never green: the upgrade was not done."""
from __future__ import annotations

import html
import re
import shlex
import signal
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from entsso.lab.launcher import LabProcess
from entsso.report.html import BANNER_COLOURS
from selftest.e2e.suite import SuiteRun, run_suite, spawn_suite
from selftest.e2e.test_report import _chromium, keep_artifact, png_pixel

VERDICT_WORDS = ("read-only", "stopped", "refused", "backed-out", "interrupted", "completed")  # "continued": stopped


FAULT = {"kind": "fail", "host": "NODE2", "operation": "Restore-MasterSecret", "times": 1, "message": "injected fault"}
TYPED: dict[str, str] = {}  # verdict -> the printed command its run ran, as typed


def printed(run: SuiteRun, prefix: str) -> str:
    """The command printed after `prefix` on the console, as typed (a --lab run's is not one)."""
    line = next(line for line in run.output.splitlines() if line.startswith(prefix))
    command = line[len(prefix):].strip()
    assert command.startswith("pytest --inventory=") and "<" not in command, line
    return command


def run_typed(reports: Path, command: str, env: dict[str, str]) -> SuiteRun:
    return spawn_suite(reports, env=env, command=shlex.split(command)[1:]).wait(300)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, SuiteRun]:
    """Each outcome once; every later run is a command an earlier one printed, typed as printed."""
    work = tmp_path_factory.mktemp("verdicts")
    reports = work / "reports"
    out: dict[str, SuiteRun] = {}
    lab = LabProcess("package", work / "lab-1" / "lab-inventory.yml").start()
    try:  # one estate: a gate, a stop in phase 5 (both nodes upgraded), a refusal meanwhile, the backout
        env, inv = dict(lab.env), f"--inventory={lab.inventory_path}"
        out["read-only"] = run_suite(reports, "tests_pre", inv, "-m", "readiness", env=env)
        lab.post("/faults", FAULT)
        out["stopped"] = run_suite(reports, inv, "--apply", "--change-ticket", "CHG-V-1", env=env)
        # another change while CHG-V-1 is unfinished: refused, nothing changed; it prints CHG-V-1's commands
        out["refused"] = run_suite(reports, inv, "--apply", "--change-ticket", "CHG-V-2", env=env)
        lab.post("/faults", FAULT)  # the cause is still there: the printed continue stops at it again
        TYPED["continued"] = command = re.search(r"continue it with `([^`]+)`", out["refused"].output).group(1)
        out["continued"] = run_typed(reports, command, env)
        TYPED["backed-out"] = command = printed(out["continued"], "Or back it out (the estate in service as "
                                                "before, upgraded nodes stay upgraded): ")
        out["backed-out"] = run_typed(reports, command, env)
    finally:
        lab.stop()
    lab = LabProcess("package", work / "lab-2" / "lab-inventory.yml").start()
    try:  # another: Ctrl-C in phase 3, then the printed command to completion
        env, inv = dict(lab.env), f"--inventory={lab.inventory_path}"
        running = spawn_suite(reports, inv, "--apply", "--change-ticket", "CHG-V-3", env=env)
        running.wait_for(lambda rs: any(r["kind"] == "phase_started" and r["phase"] == "uncluster" for r in rs))
        running.proc.send_signal(signal.SIGINT)
        out["interrupted"] = running.wait(120)
        TYPED["completed"] = command = printed(out["interrupted"], "Continue this change with: ")
        out["completed"] = run_typed(reports, command, env)
    finally:
        lab.stop()
    for name, overrides, said in REFUSALS:  # a change refused before phase 1, then what it printed, as typed
        scenario = work / f"{name}.yml"
        scenario.write_text(f"extends: package\nname: {name}\n{overrides}", encoding="utf-8")
        lab = LabProcess(str(scenario), work / name / "lab-inventory.yml").start()
        try:
            env, inv = dict(lab.env), f"--inventory={lab.inventory_path}"
            out[name] = run_suite(reports, inv, "--apply", "--change-ticket", f"CHG-V-{name}", env=env)
            TYPED[name] = command = printed(out[name], said)
            out[f"{name}, again as printed"] = run_typed(reports, command, env)
            assert lab.state()["changes"] == 0
        finally:
            lab.stop()
    return out


# a refusal before phase 1 (scenario overrides of `package`) and the words before the command it prints
REFUSALS = (("gate-refusal", "upgrade:\n  package:\n    present_on: [NODE1]\n",
             "Nothing was changed. Fix these, then run the gate again: "),
            # the full run's tests include the rehearsal's, so its failure is named among the gate's
            ("rehearsal-refusal", "sql:\n  login_roles: [SQLAgentReaderRole]\n", "Nothing was changed. Fix these, "
             "then run the gate again: "))


COMMAND = re.compile(r"pytest --inventory=[^\s<`]+(?: (?:--[a-z-]+|tests_pre|-m|[A-Za-z0-9-]+))*")


def test_every_printed_command_works_as_typed_or_fits_the_state_it_was_printed_for(runs):
    """Issue 25 item 5: every command a run prints (console and report) was run as typed above and did what
    it said, or is the run's own command (a refusal's "the same command again"), or backs out a change
    whose record was open when it was printed."""
    ran = set(TYPED.values())
    assert runs["continued"].summary["verdict"] == "stopped"  # continued CHG-V-1, stopped at the same cause
    assert runs["continued"].summary["change"]["runs"][0] == runs["stopped"].dir.name  # type: ignore[union-attr]
    checked = []
    for word, run in runs.items():
        assert run.dir is not None
        text = run.output + "\n" + html.unescape((run.dir / "report.html").read_text())
        own = _own(run)
        for command in {m.group(0) for m in COMMAND.finditer(text)}:
            checked.append(command)
            if command in ran or command == own:
                continue
            ticket = command.split("--change-ticket ")[-1]
            assert "--backout" in command and run.summary["change"] and run.summary["change"]["status"] == "open" \
                and ticket == run.summary["change_ticket"], (word, command)
    assert len(checked) >= 8 and set(TYPED.values()) <= set(checked), checked
    for name, _, _ in REFUSALS:  # typed as printed, each ran the gate or the rehearsal again (not a usage error)
        again = runs[f"{name}, again as printed"]
        assert again.returncode == 1 and again.summary["verdict"] == "read-only", (name, again.output[-2000:])
        assert runs[name].summary["verdict"] == "refused", name
        assert REFUSED_FOR[name] in runs[name].output and REFUSED_FOR[name] in again.output, name


REFUSED_FOR = {"gate-refusal": "NODE2", "rehearsal-refusal": "14525"}  # the cause, named by both runs


def _own(run: SuiteRun) -> str:
    """The command a change run was started with, as this suite prints commands."""
    start = next(r for r in run.journal() if r["kind"] == "run_started")
    return f"pytest --inventory={start['inventory']} --apply --change-ticket {start['change_ticket']}"


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


@pytest.mark.parametrize("word", ["completed", "backed-out"])
def test_the_recap_per_host_per_node_and_the_business_outage(runs, word):
    """Issue 25 item 6: the change's recap (every run of it), in summary.json, on the console and at the top
    of the report: per host ok / changed / unchanged / failed, per node its upgrade, and BizTalk's outage
    from the first stop of its host instances to the last start, as the journals have them."""
    run = runs[word]
    recap = run.summary["recap"]
    assert set(recap["hosts"]) == {"NODE1", "NODE2", "BTS1", "BTS2", "SQL Server"}, recap["hosts"]
    for host, c in recap["hosts"].items():
        assert c["ok"] == c["changed"] + c["unchanged"] and c["changed"] > 0, (host, c)
    # the change's journals, every run of it: the recap's figures are theirs
    journals = [r for d in sorted(run.dir.parent.iterdir()) if (d / "journal.jsonl").exists()  # type: ignore[union-attr]
                for r in SuiteRun(0, "", d).journal()
                if r.get("run", "").endswith(run.summary["change_ticket"]) and r["kind"] == "result"]
    stops = sorted(r["ts"] for r in journals if r["step"] == "stop host instances" and r["outcome"] == "ok")
    starts = sorted(r["ts"] for r in journals if r["step"] == "start the host instances that ran"
                    and r["outcome"] == "ok")
    assert recap["outage"]["from"] == stops[0] and recap["outage"]["to"] == starts[-1]
    assert 0 < recap["outage"]["seconds"] < 600
    text = recap["outage"]["text"]
    assert text.startswith(f"BizTalk out of service from {stops[0][:19].replace('T', ' ')} to ")
    assert text in run.output
    lines = run.output.splitlines()
    verdict_at = max(i for i, line in enumerate(lines) if "entsso: " in line and line.startswith("="))
    assert any(re.match(r"\s+NODE1\s+ok=\d+\s+changed=\d+\s+unchanged=\d+\s+failed=\d+", line)
               for line in lines[verdict_at:])
    report = (run.dir / "report.html").read_text()  # type: ignore[operator]
    assert report.index('class="entsso-recap"') < report.index("<h2>Change ")
    nodes = {n["node"]: n for n in recap["nodes"]}
    if word == "completed":  # NODE1 and NODE2 upgraded in the run after the Ctrl-C
        assert set(nodes) == {"NODE1", "NODE2"} and all(n["result"] == "upgraded" for n in nodes.values()), nodes
        assert all(n["start"] <= n["end"] for n in nodes.values())


def test_a_change_starts_with_its_banner(runs):
    """Issue 25 item 7: the estate (environment, inventory path and SHA-256), the ticket, the mode, the
    window (none given here) and the worst case, first on the console."""
    import hashlib

    run = runs["stopped"]
    start = next(r for r in run.journal() if r["kind"] == "run_started")
    sha = hashlib.sha256(Path(start["inventory"]).read_bytes()).hexdigest()
    lines = [line for line in run.output.splitlines() if line.strip() and set(line.strip()) != {"."}]
    assert lines[0] == (f"entsso: change CHG-V-1 — apply (changes the estate) — estate LAB ({start['inventory']}, "
                        f"SHA-256 {sha})"), lines[:3]
    assert re.fullmatch(r"  no change window given \(--window-ends\); the whole change takes at most \d+ min with a "
                        r"backout from its latest stop", lines[1]), lines[1]
    assert runs["backed-out"].output.lstrip(". \n").startswith("entsso: change CHG-V-1 — backout (puts the estate")


def test_the_verdict_and_recap_come_before_pytest_htmls_environment(runs, tmp_path):
    """Issue 25 item 8: under the title, the first thing on the screen is the verdict's banner (its colour
    right below the title bar), not pytest-html's Environment table (Python, Platform)."""
    run = runs["backed-out"]
    shot = tmp_path / "top.png"
    snap = _chromium(str(tmp_path / "y"), "--window-size=1400,900", "--virtual-time-budget=3000",
                     f"--screenshot={shot}", (run.dir / "report.html").as_uri())  # type: ignore[operator]
    assert snap.returncode == 0, snap.stderr[-2000:]
    keep_artifact(shot, "verdict-first.png")
    want = tuple(int(BANNER_COLOURS["backed-out"][i:i + 2], 16) for i in (1, 3, 5))
    # each look decodes the PNG: coarse steps (the title bar and the banner are each ~50 px high)
    title_end = next(y for y in range(30, 300, 5) if png_pixel(shot, 1200, y) != want)  # below the title bar
    banner = next((y for y in range(title_end, title_end + 160, 6) if png_pixel(shot, 700, y) == want), None)
    assert banner is not None and banner - title_end < 120, (title_end, banner)


def test_a_resumed_change_keeps_the_secret_backup_an_earlier_run_made(runs):
    """Issue 25 item 8: the report is the change's. CHG-V-3's backup was made by the run Ctrl-C stopped; the
    completed run's report still shows its path and SHA-256."""
    first, last = runs["interrupted"], runs["completed"]
    step = "copy the secret backup off the node"
    copies = [r for r in first.journal() if r["kind"] == "result" and r["step"] == step]
    assert copies, "the first run made the backup"
    assert not [r for r in last.journal() if r["kind"] == "result" and r["step"] == step and r["outcome"] == "ok"]
    report = html.unescape((last.dir / "report.html").read_text())  # type: ignore[operator]
    assert "Master secret backup" in report
    assert copies[-1]["evidence"]["sha256"] in report and copies[-1]["evidence"]["copy"] in report
