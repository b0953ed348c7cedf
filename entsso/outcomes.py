"""Each test's outcome as the report tells it, for entsso.plugin: the evidence a test judged, the phases a
test's setup ran (their log belongs to the timeline), one report of a stop (not one per test that needed
the stopped phase), the outcomes summary.json and the report list; and at the session's end the verdict,
an interrupted phase counted as a failure of its own, and the console's last word."""
from __future__ import annotations

from collections.abc import Generator
from typing import Any

import pytest

from entsso.base_fixtures import EVIDENCE_KEY
from entsso.change.run import Run
from entsso.report import causes, earlier, verdict
from entsso.report.keys import CAUSES_KEY, NOT_REPEATED_KEY, OUTCOMES_KEY, RUN_KEY

_OUTCOMES = (pytest.fail.Exception, pytest.skip.Exception, pytest.exit.Exception)  # pytest's own, not errors
PHASES_SET_UP_KEY = pytest.StashKey[list[str]]()  # the phases this test's setup ran
PHASES_SEEN_KEY = pytest.StashKey[set[str]]()  # the phases whose log a test's setup report already carries
STOP_REPORTED_KEY = pytest.StashKey[str]()  # the test that reported the stop (the others point to it)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Generator[None, Any, None]:
    """Each report as the change's evidence: the facts the test judged, the phases its setup ran, one
    report of a stop; the failed tests and every test's outcome kept for the verdict and summary.json."""
    outcome = yield
    report = outcome.get_result()
    evidence = item.stash.get(EVIDENCE_KEY, None)
    if evidence and report.when == "call":
        try:
            from pytest_html import extras as html_extras
        except ImportError:  # pytest-html absent: evidence still goes to the text report
            html_extras = None
        for name, text in evidence:
            report.sections.append((f"evidence: {name}", text))
            if html_extras is not None:
                report.extras = [*getattr(report, "extras", []), html_extras.text(text, name=name)]
    run = item.config.stash.get(RUN_KEY, None)
    if run is not None and report.when == "setup":
        seen = item.config.stash.setdefault(PHASES_SEEN_KEY, set())
        ran = [p for p in run.phase_stats if p not in seen]
        if ran:  # this test's setup ran phases: their log belongs to them, in the report's timeline
            seen.update(ran)
            item.stash[PHASES_SET_UP_KEY] = ran
    ran_here = item.stash.get(PHASES_SET_UP_KEY, None) if run is not None else None
    if ran_here:  # pytest repeats the setup's captured output in the call and teardown reports too
        report.sections = [(n, b) for n, b in report.sections if not (n.startswith("Captured") and n.endswith("setup"))]
        if report.when == "call":
            report.sections.append(("phases set up here", "This test's setup ran the phases " + ", ".join(ran_here)
                                    + ": their logs are in the timeline at the top of the report, each with "
                                      "its phase."))
    if (run is not None and run.options.apply and report.when == "setup" and report.failed and call.excinfo
            and not (run.stopped or run.interrupted) and not isinstance(call.excinfo.value, _OUTCOMES)):
        # a setup that raised outside the runbook's steps (a hook, a plugin, the suite itself): the change is
        # interrupted there, as by a signal; the traceback goes to the run folder, not the console
        record_internal_error(run, call.excinfo.value)
        item.session.shouldstop = f"interrupted: {run.interrupted}"
        report.longrepr = f"Interrupted: {run.interrupted}."
    if run is not None and report.when == "setup" and report.failed and (run.stopped or run.interrupted):
        _once(item, report, run)
    if run is not None and report.failed and not (run.stopped or run.interrupted):
        _one_cause(item, report, run)
    if run is not None and report.failed and item.nodeid not in run.failed_tests:
        run.failed_tests.append(item.nodeid)
    if run is not None and report.skipped and earlier.done_earlier(reason := earlier.skip_reason(report)):
        item.config.stash.setdefault(NOT_REPEATED_KEY, []).append(reason)
    outcomes = item.config.stash.setdefault(OUTCOMES_KEY, {})
    if report.when == "call" or report.outcome != "passed":
        state = "error" if report.when != "call" and report.failed else report.outcome
        if report.when == "call" or item.nodeid not in outcomes or state != "passed":
            outcomes[item.nodeid] = state


def _one_cause(item: pytest.Item, report: pytest.TestReport, run: Run) -> None:
    """One cause, one finding (entsso.report.causes): the first gate check that failed because hosts refused
    the WinRM credentials (or did not resolve, or refused a certificate), or SQL Server the login, says the
    cause with the inventory field or variable and the fix; every later check it blocked is skipped with a
    pointer to that one, and the verdict lists them."""
    if run.current_phase != "gate" or run._snapshot is None:
        return
    found = item.config.stash.get(CAUSES_KEY, None)
    if found is None:
        found = item.config.stash[CAUSES_KEY] = causes.find(run.inventory, run._snapshot)
    text = str(report.longrepr)
    for c in found:
        if not c.caused(text):
            continue
        if c.reported_by is None:
            c.reported_by = item.nodeid
            # a name the estate does not know: the check's own advice would name it in a command, so not shown
            detail = "" if c.kind == "name" else f"\n\n{text}"
            report.longrepr = (f"One cause: {c.text}.\nThe other checks it blocks are skipped, each pointing "
                               f"here.{detail}")
            return
        c.blocked.append(item.nodeid)
        path, line, _ = item.location
        report.outcome = "skipped"
        report.longrepr = (str(path), (line or 0) + 1,
                           f"Skipped: blocked by one cause ({c.kind}: {', '.join(c.subjects)}), reported once by "
                           f"{c.reported_by.split('::')[-1]}")
        return


