"""What a new layout must not change, frozen from journals written by 45684ed (selftest/data/): the step
names a journal carries (resume reads them as (phase, step, host)) and the resume of a change whose
journal an earlier version wrote."""
from __future__ import annotations

import json
from pathlib import Path

from selftest.e2e.suite import ROOT, run_suite

DATA = ROOT / "selftest" / "data"
FROZEN = json.loads((DATA / "steps-45684ed.json").read_text())


def _steps(records: list[dict]) -> set[tuple]:
    return {(r["phase"], r["step"], r.get("host")) for r in records if r["kind"] in ("intent", "result")}


# steps added since 45684ed, each deliberately (a journal of 45684ed does not have them, and resumes without them)
ADDED_SINCE = {("backup", "read the secret backup back through SSO", "NODE1")}  # issue 28 item 4


def test_a_full_run_journals_the_step_names_45684ed_did(full_run):
    """Every step name 45684ed journalled is journalled as it was; the only new ones are those listed."""
    steps, frozen = _steps(full_run.journal()), {tuple(s) for s in FROZEN["fast_full_run"]}
    assert frozen <= steps, sorted(frozen - steps)
    assert steps - frozen == ADDED_SINCE, sorted(steps - frozen)


def _old_journal_for(run_dir: Path, new: list[dict]) -> str:
    """The 45684ed journal as this run's: the same records, with this run's id and change start (the estate's
    change record names them; everything else, step names and record kinds, is as 45684ed wrote it)."""
    old = (DATA / "journal-45684ed-package-stopped.jsonl").read_text()
    old_run = json.loads(old.splitlines()[0])["run"]
    started = next(r["change_started"] for r in new if r["kind"] == "change_started")
    old_started = next(json.loads(line)["change_started"] for line in old.splitlines()
                       if json.loads(line)["kind"] == "change_started")
    return old.replace(old_run, run_dir.name).replace(old_started, started)


def test_a_journal_written_by_45684ed_resumes_to_completed(start_lab, tmp_path):
    lab = start_lab("package")
    inv = str(lab.inventory_path)
    lab.post("/faults", {"kind": "installer_exit", "host": "NODE2", "exit_code": 1603})
    first = run_suite(tmp_path / "reports", f"--inventory={inv}", "--apply", "--change-ticket", "CHG-RESUME-1",
                      env=dict(lab.env))
    assert first.returncode == 1 and first.dir is not None, first.output[-3000:]
    steps, frozen = _steps(first.journal()), {tuple(s) for s in FROZEN["package_stopped_run"]}
    assert frozen <= steps and steps - frozen == ADDED_SINCE, (sorted(frozen - steps), sorted(steps - frozen))
    (first.dir / "journal.jsonl").write_text(_old_journal_for(first.dir, first.journal()))
    installs = lab.state()["winrm"]["received"].get("NODE1 Install-SsoUpdate", 0)
    lab.post("/faults/clear", {})
    second = run_suite(tmp_path / "reports", f"--inventory={inv}", "--resume", first.dir.name, env=dict(lab.env))
    assert second.returncode == 0, second.output[-3000:]
    assert second.summary["verdict"] == "completed"
    # the old journal's done steps were taken as done: NODE1 was not installed again
    assert lab.state()["winrm"]["received"].get("NODE1 Install-SsoUpdate", 0) == installs
