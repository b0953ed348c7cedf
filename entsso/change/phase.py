"""A phase's frame: `phase()` accounts one phase of the runbook (journal, wall time, calls, the window, the
change record), and `require_ready` is the gate the first phase that changes anything passes through."""
from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import datetime, UTC
from typing import Any

from entsso.change import rehearsal, window
from entsso.change.lock import EstateLocked
from entsso.change.record import continue_record, record_phase_done, refuse_a_lost_record
from entsso.change.run import Run
from entsso.change.steps import console, log, stop
from entsso.domain import change
from entsso.estate import checks as gate


@contextmanager
def phase(run: Run, name: str, *, finishes: bool = True) -> Iterator[None]:
    """Account one phase: wall time, WinRM calls and SQL statements, outcome (summary.json, the report).
    `finishes=False` for the first part of a phase made of two fixtures (phase 2: secret, then databases):
    only the last part marks the phase finished, here and in the change record."""
    started, wall = time.monotonic(), datetime.now(UTC)
    calls0, statements0 = run.calls.count(), run.statements.count()
    run.current_phase = name
    run.journal.write("phase_started", phase=name)
    if run.estate_lock is not None and (lost := run.estate_lock.lost()) is not None:
        _regain_the_lock_or_stop(run, name, lost)
    if run.options.apply and run.options.change_ticket and name != "backout" and run.history().backed_out:
        stop(run, "gate", f"change {run.options.change_ticket} was backed out: it is never continued (its phases "
             "would act on an estate put back as before). Start the change again under a new ticket.")
    if name != "silence":
        continue_record(run)
    estimate = window.estimates(run).get(name) if name in change.PHASES else None
    number = change.PHASE_NUMBERS.get(name)
    if name not in run.phase_stats:  # phase 2's second part: announced once
        title = change.TITLES.get(name) or change.ALL_TITLES.get(name, name)
        console(run, f"\n[phase {number}/7] {title}" if number else f"\n[{title}]")
    outcome = "failed"
    try:
        if run.options.apply and not run.options.backout and name == "silence" and not run.history().began:
            _hold_the_change_against_the_window(run)
        elif run.options.apply and not run.options.backout:
            late = window.check(run, name)
            if late:
                ends = run.options.window_ends
                run.journal.write("window_refused", phase=name, reason=late,
                                  window_ends=ends.isoformat() if ends else None)
                stop(run, name, f"phase {change.PHASE_NUMBERS.get(name)} ({name}) not started: {late}. Nothing in "
                     f"it was changed. Back the change out now: {run.backout_command()} — or continue it in a later "
                     "window with the command below.")
        yield
        if finishes:
            record_phase_done(run, name)
        outcome = "done"
    except (KeyboardInterrupt, SystemExit):
        outcome = "interrupted"
        raise
    finally:
        stats: dict[str, Any] = {"started": wall.isoformat(), "seconds": round(time.monotonic() - started, 3),
                 "winrm_calls": run.calls.count() - calls0, "sql_statements": run.statements.count() - statements0,
                 "outcome": outcome, "estimate": estimate}
        prior = run.phase_stats.get(name)  # phase 2 is two fixtures (secret, then databases)
        if prior:
            stats = {**stats, "started": prior["started"],
                     **{k: round(prior[k] + stats[k], 3) for k in ("seconds", "winrm_calls", "sql_statements")}}
        run.phase_stats[name] = stats
        if outcome == "done" and estimate is not None and stats["seconds"] > estimate:
            log.warning("phase %s took %.0f s, past its estimate of %.0f s (the inventory's timeouts)",
                        name, stats["seconds"], estimate)
            run.journal.write("over_estimate", phase=name, seconds=stats["seconds"], estimate=estimate)
        run.journal.write("phase_finished", phase=name, **stats, complete=finishes)
        for listener in run.phase_listeners:  # e.g. the report is rewritten: a crash later keeps this phase
            with suppress(Exception):  # evidence must not stop the change
                listener()


def _regain_the_lock_or_stop(run: Run, name: str, lost: str) -> None:
    """The estate lock was found lost before phase `name`. Lost with its session (SQL Server failed over: an
    FCI or AG failover drops every session, then answers again): taken again in a new session once SQL Server
    answers (within the inventory's group_move timeout, as after a move of a group that holds SQL Server),
    journalled, and the change goes on. Else the change stops here, naming why."""
    lock = run.estate_lock
    if not lock.session_ended:
        stop(run, name, lost)
    run.journal.write("estate_lock_lost", phase=name, reason=lost)
    console(run, f"  the estate lock was lost with its SQL Server session (SQL Server failed over?): taking it again "
                 f"once SQL Server answers (at most {run.inventory.timeouts.group_move:g} s)")
    try:
        taken = lock.regain(run.inventory.timeouts.group_move)
    except EstateLocked as exc:
        run.journal.write("estate_lock_not_regained", phase=name, reason=str(exc))
        stop(run, name, f"{exc} Nothing in phase {change.PHASE_NUMBERS.get(name)} ({name}) was changed.")
    run.journal.write("estate_lock_retaken", phase=name, **taken)
    console(run, "  the estate lock is held again; the change goes on")


