"""The pytest plugin: options, the inventory (checked before anything connects), the run directory,
the lab for `--lab`, parametrisation by the estate's own names, the gate between phases, and the
report files (report.html, junit.xml, journal.jsonl, summary.json, lab-state.json)."""
from __future__ import annotations

import json
import logging
import os
import shutil
import time
from dataclasses import fields, is_dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from entsso.change.operator import Operator
from entsso.change.run import Options, Run
from entsso.report import verdict
from entsso.report.keys import ITEMS_KEY, OUTCOMES_KEY, RUN_KEY, SITE_CHECKS_KEY, TEST_PLAN_KEY
PHASE_ORDER = {"readiness": 0, "prepared": 1, "post": 2, "backout": 2}
REPORTS = Path(os.environ.get("ENTSSO_REPORTS", "reports"))


def pytest_addoption(parser: pytest.Parser) -> None:
    g = parser.getgroup("entsso", "entsso-upgrade (Enterprise SSO upgrade on a clustered MSS)")
    g.addoption("--inventory", metavar="FILE", default=os.environ.get("ENTSSO_INVENTORY"),
                help="the estate's inventory (or ENTSSO_INVENTORY)")
    g.addoption("--lab", nargs="?", const="default", default=None, metavar="SCENARIO",
                help="start a lab (simulated estate) for this run; SCENARIO is a bundled name or a YAML file")
    g.addoption("--lab-speed", type=float, default=None, help="the lab's estate seconds per real second")
    g.addoption("--apply", action="store_true", help="change the estate (needs --change-ticket)")
    g.addoption("--change-ticket", metavar="ID", help="the change record this run is evidence for")
    g.addoption("--resume", metavar="RUN-ID", help="resume the run reports/RUN-ID that stopped")
    g.addoption("--allow-reboot", action="store_true", help="let the suite reboot a node an update asks for")
    g.addoption("--keep-silenced", action="store_true", help="skip phase 7: leave BizTalk silenced")
    g.addoption("--plan", action="store_true",
                help="read-only: write plan.md and plan.html (every operation the change would perform, its test "
                     "and backout plans, how long each phase may take) and run the readiness gate")
    g.addoption("--window-ends", metavar="TIME",
                help="the end of the change window (HH:MM local, or ISO): a phase that cannot finish, with time "
                     "to back out, is not started")
    g.addoption("--site-checks", metavar="FOLDER", default=None,
                help="the site's own read-only checks (pytest files with testinfra's host fixture), run in the gate "
                     "and after the change; default: the inventory's site_checks")
    g.addoption("--backout", action="store_true",
                help="put the estate of change --change-ticket back in service from wherever it stopped "
                     "(changes the estate; upgraded nodes stay upgraded)")


def _suite_requested(config: pytest.Config) -> bool:
    """True unless every path given is our own selftest (pytest selftest)."""
    args = [a for a in config.args if not a.startswith("-")]
    if not args:
        return True
    return any(not Path(a.split("::")[0]).resolve().is_relative_to(Path(config.rootpath, "selftest").resolve())
               for a in args)


