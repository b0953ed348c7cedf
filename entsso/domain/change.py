"""The change: what one change ticket owns across every run that serves it — the baseline (what ran and
was enabled before the change), when it began, the run whose gate let it act, and which phases are done.

It is kept on the estate, beside the master secret backup: ENTSSO-<ticket>.change.json in the primary's
backup folder, written with the suite's own Write-File and read back by Get-HostFacts (which lists every
such file on every node, so the gate stays one call per host). Any admin box that reaches the estate
therefore continues the change with its original baseline, and a new ticket is refused while a change
is unfinished. Each run directory keeps a copy (change.json) as evidence; this admin box's journals of
the same ticket fill in what the estate record does not hold (the steps done inside a phase).
"""
from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, UTC
from typing import Any
from collections.abc import Iterable

FORMAT = "entsso-upgrade change record 1"
PHASES = ("silence", "backup", "uncluster", "upgrade", "recluster", "failover", "resume")
PHASE_NUMBERS = {p: i + 1 for i, p in enumerate(PHASES)}
# the phases in an administrator's words: the console, the report, the plan and the verdict use these
TITLES = {"silence": "Silence BizTalk", "backup": "Back up", "uncluster": "Uncluster the MSS",
          "upgrade": "Upgrade each node", "recluster": "Recluster the MSS", "failover": "Fail over",
          "resume": "Put BizTalk back"}
NUMBERED_TITLES = {p: f"{PHASE_NUMBERS[p]}. {t}" for p, t in TITLES.items()}
ALL_TITLES = {"estate": "0. Baseline", "gate": "Gate", **NUMBERED_TITLES, "backout": "Back out"}
CLOSED = ("completed", "backed-out")


class ChangeRecordError(ValueError):
    """A change record on the estate that cannot be read as one (it is shown, never ignored)."""