def _hold_the_change_against_the_window(run: Run) -> None:
    """Before phase 1 of a change: the window's end and the whole change's worst case, said and journalled;
    a change that cannot fit is refused here, before anything changes (nothing to back out)."""
    ends = run.options.window_ends
    if ends is None:
        return
    worst = window.worst_case(run)
    left = (ends - datetime.now(UTC)).total_seconds()
    run.journal.write("window", window_ends=ends.isoformat(), worst_case_seconds=round(worst), left_seconds=round(left))
    console(run, f"  change window ends {ends.isoformat(timespec='minutes')} ({ends.tzname() or 'local'}), "
                 f"{left / 60:.0f} min from now; the whole change takes at most {worst / 60:.0f} min with a backout "
                 "from its latest stop")
    late = window.check_change(run)
    if late:
        run.journal.write("window_refused", phase="silence", reason=late, window_ends=ends.isoformat())
        run.journal.write("gate_refused", action="silence BizTalk", failed_tests=[], findings=[f"window: {late}"])
        stop(run, "gate", f"refusing to start change {run.options.change_ticket}: {late}. Nothing was changed and "
             "there is nothing to back out. Run it in a window of at least "
             f"{worst / 60:.0f} min (--window-ends), or shorten the inventory's timeouts if they are longer than "
             "the estate needs.")


def require_ready(run: Run, action: str) -> None:
    """The gate before the first change: the readiness checks hold and no test before this failed.
    A change whose gate passed before it acted (its record says which run) does not ask again: the
    estate is mid-change by design (SSODB may name a node, the group may be offline); each step
    re-verifies its own state. Another ticket's unfinished change on the estate refuses this one."""
    h = run.history()
    refuse_a_lost_record(run, action)
    others = gate.no_unfinished_change(run.snapshot(), run.options.change_ticket, run.inventory_command)
    if others:
        run.journal.write("gate_refused", action=action, findings=[str(f) for f in others], failed_tests=[])
        stop(run, "gate", f"refusing to {action} for change {run.options.change_ticket}:\n"
             + "\n".join(f"  - {f}" for f in others) + "\nNothing was changed for this ticket.")
    if h.gate_passed_by and not h.completed:
        run.journal.write("gate_passed", action=action, by=h.gate_passed_by)
        return
    findings = gate.readiness(run.snapshot(), run)
    failed = list(run.failed_tests)
    # the rehearsal, if its tests ran it already: its failures are named here as they happened, not as test ids
    rehearsed_bad = [r for r in (run.rehearsal or []) if not r.ok]
    if failed or findings or rehearsed_bad:
        lines = ([f"  - test failed: {t}" for t in failed] + [f"  - {f}" for f in findings]
                 + [f"  - rehearsal: {r}" for r in rehearsed_bad])
        run.journal.write("gate_refused", action=action, failed_tests=failed,
                          findings=[str(f) for f in findings] + [f"rehearsal: {r}" for r in rehearsed_bad])
        half = gate.half_done(run.snapshot(), run)
        advice = (f"\nNothing was changed. Fix these, then run the gate again: {run.gate_command()}" if not half else
                  f"\nNothing was changed by this run, but the estate looks like a change stopped part-way: "
                  f"{half}. If this ticket's change did that, continue it with the command that started it "
                  f"({run.resume_command()}) from the admin box that ran it, or put the estate back by hand "
                  "(docs/recovery.md) and run the gate again.")
        stop(run, "gate", f"refusing to {action}: the estate is not ready:\n" + "\n".join(lines) + advice)
    # nothing is tried for the first time after the estate has changed: every operation of the change, once,
    # in its form that changes nothing (entsso.change.rehearsal), before phase 1 touches anything
    bad = [r for r in rehearsal.once(run) if not r.ok]
    if bad:
        run.journal.write("gate_refused", action=action, failed_tests=[], findings=[f"rehearsal: {r}" for r in bad])
        stop(run, "gate", f"refusing to {action}: the rehearsal of the change failed, so the change would meet "
             "this inside the window:\n" + "\n".join(f"  - {r}" for r in bad)
             + f"\nNothing was changed. Fix these, then rehearse again: {run.rehearsal_command()}")
    run.journal.write("gate_passed", action=action, by=run.id)