def latest_report() -> str:
    runs = sorted(p for p in REPORTS.glob("*/report.html"))
    return str(runs[-1]) if runs else "(no report yet)"


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    for marker in ("readiness", "prepared", "post", "slow", "change_guard", "backout"):
        config.addinivalue_line("markers", f"{marker}: entsso phase marker")
    if not _suite_requested(config) or getattr(config, "workerinput", None) is not None:
        return
    opt = config.option
    if getattr(opt, "help", False) or getattr(opt, "version", False) or getattr(opt, "showfixtures", False) \
            or getattr(opt, "markers", False):
        return  # pytest's own help: no estate needed, nothing created
    lab_value = opt.lab
    if lab_value and not lab_value.endswith((".yml", ".yaml")) and Path(lab_value).exists():
        # `pytest --lab tests_pre`: argparse took the path as the scenario
        config.args.append(lab_value)
        opt.lab = lab_value = "default"
    if opt.plan and (opt.apply or opt.backout or opt.resume):
        raise pytest.UsageError("--plan is read-only: leave out --apply, --backout and --resume (the plan says what "
                                "--apply --change-ticket would do).")
    options = Options(apply=opt.apply or opt.backout, change_ticket=opt.change_ticket, resume=opt.resume,
                      allow_reboot=opt.allow_reboot, keep_silenced=opt.keep_silenced, backout=opt.backout,
                      plan=opt.plan)
    if opt.window_ends:
        from entsso.change.window import WindowError, parse_window_end

        try:
            options.window_ends = parse_window_end(opt.window_ends)
        except WindowError as exc:
            raise pytest.UsageError(str(exc)) from None
    prior = _check_options(options)
    if not opt.inventory and not lab_value:
        raise pytest.UsageError(
            "no estate given: pass --inventory FILE (or set ENTSSO_INVENTORY) for a real estate, "
            "or --lab for the simulated one. See docs/inventory.md.")
    from entsso.change.run import new_run_id

    run_id = new_run_id(options.change_ticket)
    run_dir = REPORTS / run_id
    n = 1
    while run_dir.exists():
        n += 1
        run_dir = REPORTS / f"{run_id}.{n}"
    run_dir.mkdir(parents=True)
    lab = None
    inventory_path = opt.inventory
    if lab_value:
        from entsso.lab.launcher import LabError, LabProcess

        lab = LabProcess(lab_value, run_dir / "lab-inventory.yml", speed=opt.lab_speed)
        try:
            lab.start()
        except LabError as exc:
            raise pytest.UsageError(str(exc)) from None
        os.environ.update(lab.env)  # the lab's credentials, as an operator would export them
        inventory_path = str(lab.inventory_path)
    try:
        run = _load_run(run_dir.name, run_dir, options, inventory_path, prior)
    except BaseException:
        if lab:
            lab.stop()
        shutil.rmtree(run_dir, ignore_errors=True)  # a refused inventory leaves no run folder
        raise
    run.lab = lab
    _add_site_checks(config, run, opt.site_checks)
    control = lab
    if control is None and getattr(run.inventory, "lab", None) is not None and run.inventory.lab.control_url:
        from entsso.lab.launcher import LabControl

        control = LabControl(run.inventory.lab.control_url)  # a hand-started lab plays the operator too
    run.operator = Operator(write=_console_writer(config), lab=control)
    _attach_phase_log(run)
    run.calls.listeners.append(lambda r: run.call_trace.append(
        {"phase": run.current_phase, "host": r.host, "operation": r.operation, "outcome": r.outcome,
         "started": r.started, "seconds": round(r.seconds, 4)}))
    config.stash[RUN_KEY] = run
    _RUNS.append(run)
    _catch_signals(run)
    if options.apply:
        _lock_estate(run)
    run.journal.write("run_started", change_ticket=options.change_ticket, apply=options.apply,
                      resume=options.resume, inventory=inventory_path,
                      change_started=(prior.change_started if prior and prior.change_started else None))
    if not getattr(opt, "htmlpath", None) and not getattr(opt, "collectonly", False):
        opt.htmlpath = str(run_dir / "report.html")
    opt.self_contained_html = True
    if not getattr(opt, "xmlpath", None):
        opt.xmlpath = str(run_dir / "junit.xml")


def _add_site_checks(config: pytest.Config, run: Run, override: str | None) -> None:
    """Collect the site's checks (entsso.change.sitechecks) with the suite's own tests."""
    from entsso.change import sitechecks

    folder = sitechecks.folder_of(run.inventory, override)
    config.stash[SITE_CHECKS_KEY] = folder
    if folder is None:
        return
    if not folder.is_dir():
        shutil.rmtree(run.dir, ignore_errors=True)
        raise pytest.UsageError(f"site checks: {folder} is not a folder (the inventory's site_checks, or "
                                "--site-checks, names it)")
    if not any(Path(a).resolve() == folder for a in config.args):
        config.args.append(str(folder))


class _PhaseLog(logging.Handler):
    """The entsso loggers' records, kept per phase so the report shows each phase's log with its phase
    (pytest would file a session fixture's whole setup log under the first test that needed it)."""

    def __init__(self, run: Run) -> None:
        super().__init__(logging.INFO)
        self.run = run
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.run.phase_logs.setdefault(self.run.current_phase, []).append(self.format(record))
        except Exception:  # noqa: BLE001 - logging must never break the change
            pass


