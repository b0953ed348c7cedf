"""The change's bookkeeping across runs: the change record on the estate (entsso.domain.change) written before
phase 1 and after each phase, what earlier runs of the ticket finished or proved, and the refusal of a change
whose record this estate does not hold."""
from __future__ import annotations

import dataclasses
from typing import Any

from entsso.change.run import Run
from entsso.change import stepnames as S
from entsso.change.steps import step, stop
from entsso.domain import backup, change, files


def finished_before(run: Run, name: str) -> bool:
    """An earlier run of this change finished this phase: verify it (the tests do), do not redo it.
    Phase 1 is the exception until phase 3 is done: it is run again (each step reads first, so on a
    silenced estate it changes nothing) because BizTalk must be silent when the MSS is unclustered, and
    someone may have started a host instance since the change was prepared."""
    if not run.options.change_ticket:
        return False
    if run.options.apply:
        refuse_a_lost_record(run, "continue")  # those phases were finished on another estate
    h = run.history()
    if name not in h.finished_phases:
        return False
    if name == "silence" and "uncluster" not in h.finished_phases:
        return False
    run.journal.write("phase_skipped", phase=name, reason=f"finished earlier in change {h.ticket} "
                      f"(runs {', '.join(h.runs) or 'on another admin box'})")
    return True


def prior_failover_evidence(run: Run) -> dict[str, Any]:
    """Per node, what this change's earlier runs saw when the group was owned there (their journals'
    results on this admin box); empty when they ran elsewhere (then phase 6 is run again)."""
    from entsso.change import journal

    per_node: dict[str, Any] = {}
    for p in run.history().local:
        for r in journal.read(run.dir.parent / p.run_id / "journal.jsonl"):
            if r.get("kind") != "result" or r.get("phase") != "failover" or r.get("outcome") == "failed":
                continue
            if S.is_move_group(r.get("step", "")):
                per_node.setdefault(r["host"], {})["group"] = r.get("evidence") or {}
            elif r.get("step", "") == S.READ_HANDLERS:
                per_node.setdefault(r["host"], {})["handlers"] = r.get("evidence") or []
    return {n: v for n, v in per_node.items() if "group" in v and "handlers" in v}


def recorded_backup_proof(run: Run) -> dict[str, Any] | None:
    """Phase 2's forced full set for this change (entsso.domain.backup's proof): this run's journal, else the
    change record on the estate, else this admin box's earlier runs of the ticket (newest first)."""
    from entsso.change import journal

    found = backup.recorded_proof(journal.read(run.dir / "journal.jsonl"))
    if found or not run.options.change_ticket:
        return found
    h = run.history()
    if h.record is not None and h.record.backup_proof:
        return h.record.backup_proof
    for p in reversed(h.local):
        found = backup.recorded_proof(journal.read(run.dir.parent / p.run_id / "journal.jsonl"))
        if found:
            return found
    return None


# --- the change record on the estate (entsso.domain.change) ------------------------------------------------
def record_change(run: Run) -> None:
    """Before phase 1 changes anything: the change and its baseline on the estate, beside the master
    secret backup on the primary (a later run, from any admin box, continues with this baseline). A
    change already recorded gets this run added. Verified by the size Write-File reports back."""
    h = run.history()
    base = run.change_record
    if base is None:
        base = change.ChangeRecord(ticket=run.options.change_ticket or "", status="open",
                                   baseline=run.baseline().to_dict(),
                                   change_started=run.change_started.isoformat(),
                                   gate_passed_by=h.gate_passed_by or run.id,
                                   runs=tuple(h.runs),
                                   phases_finished=tuple(p for p in change.PHASES if p in h.finished_phases))
    _write_record(run, "silence", S.RECORD_CHANGE, base.with_run(run.id))
    r = run.change_record
    assert r is not None
    run.journal.write("change_recorded", ticket=r.ticket, baseline=r.baseline, change_started=r.change_started,
                      gate_passed_by=r.gate_passed_by, record=r.path, record_on=r.kept_on)


def continue_record(run: Run) -> None:
    """A run that continues a change (its phase 1 already done) carries the change's record on: this
    run is added to it when the next phase finishes."""
    if run.change_record is not None or not (run.options.apply and run.options.change_ticket):
        return
    h = run.history()
    if h.record is not None:
        run.change_record = dataclasses.replace(h.record, runs=tuple(h.runs)).with_run(run.id)
    elif h.began and h.baseline is not None:  # recorded by this admin box; the estate's copy was not read
        run.change_record = change.ChangeRecord(
            ticket=run.options.change_ticket, status="open", baseline=h.baseline,
            change_started=h.change_started or run.change_started.isoformat(),
            gate_passed_by=h.gate_passed_by or run.id, runs=(*h.runs, run.id),
            phases_finished=tuple(p for p in change.PHASES if p in h.finished_phases),
            kept_on=run.primary_node(), path=run.change_record_path())


def _write_record(run: Run, phase_name: str, what: str, record: change.ChangeRecord) -> None:
    node = run.primary_node()
    path = run.change_record_path()
    data = record.to_bytes()

    def write() -> dict[str, Any]:
        written = files.write_file(run.hosts[node], path, data)
        return {"path": path, "size": written.size, "phases_finished": list(record.phases_finished),
                "status": record.status}

    step(run, phase_name, what, node, write, file=path)
    run.change_record = dataclasses.replace(record, kept_on=node, path=path)
    (run.dir / "change.json").write_bytes(data)


def record_phase_done(run: Run, name: str) -> None:
    """A finished phase in the change record (phase 7's finish, or a backout's, closes the change)."""
    if not run.options.apply or run.change_record is None:
        return
    status = {"resume": "completed", "backout": "backed-out"}.get(name)
    if status and run.change_record.status == status:
        return  # closed already (a second backout): nothing to write
    what = S.mark_change(status) if status else S.record_phase_done(change.PHASE_NUMBERS.get(name, "?"))
    _write_record(run, name, what, run.change_record.with_phase(
        name, status=status, backup_proof=getattr(run, "backup_proof", None) if name == "backup" else None))
    if status:
        run.journal.write("change_completed", ticket=run.options.change_ticket, status=status,
                          record=run.change_record.path)


def refuse_a_lost_record(run: Run, action: str) -> None:
    """Stop before anything changes when this admin box's runs of the ticket recorded the change on an estate
    that, read in full, has no record of it: taking those runs' phases as done would skip them here."""
    lost = run.history().record_lost
    if lost is None:
        return
    ticket = run.options.change_ticket
    where = f"{lost.get('record') or 'the change record'} on {lost.get('record_on') or 'the primary node'}"
    run.journal.write("gate_refused", action=action, failed_tests=[],
                      findings=[f"change record of {ticket} missing from the estate"])
    stop(run, "gate", f"refusing to {action} for change {ticket}: this admin box's earlier runs of it recorded the "
         f"change as {where}, but no node of this estate holds that record now. Either this is another estate than "
         "those runs' (a new lab, another inventory), or the record was removed. Nothing was changed. A new change "
         "takes a new ticket (--change-ticket); if this is the same estate, find out what removed the record "
         "(docs/recovery.md) before you continue.")