def label(ticket: str) -> str:
    """The ticket as it appears in file names on the estate."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", ticket)


def record_path(folder: str, ticket: str) -> str:
    return f"{folder.rstrip(chr(92))}\\ENTSSO-{label(ticket)}.change.json"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass(frozen=True)
class ChangeRecord:
    ticket: str
    status: str  # "open"; "completed" once phase 7 verified; "backed-out" once --backout verified
    baseline: dict[str, Any]
    change_started: str
    gate_passed_by: str  # the run whose readiness gate passed before the change changed anything
    runs: tuple[str, ...] = ()
    phases_finished: tuple[str, ...] = ()
    keep_silenced: bool = False  # the last run asked to leave BizTalk silenced after phase 6
    backup_proof: dict[str, Any] | None = None  # phase 2's forced full set (entsso.domain.backup), once proven
    updated_at: str = field(default_factory=_now)
    kept_on: str = ""  # the node whose backup folder holds it (not written: where it was read)
    path: str = ""  # (not written: where it was read)

    @property
    def open(self) -> bool:
        return self.status == "open"

    @property
    def next_phase(self) -> str | None:
        return next((p for p in PHASES if p not in self.phases_finished), None)

    def describe(self) -> str:
        """One line for an operator: where this change stands."""
        done = [p for p in PHASES if p in self.phases_finished]
        last = f"finished phase {PHASE_NUMBERS[done[-1]]} ({done[-1]})" if done else "began phase 1 (silence)"
        nxt = self.next_phase
        where = f"; next: phase {PHASE_NUMBERS[nxt]} ({nxt})" if nxt else ""
        return (f"change {self.ticket} ({self.status}, {last}{where}; runs: {', '.join(self.runs)}; "
                f"record {self.path} on {self.kept_on})")

    def to_bytes(self) -> bytes:
        doc = {"format": FORMAT, **{k: v for k, v in asdict(self).items() if k not in ("kept_on", "path")}}
        return (json.dumps(doc, indent=2, sort_keys=True, default=str) + "\n").encode("utf-8")

    @classmethod
    def from_text(cls, text: str, kept_on: str, path: str) -> ChangeRecord:
        try:
            doc = json.loads(text.lstrip("\ufeff"))
        except json.JSONDecodeError as exc:
            raise ChangeRecordError(f"{path} on {kept_on} is not JSON ({exc.msg} at line {exc.lineno})") from None
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise ChangeRecordError(f"{path} on {kept_on} is not an entsso-upgrade change record "
                                    f"(format {doc.get('format') if isinstance(doc, dict) else None!r})")
        try:
            return cls(ticket=str(doc["ticket"]), status=str(doc["status"]), baseline=dict(doc["baseline"]),
                       change_started=str(doc["change_started"]), gate_passed_by=str(doc["gate_passed_by"]),
                       runs=tuple(doc.get("runs") or ()), phases_finished=tuple(doc.get("phases_finished") or ()),
                       keep_silenced=bool(doc.get("keep_silenced")), updated_at=str(doc.get("updated_at", "")),
                       backup_proof=doc.get("backup_proof") if isinstance(doc.get("backup_proof"), dict) else None,
                       kept_on=kept_on, path=path)
        except (KeyError, TypeError, ValueError) as exc:
            raise ChangeRecordError(f"{path} on {kept_on} lacks {exc} of a change record") from None

    def with_run(self, run_id: str) -> ChangeRecord:
        runs = self.runs if run_id in self.runs else (*self.runs, run_id)
        return replace(self, runs=runs, updated_at=_now())

    def with_phase(self, phase: str, *, status: str | None = None, keep_silenced: bool | None = None,
                   backup_proof: dict[str, Any] | None = None) -> ChangeRecord:
        done = self.phases_finished if phase in self.phases_finished else (*self.phases_finished, phase)
        return replace(self, phases_finished=done, updated_at=_now(), status=status or self.status,
                       keep_silenced=self.keep_silenced if keep_silenced is None else keep_silenced,
                       backup_proof=backup_proof or self.backup_proof)


def parse_records(host: str, doc: dict[str, Any]) -> tuple[tuple[ChangeRecord, ...], tuple[str, ...]]:
    """Get-HostFacts' `change_records` (every ENTSSO-*.change.json of the backup folder, as text): the
    records, and a line for each file that is not one."""
    records, problems = [], []
    for f in doc.get("change_records") or []:
        try:
            records.append(ChangeRecord.from_text(str(f.get("text") or ""), host, str(f.get("path") or "")))
        except ChangeRecordError as exc:
            problems.append(str(exc))
    return tuple(records), tuple(problems)


@dataclass(frozen=True)
class History:
    """A ticket's change as this run finds it: the estate's record of it, other tickets' unfinished
    changes, and this admin box's earlier runs of the same ticket (entsso.change.journal.PriorRun)."""

    ticket: str | None
    record: ChangeRecord | None = None
    others_open: tuple[ChangeRecord, ...] = ()
    unreadable: tuple[str, ...] = ()  # records (or nodes) that could not be read
    local: tuple[Any, ...] = ()  # PriorRun of this ticket's earlier runs here, oldest first

    @property
    def _recorded_locally(self) -> dict[str, Any] | None:
        """The change as this admin box recorded it on the estate (journal kind change_recorded)."""
        return next((p.recorded for p in self.local if p.recorded), None)

    @property
    def record_lost(self) -> dict[str, Any] | None:
        """This admin box recorded the change on the estate (its journal's change_recorded), yet every node
        was read and none holds a record of it: another estate than those runs' (a new lab, the wrong
        inventory), or the record was removed. Its change_recorded entry, else None."""
        if self.record is not None or self.unreadable:
            return None
        return self._recorded_locally

    @property
    def began(self) -> bool:
        """The change has acted (its record was written before its first change)."""
        return self.record is not None or self._recorded_locally is not None

    @property
    def completed(self) -> bool:
        """Closed: completed, or backed out (then it is never continued: a new ticket starts afresh)."""
        if self.record is not None:
            return not self.record.open
        return any(p.completed for p in self.local)

    @property
    def backed_out(self) -> bool:
        if self.record is not None:
            return self.record.status == "backed-out"
        return any(p.backed_out for p in self.local)

    def _recorded(self, name: str) -> Any:
        """A field of the change as recorded: the estate's record, else this admin box's journal of it."""
        if self.record is not None:
            return getattr(self.record, name)
        local = self._recorded_locally
        return local.get(name) if local else None

    @property
    def baseline(self) -> dict[str, Any] | None:
        return self._recorded("baseline")

    @property
    def change_started(self) -> str | None:
        return self._recorded("change_started")

    @property
    def gate_passed_by(self) -> str | None:
        return self._recorded("gate_passed_by")

    @property
    def finished_phases(self) -> frozenset[str]:
        out: set[str] = set(self.record.phases_finished) if self.record else set()
        for p in self.local:  # this ticket's runs only (entsso.change.journal.runs_of)
            if p.applied:
                out |= set(p.finished_phases)
        return frozenset(out)

    @property
    def done_steps(self) -> frozenset[tuple[str, str, str | None]]:
        out: set[tuple[str, str, str | None]] = set()
        for p in self.local:
            if p.applied:
                out |= set(p.done_steps)
        return frozenset(out)

    @property
    def runs(self) -> tuple[str, ...]:
        ids = list(self.record.runs) if self.record else []
        ids += [p.run_id for p in self.local if p.applied and p.run_id not in ids]
        return tuple(ids)


def find(ticket: str | None, records: Iterable[ChangeRecord], unreadable: Iterable[str] = (),
         local: Iterable[Any] = ()) -> History:
    """This ticket's record (the newest copy, if several nodes hold one) and every other open change."""
    records = list(records)
    mine = [r for r in records if ticket is not None and label(r.ticket) == label(ticket)]
    mine.sort(key=lambda r: (r.updated_at, len(r.phases_finished)))
    others: dict[str, ChangeRecord] = {}
    for r in records:
        if (r.open and (ticket is None or label(r.ticket) != label(ticket))
                and (r.ticket not in others or r.updated_at > others[r.ticket].updated_at)):
            others[r.ticket] = r
    return History(ticket, mine[-1] if mine else None, tuple(others.values()), tuple(unreadable), tuple(local))