def _attach_phase_log(run: Run) -> None:
    logger = logging.getLogger("entsso")
    logger.setLevel(logging.INFO)
    logger.addHandler(_PhaseLog(run))


def _catch_signals(run: Run) -> None:
    """SIGINT (Ctrl-C), SIGTERM and SIGHUP (the admin box's session lost) interrupt the run as pytest's
    KeyboardInterrupt does, after marking the run interrupted: no new step starts (steps on other hosts
    finish the call they are in and are journalled), the journal records the interruption with the steps
    in flight, and the verdict is `interrupted`, never a success."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return

    def interrupt(signum: int, frame: Any) -> None:  # noqa: ARG001
        name = signal.Signals(signum).name
        first = run.interrupted is None
        run.interrupted = run.interrupted or name
        if first or signum == signal.SIGINT:
            raise KeyboardInterrupt(f"{name}: the run was interrupted")

    for sig in (signal.SIGINT, signal.SIGTERM, getattr(signal, "SIGHUP", None)):
        if sig is not None:
            signal.signal(sig, interrupt)


def pytest_keyboard_interrupt(excinfo: pytest.ExceptionInfo[BaseException]) -> None:  # noqa: ARG001
    """Journal the interruption: where the change was and which steps were in flight."""
    run = _RUNS[-1] if _RUNS else None
    if run is None or run.journal is None:
        return
    run.interrupted = run.interrupted or "SIGINT"
    in_flight = [{"phase": k[0], "step": k[1], "host": k[2], "since": ts} for k, ts in list(run.in_flight.items())]
    run.journal.write("interrupted", signal=run.interrupted, phase=run.current_phase, in_flight=in_flight,
                      resume=run.resume_command())


_RUNS: list[Run] = []  # the run of this process (pytest_keyboard_interrupt is not given the config)


def _lock_estate(run: Run) -> None:
    """One change at a time per SSO system (entsso.change.lock); refused before any test runs."""
    from entsso.change.lock import EstateLock, EstateLocked, owner_record
    from entsso.remote.sql import SqlError

    lock = EstateLock(run.sql.ssodb.settings, run.sql._password, run.cluster_name, run.sql.names.ssodb)
    try:
        lock.acquire(reports=run.dir.parent)  # a refusal names the holder from its journal there
    except (EstateLocked, SqlError) as exc:
        run.journal.write("refused", reason=str(exc))
        raise pytest.UsageError(f"cannot take the estate lock: {exc}") from None
    run.estate_lock = lock
    run.journal.write("estate_locked", resource=lock.resource, ticket=run.options.change_ticket, **owner_record())


def _console_writer(config: pytest.Config):  # type: ignore[no-untyped-def]
    """Lines for the person at the console, shown live even while pytest captures output."""
    def write(line: str) -> None:
        capman = config.pluginmanager.getplugin("capturemanager")
        tr = config.pluginmanager.getplugin("terminalreporter")
        if capman is None or tr is None:
            print(line, flush=True)
            return
        with capman.global_and_fixture_disabled():
            tr.write_line(line)

    return write


def _check_options(options: Options) -> Any:
    from entsso.change.journal import prior_run

    if options.apply and not options.change_ticket and not options.resume:
        raise pytest.UsageError(
            "--apply changes the estate and needs --change-ticket ID: the change record this run is "
            "evidence for (e.g. --change-ticket CHG0012345).")
    if options.change_ticket is not None and not options.change_ticket.strip():
        raise pytest.UsageError("--change-ticket is empty: give the change record's ID (e.g. CHG0012345).")
    if options.backout and not options.change_ticket and not options.resume:
        raise pytest.UsageError("--backout needs --change-ticket ID: the change to put back (e.g. --change-ticket "
                                "CHG0012345).")
    if options.backout and options.keep_silenced:
        raise pytest.UsageError("--backout puts BizTalk back; it cannot be combined with --keep-silenced.")
    if options.keep_silenced and not options.apply:
        raise pytest.UsageError("--keep-silenced only means something with --apply.")
    if not options.resume:
        return None
    journal = REPORTS / options.resume / "journal.jsonl"
    if not journal.exists():
        known = sorted(p.parent.name for p in REPORTS.glob("*/journal.jsonl"))[-5:]
        raise pytest.UsageError(
            f"--resume {options.resume}: no run of that id under {REPORTS}/ (no journal.jsonl). "
            f"Recent runs: {', '.join(known) or 'none'}.")
    prior = prior_run(journal)
    if options.change_ticket and prior.change_ticket and options.change_ticket != prior.change_ticket:
        raise pytest.UsageError(
            f"--resume {options.resume} was a run for change {prior.change_ticket}, not {options.change_ticket}: "
            "resume it with its own ticket (or leave --change-ticket out).")
    options.change_ticket = options.change_ticket or prior.change_ticket
    options.apply = True
    return prior


def _load_run(run_id: str, run_dir: Path, options: Options, inventory_path: str | None, prior: Any) -> Run:
    from entsso.inventory import InventoryError, load_inventory
    from entsso.change.run import build_run

    try:
        inventory = load_inventory(inventory_path, prompt=os.isatty(0))
    except InventoryError as exc:
        raise pytest.UsageError(str(exc)) from None
    from entsso.tools import doctor

    missing = doctor.blocking(inventory)  # what this admin box lacks for it: named before anything connects
    if missing:
        raise pytest.UsageError(f"this machine lacks what {inventory.path} needs; nothing was contacted:\n"
                                + doctor.render(missing)
                                + "\nInstall it and run again (python -m entsso doctor --inventory=FILE checks it).")
    return build_run(run_id, run_dir, options, inventory, prior)


def pytest_unconfigure(config: pytest.Config) -> None:
    run = config.stash.get(RUN_KEY, None)
    if run is None:
        return
    try:
        if getattr(run, "estate_lock", None) is not None:
            run.estate_lock.release()
            if run.journal is not None:
                run.journal.write("estate_unlocked", resource=run.estate_lock.resource)
        run.close_hosts()  # the shells kept on the hosts, while the hosts (and a lab) still answer
        if run.lab is not None:
            try:
                (run.dir / "lab-state.json").write_text(json.dumps(run.lab.state(), indent=2, default=str))
            finally:
                run.lab.stop()
        verdict.write_summary(run, config)
    finally:
        run.close()
        if getattr(config.option, "collectonly", False):
            shutil.rmtree(run.dir, ignore_errors=True)  # a listing of the tests is not a run


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:  # noqa: ARG001
    """The verdict as the console's last word, with where BizTalk is and how to continue."""
    verdict.to_console(terminalreporter, config)


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    """Before junit.xml and report.html are written: the verdict, and an interrupted run's unfinished
    phase as a failed test of its own (pytest reports nothing for a test whose setup was interrupted, so
    junit.xml would count an interrupted change as 0 failures)."""
    run = session.config.stash.get(RUN_KEY, None)
    if run is None:
        return
    out = verdict.conclude(session.config)
    if out and out["verdict"] == "interrupted":
        from _pytest.reports import TestReport

        phase = out.get("phase") or run.current_phase
        text = (f"{out['reason']}\n{out.get('continue') or ''}").strip()
        report = TestReport(nodeid=f"change::{phase}", location=("change", 0, f"phase {phase}"), keywords={},
                            outcome="failed", longrepr=text, when="call")
        session.config.hook.pytest_runtest_logreport(report=report)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]):  # type: ignore[no-untyped-def]
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
    if run is not None and report.when == "setup" and report.failed and (run.stopped or run.interrupted):
        _once(item, report, run)
    if run is not None and report.failed and item.nodeid not in run.failed_tests:
        run.failed_tests.append(item.nodeid)
    outcomes = item.config.stash.setdefault(OUTCOMES_KEY, {})
    if report.when == "call" or report.outcome != "passed":
        state = "error" if report.when != "call" and report.failed else report.outcome
        if report.when == "call" or item.nodeid not in outcomes or state != "passed":
            outcomes[item.nodeid] = state


