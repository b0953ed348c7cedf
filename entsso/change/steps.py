"""The journalled step: the machinery every phase runs its operations through. A step journals its intent,
runs, journals its result (or failure) with evidence; a stop ends the phase with what happened and the command
that continues the change. Nothing here knows a phase: the runbook (entsso.change.runbook) does."""
from __future__ import annotations

import logging
import time
from typing import Any, NoReturn, TypeVar
from collections.abc import Callable, Iterable

import pytest

from entsso.change.run import Run
from entsso.domain.errors import DomainError
from entsso.domain.outcome import Outcome
from entsso.estate import checks as gate
from entsso.estate.snapshot import Snapshot
from entsso.remote.errors import EstateError

T = TypeVar("T")
log = logging.getLogger("entsso.phases")  # the report groups its per-phase log by this name: kept as it was


def stop(run: Run, phase: str, message: str) -> NoReturn:
    """End the phase: journal it and fail the fixture (every later phase depends on it, so nothing after
    it changes the estate)."""
    with run.step_gate:  # atomic with step()'s check-and-intent: no step can start after this record
        run.stopped = (phase, message)
        run.journal.write("phase_stopped", phase=phase, message=message,
                          resume=run.resume_command())
    pytest.fail(f"[{phase}] {message}\nWhen fixed, continue the change with: {run.resume_command()}", pytrace=False)


# what operations raise when the estate refuses or does not answer; anything else is a bug, still stopped
EXPECTED_FAILURES = (EstateError, DomainError)


def step(run: Run, phase: str, name: str, host: str | None, action: Callable[[], T], **intent: Any) -> T:
    """One operation: journal the intent, run it, journal the result (or the failure) and return it.
    Once any step of the run has stopped it (a concurrent host's, say), no new step starts."""
    key = (phase, name, host)
    with run.step_gate:  # atomic with stop(): an intent is never journalled after the stop record
        stopped = run.stopped or (("interrupted", run.interrupted) if run.interrupted else None)
        if stopped is None:
            record = run.journal.intent(phase, name, host, **intent)
            run.in_flight[key] = record["ts"]
    if stopped is not None:
        pytest.fail(f"[{phase}] {name}{' on ' + host if host else ''} not started: the run "
                    + (f"was interrupted ({run.interrupted})" if stopped[0] == "interrupted"
                       else f"stopped in phase {stopped[0]}"), pytrace=False)
    log.info("%s%s: started", name, f" on {host}" if host else "")
    started = time.monotonic()
    failure: str | None = None
    try:
        result = action()
    except (KeyboardInterrupt, SystemExit) as exc:  # SIGINT/SIGTERM/SIGHUP while this step ran here
        cause = run.interrupted or type(exc).__name__
        run.journal.result(phase, name, host, "interrupted", error=f"interrupted ({cause}) "
                           "while this step ran: its effect is unknown until the estate is read again",
                           seconds=round(time.monotonic() - started, 3), **intent)
        run.in_flight.pop(key, None)
        raise
    except Exception as exc:  # noqa: BLE001 - every failure is journalled and stops the run (pytest's own pass)
        known = isinstance(exc, EXPECTED_FAILURES)
        text = str(exc) if known else f"{type(exc).__name__}: {exc}"
        run.journal.result(phase, name, host, "failed", error=text,
                           seconds=round(time.monotonic() - started, 3), **intent)
        run.in_flight.pop(key, None)
        where = f"{name}{' on ' + host if host else ''}"
        if known:
            log.error("%s: failed: %s", where, exc)
            failure = f"{where} failed: {text}"
        else:
            log.exception("%s: unexpected error", where)
            failure = (f"{where} failed with an unexpected error ({text}). Check the host and the estate's "
                       "state before resuming, and report this error to the entsso-upgrade maintainers.")
    if failure is not None:
        # stopped outside the except block: the operator sees one message, not the cause's traceback
        # chained under "During handling of the above exception" (the journal and the log keep the cause)
        stop(run, phase, failure)
    # an operation says what it did (entsso.domain.outcome.Outcome); a read's result is its evidence, "ok"
    outcome = result.outcome if isinstance(result, Outcome) else "ok"
    evidence = result.evidence if isinstance(result, Outcome) else result
    if isinstance(result, Outcome) and result.noop_reason:
        intent = {**intent, "noop_reason": result.noop_reason}
    run.journal.result(phase, name, host, outcome, evidence=evidence,
                       seconds=round(time.monotonic() - started, 3), **intent)
    run.in_flight.pop(key, None)
    log.info("%s%s: %s in %.1f s", name, f" on {host}" if host else "", outcome, time.monotonic() - started)
    console(run, f"  {host or 'SQL Server':<10} {name}{' (' + intent['job'] + ')' if intent.get('job') else ''}: "
                  f"{'done' if outcome == 'ok' else outcome} ({time.monotonic() - started:.1f} s)")
    return result


def console(run: Run, line: str) -> None:
    """A line for the person at the console (entsso.change.operator), when there is one."""
    operator = getattr(run, "operator", None)
    if operator is not None:
        operator.tell(line)


def observe(run: Run) -> Snapshot:
    """A fresh snapshot for a phase's verification: a host or SQL Server that does not answer (or answers
    nonsense) is itself a reason to stop — a phase is verified on the whole estate or not at all."""
    s = run.snapshot(fresh=True)
    require(run, run.current_phase, [gate.host_reachable(s, h) for h in s.hosts] + [gate.sql_reachable(s)])
    return s


def require(run: Run, phase: str, findings: Iterable[gate.Finding | None]) -> None:
    """Stop the phase on any finding (a check returns None when it holds)."""
    found = [f for f in findings if f]
    if found:
        stop(run, phase, "the phase did not verify:\n" + "\n".join(f"  - {f}" for f in found))

