"""The durable record of a run: every operation's intent, result and evidence, one JSON line each,
flushed and fsynced before the next operation starts. It is the audit trail attached to the change, and
what `--resume RUN-ID` reads: the original baseline (what ran before the change, which a resumed run
must put back) and which steps were verified done."""
from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass
from datetime import datetime, UTC
from pathlib import Path
from typing import Any
from collections.abc import Iterator

from entsso.remote.winrm import redact


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Journal:
    """Append-only JSONL; thread-safe; every write reaches the disk before the call returns."""

    def __init__(self, path: Path, run_id: str) -> None:
        self.path = path
        self.run_id = run_id
        self._lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = open(path, "a", encoding="utf-8")  # noqa: SIM115 - open for the journal's life; close() ends it

    def write(self, kind: str, **fields: Any) -> dict[str, Any]:
        record = {"ts": _now(), "run": self.run_id, "kind": kind, **redact(fields)}
        line = json.dumps(record, default=str, sort_keys=False)
        with self._lock:
            self._fh.write(line + "\n")
            self._fh.flush()
            os.fsync(self._fh.fileno())
        return record

    def intent(self, phase: str, step: str, host: str | None, **detail: Any) -> dict[str, Any]:
        return self.write("intent", phase=phase, step=step, host=host, **detail)

    def result(self, phase: str, step: str, host: str | None, outcome: str, **evidence: Any) -> dict[str, Any]:
        return self.write("result", phase=phase, step=step, host=host, outcome=outcome, **evidence)

    def close(self) -> None:
        with self._lock:
            if not self._fh.closed:
                self._fh.close()


def read(path: Path) -> Iterator[dict[str, Any]]:
    """The records of a journal; a torn last line (the run died mid-write) is skipped."""
    if not path.exists():
        return
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            line = line.strip()
            if not line:
                continue
            try:
                yield json.loads(line)
            except json.JSONDecodeError:
                continue


@dataclass(frozen=True)
class PriorRun:
    """What a resumed run takes over from the run it resumes."""

    run_id: str
    change_ticket: str | None
    change_started: str | None
    baseline: dict[str, Any] | None
    done_steps: frozenset[tuple[str, str, str | None]]  # (phase, step, host) whose result was "ok"
    last_record: dict[str, Any] | None
    applied: bool = False  # the run had --apply (it may have changed the estate)
    gate_passed: bool = False  # its readiness gate passed before it changed anything
    finished_phases: frozenset[str] = frozenset()  # phases whose last account says "done"
    recorded: dict[str, Any] | None = None  # the change as this run recorded it on the estate (change_recorded)
    completed: bool = False  # this run closed the change: phase 7 (change_completed) or a backout
    backed_out: bool = False  # this run backed the change out (change_completed with status backed-out)
    started_at: str = ""  # the run_started record's time


def prior_run(path: Path) -> PriorRun:
    records = list(read(path))
    start = next((r for r in records if r.get("kind") == "run_started"), {})
    baseline = next((r.get("baseline") for r in records if r.get("kind") == "baseline"), None)
    done = frozenset((r["phase"], r["step"], r.get("host")) for r in records
                     if r.get("kind") == "result" and r.get("outcome") in ("ok", "unchanged")
                     and isinstance(r.get("phase"), str) and isinstance(r.get("step"), str))
    started = start.get("change_started") or next(
        (r.get("change_started") for r in records if r.get("kind") == "change_started"), None)
    return PriorRun(start.get("run", path.parent.name), start.get("change_ticket"), started,
                    baseline, done, records[-1] if records else None, applied=bool(start.get("apply")),
                    gate_passed=any(r.get("kind") == "gate_passed" for r in records),
                    finished_phases=_finished_phases(records),
                    recorded=next((r for r in records if r.get("kind") == "change_recorded"), None),
                    completed=any(r.get("kind") == "change_completed" for r in records),
                    backed_out=any(r.get("kind") == "change_completed" and r.get("status") == "backed-out"
                                   for r in records),
                    started_at=str(start.get("ts", "")))


def runs_of(reports: Path, ticket: str, *, exclude: Path | None = None) -> list[PriorRun]:
    """This admin box's earlier runs of a change ticket under the reports folder, oldest first."""
    out = []
    for path in reports.glob("*/journal.jsonl"):
        if exclude is not None and path.parent == exclude:
            continue
        p = prior_run(path)
        if p.change_ticket == ticket:
            out.append(p)
    return sorted(out, key=lambda p: (p.started_at, p.run_id))


def _finished_phases(records: list[dict[str, Any]]) -> frozenset[str]:
    last: dict[str, str] = {}
    for r in records:
        if r.get("kind") == "phase_finished":  # the first part of a two-fixture phase does not finish it
            last[r.get("phase", "")] = r.get("outcome", "") if r.get("complete", True) else "part done"
    return frozenset(p for p, outcome in last.items() if outcome == "done")