STOP_REPORTED_KEY = pytest.StashKey[str]()


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


def pytest_runtest_setup(item: pytest.Item) -> None:
    """A change that passed its gate before it acted does not re-judge readiness: the estate is mid-change
    by design. Its record (or this admin box's journal) says which run passed the gate, and the report
    says so. Nor, in a run that continues the change, its preparation once phase 2 finished (a read-only
    gate of the ticket re-judges it: that is its point)."""
    run = item.config.stash.get(RUN_KEY, None)
    if run is None or not run.options.change_ticket:
        return
    if not (item.get_closest_marker("readiness") or item.get_closest_marker("prepared")):
        return
    h = run.history()
    if h.gate_passed_by and item.get_closest_marker("readiness") and not item.get_closest_marker("change_guard"):
        pytest.skip(f"change {h.ticket} {'is complete' if h.completed else 'is under way'}: its readiness was "
                    f"verified by run {h.gate_passed_by} before it changed anything")
    if run.options.apply and "backup" in h.finished_phases and item.get_closest_marker("prepared"):
        # proved when phase 2 finished; later phases change it by design (phase 7 starts BizTalk again),
        # and phase 1, run again before phase 3, verifies BizTalk silent itself
        pytest.skip(f"change {h.ticket}: its preparation (phases 1-2) was verified by its runs "
                    f"({', '.join(h.runs)})")


