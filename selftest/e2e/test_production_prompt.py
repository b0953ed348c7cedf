"""Issue 25 item 7: on a terminal, a change to an inventory whose `environment` says production asks the
operator to type the ticket again, before anything connects; a wrong answer changes nothing. No prompt
when stdin is not a terminal."""
from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
import time

import yaml

from selftest.e2e.suite import ROOT, _child_env, run_suite


def production(lab, tmp_path) -> str:
    inv = yaml.safe_load(lab.inventory_path.read_text())
    inv["environment"] = "PRODUCTION"
    path = tmp_path / "prod.yml"
    path.write_text(yaml.safe_dump(inv, sort_keys=False))
    return str(path)


CHECKLIST = b"Type yes when this is done"
TICKET = b"Type the change ticket again"


def on_a_terminal(args: list[str], env: dict[str, str], answer: str, reports,
                  prompts: tuple[tuple[bytes, str], ...] = ((CHECKLIST, "yes"),)) -> tuple[int, str]:
    """The run on a pseudo-terminal, each prompt answered as it comes (the checklist, then `answer` to the
    production prompt; an empty `answer`: no production prompt awaited)."""
    master, slave = os.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", *args], cwd=ROOT,
                            env=_child_env(reports, env), stdin=slave, stdout=slave, stderr=slave)
    os.close(slave)
    seen: list[bytes] = []

    def drain() -> None:
        with contextlib.suppress(OSError):
            while chunk := os.read(master, 65536):
                seen.append(chunk)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    deadline = time.monotonic() + 60
    for prompt, reply in (*prompts, *(((TICKET, answer),) if answer else ())):
        while prompt not in b"".join(seen):
            if proc.poll() is not None:
                break  # it ended before this prompt (a refused answer): the caller asserts what it said
            assert time.monotonic() < deadline, b"".join(seen).decode(errors="replace")[-2000:]
            time.sleep(0.05)
        else:
            os.write(master, reply.encode() + b"\n")
    rc = proc.wait(120)
    reader.join(5)
    os.close(master)
    return rc, b"".join(seen).decode(errors="replace")


def test_production_on_a_terminal_asks_for_the_ticket_again(start_lab, tmp_path):
    lab = start_lab("package")
    args = [f"--inventory={production(lab, tmp_path)}", "--apply", "--change-ticket", "CHG-PROD-1"]
    rc, output = on_a_terminal(args, dict(lab.env), "CHG-PROD-2", tmp_path / "r")
    assert rc == 4, output[-2000:]
    assert "PRODUCTION is production: you are about to change it for change CHG-PROD-1" in output
    assert "the ticket typed again ('CHG-PROD-2') is not CHG-PROD-1: nothing was done" in output
    assert lab.state()["changes"] == 0
    rc, output = on_a_terminal(args, dict(lab.env), "CHG-PROD-1", tmp_path / "r")
    assert rc == 0, output[-3000:]
    assert "entsso: COMPLETED" in output


def test_production_without_a_terminal_asks_nothing(start_lab, tmp_path):
    lab = start_lab("package")
    run = run_suite(tmp_path / "r", f"--inventory={production(lab, tmp_path)}", "--apply", "--change-ticket",
                    "CHG-PROD-3", env=dict(lab.env))
    assert run.returncode == 0 and run.summary["verdict"] == "completed", run.output[-3000:]
    assert "Type the change ticket again" not in run.output
    assert "— estate PRODUCTION (" in run.output


def test_a_change_on_a_terminal_asks_for_the_checklist_and_the_report_keeps_the_answer(start_lab, tmp_path):
    """Issue 28 item 7: before a change, on a terminal, the plan's checklist (monitoring in maintenance, no tool
    starting ENTSSO) is shown and must be acknowledged with yes; anything else changes nothing. The report
    keeps who acknowledged it and how; without a terminal the report says it was not acknowledged."""
    lab = start_lab("package")
    args = [f"--inventory={lab.inventory_path}", "--apply", "--change-ticket", "CHG-LIST-1"]
    rc, output = on_a_terminal(args, dict(lab.env), "", tmp_path / "r", prompts=((CHECKLIST, "later"),))
    assert rc == 4, output[-2000:]
    assert "Put SCOM (the BizTalk Server management pack) in maintenance mode" in output
    assert "the checklist was not acknowledged ('later', not yes): nothing was done" in output
    assert lab.state()["changes"] == 0
    rc, output = on_a_terminal(args, dict(lab.env), "", tmp_path / "r")
    assert rc == 0 and "entsso: COMPLETED" in output, output[-3000:]
    report = next((tmp_path / "r").glob("*CHG-LIST-1/report.html")).read_text()
    assert "the operator's checklist" in report and "<li>acknowledged — " in report and "typed yes on the terminal" \
        in report


def test_without_a_terminal_the_checklist_is_reported_unacknowledged(start_lab, tmp_path):
    lab = start_lab("package")
    run = run_suite(tmp_path / "r", f"--inventory={lab.inventory_path}", "--apply", "--change-ticket", "CHG-LIST-2",
                    env=dict(lab.env))
    assert run.returncode == 0, run.output[-3000:]
    assert "Type yes when this is done" not in run.output
    report = (run.dir / "report.html").read_text()
    assert "NOT acknowledged — not asked: no terminal, and no --checklist-done" in report
    assert [r["acknowledged"] for r in run.journal() if r["kind"] == "checklist"] == [False]
