"""A backup written by a run of this change that stopped before reading it back (its answer lost, or the read
itself failed) is still this change's backup when the change resumes: its reminder names that run."""
from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

from entsso.change.secretbackup import change_reminders
from entsso.inventory.schema import DEFAULT_REMINDER


def _run(reports: Path, run_id: str, ticket: str) -> SimpleNamespace:
    d = reports / run_id
    d.mkdir(parents=True)
    (d / "journal.jsonl").write_text(json.dumps({"kind": "run_started", "run": run_id, "change_ticket": ticket,
                                                 "ts": run_id}) + "\n")
    return SimpleNamespace(id=run_id, dir=d, options=SimpleNamespace(change_ticket=ticket),
                           inventory=SimpleNamespace(secret_backup=SimpleNamespace(reminder=DEFAULT_REMINDER)))


def test_the_reminders_of_this_changes_earlier_runs_count_and_no_other_changes(tmp_path):
    _run(tmp_path, "20261207T2300Z-CHG-1", "CHG-1")
    _run(tmp_path, "20261207T2301Z-CHG-2", "CHG-2")
    now = _run(tmp_path, "20261207T2310Z-CHG-1", "CHG-1")
    assert change_reminders(now) == [
        "ENTSSO master secret backup for change CHG-1 (run 20261207T2310Z-CHG-1)",
        "ENTSSO master secret backup for change CHG-1 (run 20261207T2300Z-CHG-1)"]