def _is_site_check(config: pytest.Config, path: Path) -> bool:
    from entsso.change.sitechecks import is_site_check

    return is_site_check(path, config.stash.get(SITE_CHECKS_KEY, None))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Readiness before prepared before post (stable): the gate's tests report before a phase acts."""
    def rank(item: pytest.Item) -> int:
        return min((PHASE_ORDER[m.name] for m in item.iter_markers() if m.name in PHASE_ORDER), default=9)

    items.sort(key=rank)
    run = config.stash.get(RUN_KEY, None)
    if run is not None:  # --backout runs the backout's own proof; a change never does
        backout = run.options.backout
        keep = [i for i in items if bool(i.get_closest_marker("backout")) == backout]
        gone = [i for i in items if bool(i.get_closest_marker("backout")) != backout]
        # the site's checks after the change run only where the change runs to its end (with the suite's
        # own post tests): `pytest tests_pre --apply` must not run phases 3-7 for them
        site_after = [i for i in keep if _is_site_check(config, i.path) and i.get_closest_marker("post")]
        if site_after and not any(i.get_closest_marker("post") and not _is_site_check(config, i.path) for i in keep):
            keep, gone = [i for i in keep if i not in site_after], gone + site_after
        if run.options.plan:  # what is not done yet is the test plan, not a failure: only the gate runs
            later = [i for i in keep if not i.get_closest_marker("readiness")]
            config.stash[TEST_PLAN_KEY] = {
                "readiness (run now)": [i.name for i in keep if i.get_closest_marker("readiness")],
                **{m: [i.name for i in later if i.get_closest_marker(m)] for m in ("prepared", "post")}}
            keep, gone = [i for i in keep if i.get_closest_marker("readiness")], gone + later
        if gone:
            config.hook.pytest_deselected(items=gone)
            items[:] = keep
    config.stash[ITEMS_KEY] = items  # the same list: pytest's later deselection (-m, -k) shows in it


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrise by the estate's own names so the report names each host, instance and job."""
    run = metafunc.config.stash.get(RUN_KEY, None)
    if run is None:
        return
    names = metafunc.fixturenames
    if "host" in names and _is_site_check(metafunc.config, metafunc.definition.path):
        from entsso.change.sitechecks import MOMENTS

        marks = {"gate": pytest.mark.readiness, "after": pytest.mark.post}
        metafunc.parametrize("host", [pytest.param((name, moment), marks=marks[moment], id=f"{moment}-{name}")
                                      for moment in MOMENTS for name in run.hosts], indirect=True)
    if "node" in names:
        metafunc.parametrize("node", run.nodes)
    if "biztalk_server" in names:
        metafunc.parametrize("biztalk_server", run.biztalk_servers)
    if "sso_host" in names:
        metafunc.parametrize("sso_host", list(run.hosts))
    if "job" in names:
        metafunc.parametrize("job", run.job_names)
    if "host_instance" in names:
        b = run.baseline()
        pairs = [(server, name) for server, inst in b.host_instances.items() for name in inst]
        metafunc.parametrize("host_instance", pairs, ids=[f"{s}-{n}" for s, n in pairs])
    if "database" in names:
        s = run.snapshot()
        # the databases the change depends on, as the inventory names them, whether or not the job's view
        # lists them (a missing SSODB row is a failed test, not a missing one), then the rest the job backs up
        names = run.inventory.sql.databases
        dbs = [names.ssodb, names.management]
        listed = [d.database for d in s.sql.backups.databases] if s.sql.backups else []
        dbs += [d for d in listed if d.lower() not in {x.lower() for x in dbs}]
        metafunc.parametrize("database", dbs)