def _once(item: pytest.Item, report: pytest.TestReport, run: Run) -> None:
    """One cause, one message: the first test whose setup met the stopped phase reports the stop; every
    later test that depends on it is skipped with a pointer to that one (pytest would repeat the stop for
    each of them: 46 copies for one down node)."""
    phase = run.stopped[0] if run.stopped else "interrupted"
    if f"[{phase}]" not in str(report.longrepr) and "not started: the run" not in str(report.longrepr):
        return  # a failure of its own, not the stop
    first = item.config.stash.get(STOP_REPORTED_KEY, None)
    if first is None:
        item.config.stash[STOP_REPORTED_KEY] = item.nodeid
        return
    path, line, _ = item.location
    report.outcome = "skipped"
    report.longrepr = (str(path), (line or 0) + 1,
                       f"Skipped: not run: the change stopped in phase {phase} (the cause is reported once, by "
                       f"{first.split('::')[-1]})")


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtestloop(session: pytest.Session) -> Generator[None, Any, Any]:
    """An exception from anywhere while the tests run (a hook, a plugin, the suite itself outside a step)
    interrupts the change as a signal does: its traceback goes to the run folder (internal-error.txt,
    secrets scrubbed), never to the console, and the run ends with the `interrupted` verdict, its evidence
    and the command that continues the change (pytest would end with an INTERNALERROR block and no verdict)."""
    run = session.config.stash.get(RUN_KEY, None)
    try:
        return (yield)
    except (KeyboardInterrupt, SystemExit, pytest.UsageError):
        raise
    except Exception as exc:
        if run is None or not run.options.apply:
            raise
        record_internal_error(run, exc)
        session.shouldstop = f"interrupted: {run.interrupted}"
        return True


def record_internal_error(run: Run, exc: BaseException) -> None:
    """The run interrupted by an exception of the suite's own: the traceback in the run folder, the journal's
    `interrupted` record (as for a signal), the cause in the verdict's words."""
    import traceback

    from entsso.report.scrub import scrub, secret_values

    path = run.dir / "internal-error.txt"
    text = scrub("".join(traceback.format_exception(exc)), secret_values())
    try:
        path.write_text(text, encoding="utf-8")
        where = f"its traceback is in {path}"
    except OSError as err:
        where = f"its traceback could not be written ({err.strerror})"
    said = scrub(str(exc), secret_values()).splitlines()[0][:200] if str(exc) else ""
    run.interrupted = run.interrupted or (f"an error in the suite itself, {type(exc).__name__}"
                                          + (f": {said}" if said else "") + f"; {where}")
    if run.journal is not None:
        in_flight = [{"phase": k[0], "step": k[1], "host": k[2], "since": ts}
                     for k, ts in list(run.in_flight.items())]
        run.journal.write("interrupted", signal="INTERNALERROR", error=type(exc).__name__, phase=run.current_phase,
                          in_flight=in_flight, resume=run.resume_command())


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_sessionfinish(session: pytest.Session) -> Generator[None, None, None]:
    """Before junit.xml and report.html are written: the verdict, and an interrupted run's unfinished
    phase as a failed test of its own (pytest reports nothing for a test whose setup was interrupted, so
    junit.xml would count an interrupted change as 0 failures). After everything else pytest prints: the
    verdict, the console's last word (pytest's own KeyboardInterrupt block is not printed: the verdict
    says it, with how to continue)."""
    run = session.config.stash.get(RUN_KEY, None)
    if run is None:
        return (yield)
    tr = session.config.pluginmanager.get_plugin("terminalreporter")
    try:
        _conclude(session, run)
    finally:
        if run.interrupted and tr is not None:
            if session.exitstatus == pytest.ExitCode.OK or session.exitstatus == pytest.ExitCode.TESTS_FAILED:
                session.exitstatus = pytest.ExitCode.INTERRUPTED  # an exception interrupted it, as a signal does
            tr._report_keyboardinterrupt = lambda: None  # pytest's "!!! KeyboardInterrupt !!!" and its location
    try:
        return (yield)
    finally:
        if tr is not None:
            verdict.to_console(tr, session.config)


def _conclude(session: pytest.Session, run: Run) -> None:
    out = verdict.conclude(session.config)
    if out:
        verdict.to_junit(session.config, out)
    if out and out["verdict"] == "backed-out":  # the upgrade was not done: never a passed upgrade in junit.xml
        from _pytest.reports import TestReport

        report = TestReport(nodeid="change::upgrade", location=("change", 0, "the upgrade"), keywords={},
                            outcome="skipped", longrepr=("change", 1, f"Skipped: backed-out: {out['reason']}"),
                            when="call")
        session.config.hook.pytest_runtest_logreport(report=report)
    if out and out["verdict"] == "interrupted":
        from _pytest.reports import TestReport

        phase = out.get("phase") or run.current_phase
        text = (f"{out['reason']}\n{out.get('continue') or ''}").strip()
        report = TestReport(nodeid=f"change::{phase}", location=("change", 0, f"phase {phase}"), keywords={},
                            outcome="failed", longrepr=text, when="call")
        session.config.hook.pytest_runtest_logreport(report=report)