@pytest.fixture(scope="session")
def run(request: pytest.FixtureRequest) -> Run:
    r = request.config.stash.get(RUN_KEY, None)
    if r is None:
        pytest.fail("the entsso suite needs an estate: --inventory FILE or --lab", pytrace=False)
    return r


@pytest.fixture(scope="session")
def estate(run: Run):  # type: ignore[no-untyped-def]
    """The estate as first observed: each host asked once."""
    started = time.monotonic()
    snap = run.snapshot()
    _find_change_start(run)  # before any phase acts
    run.journal.write("snapshot", phase="estate", seconds=round(time.monotonic() - started, 3),
                      winrm_calls=run.calls.count(), sql_statements=run.statements.count())
    return snap


def _find_change_start(run: Run) -> datetime:
    """When this change began (its backups must be newer): Run.change_started finds it once and journals
    it with its source (the change record, the master secret backup, or now)."""
    return run.change_started


@pytest.fixture(scope="session")
def baseline(run: Run, estate):  # type: ignore[no-untyped-def]
    """What ran and was enabled before the change (kept for phase 7 and for --resume)."""
    return run.baseline()


@pytest.fixture
def judge(request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    """judge(finding, fact): attach the fact judged as evidence, then fail with the finding if any."""
    def _judge(finding: Any, fact: Any = None) -> None:
        if fact is not None:
            _attach(request, "fact judged", fact)
        if finding is not None:
            pytest.fail(str(finding), pytrace=False)

    return _judge


def _attach(request: pytest.FixtureRequest, name: str, fact: Any) -> None:
    text = json.dumps(_plain(fact), indent=2, default=str, sort_keys=True)
    extras = request.node.stash.setdefault(EVIDENCE_KEY, [])
    extras.append((name, text))


def _plain(o: Any) -> Any:
    """A fact as JSON-able data, without the raw documents ("raw") it was parsed from. One pass over the
    fields (dataclasses.asdict deep-copies first: most of a gate test's own time on a large estate)."""
    if is_dataclass(o) and not isinstance(o, type):
        return {f.name: _plain(getattr(o, f.name)) for f in fields(o) if f.name != "raw"}
    if isinstance(o, dict):
        return {str(k): _plain(v) for k, v in o.items() if k != "raw"}
    if isinstance(o, (list, tuple)):
        return [_plain(v) for v in o]
    if isinstance(o, datetime):
        return o.isoformat()
    return o


EVIDENCE_KEY = pytest.StashKey[list]()
PHASES_SET_UP_KEY = pytest.StashKey[list]()
PHASES_SEEN_KEY = pytest.StashKey[set[str]]()  # the phases whose log a test's setup report already carries



@pytest.fixture(scope="session")
def testinfra_host(run: Run):  # type: ignore[no-untyped-def]
    """testinfra_host("NODE1") -> a pytest-testinfra Host (winrm backend, cmd shell) for simple per-host
    checks (host.run, host.check_output), reached with the suite's own WinRM settings and credentials,
    never through a URL that holds the password (entsso.change.sitechecks). PowerShell goes through entsso.remote.winrm."""
    from entsso.change.sitechecks import testinfra_host as make

    cache: dict[str, Any] = {}

    def get(name: str) -> Any:
        if name not in cache:
            cache[name] = make(run, name)
        return cache[name]

    return get


@pytest.fixture
def host(request: pytest.FixtureRequest, run: Run, testinfra_host):  # type: ignore[no-untyped-def]
    """testinfra's `host`, for the site's checks: one of the estate's hosts, in the gate (before anything
    changes) or after the change (once phase 7 has put BizTalk back). Overrides pytest-testinfra's own
    `host` (its --hosts URLs would carry the password)."""
    param = getattr(request, "param", None)
    if param is None:
        pytest.fail("`host` is the site checks' fixture: put the test in the folder the inventory's site_checks "
                    "names (or --site-checks)", pytrace=False)
    name, moment = param
    if moment == "after":
        request.getfixturevalue("resumed")  # the whole change, as the suite's own post tests have it
    h = testinfra_host(name)
    h.estate_name = name
    return h
