"""The run's session, for entsso.plugin: from pytest's options to a Run (the options checked, the run
directory, the inventory loaded and checked before anything connects, the site's checks), what the run
keeps while it lasts (its log per phase, its WinRM calls, the signals that interrupt it, the estate's
lock, its journal, where its report and junit.xml go), and its end (the lock released, the hosts' shells
closed, the lab's state, summary.json). The lab itself is started by entsso.plugin, the one module that
imports entsso.lab: here a lab is anything with stop()."""
from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

import pytest

from entsso.change.journal import PriorRun
from entsso.change.run import Options, Run
from entsso.report import verdict
from entsso.report.keys import RUN_KEY, SITE_CHECKS_KEY

REPORTS = Path(os.environ.get("ENTSSO_REPORTS", "reports"))


def latest_report() -> str:
    runs = sorted(p for p in REPORTS.glob("*/report.html"))
    return str(runs[-1]) if runs else "(no report yet)"


# --- from pytest's options to a Run -----------------------------------------------------------------------
def wants_estate(config: pytest.Config) -> bool:
    """Whether this pytest process runs the suite against an estate: not for our own selftest, not in an
    xdist worker, not for pytest's own help."""
    if not _suite_requested(config) or getattr(config, "workerinput", None) is not None:
        return False
    opt = config.option
    # pytest's own help: no estate needed, nothing created
    return not (getattr(opt, "help", False) or getattr(opt, "version", False)
                or getattr(opt, "showfixtures", False) or getattr(opt, "markers", False))


def _suite_requested(config: pytest.Config) -> bool:
    """True unless every path given is our own selftest (pytest selftest)."""
    args = [a for a in config.args if not a.startswith("-")]
    if not args:
        return True
    return any(not Path(a.split("::")[0]).resolve().is_relative_to(Path(config.rootpath, "selftest").resolve())
               for a in args)


def lab_scenario(config: pytest.Config) -> str | None:
    """--lab's scenario, if any. `pytest --lab tests_pre`: argparse took the path as the scenario; it is a
    path to collect, and the scenario the default."""
    opt = config.option
    lab_value = opt.lab
    if lab_value and not lab_value.endswith((".yml", ".yaml")) and Path(lab_value).exists():
        config.args.append(lab_value)
        opt.lab = lab_value = "default"
    return lab_value


def options_of(config: pytest.Config, lab_value: str | None) -> tuple[Options, PriorRun | None]:
    """The run's options from the command line, checked (a usage error names what is wrong), and the run a
    --resume continues."""
    opt = config.option
    if opt.plan and (opt.apply or opt.backout or opt.resume):
        raise pytest.UsageError("--plan is read-only: leave out --apply, --backout and --resume (the plan says what "
                                "--apply --change-ticket would do).")
    options = Options(apply=opt.apply or opt.backout, change_ticket=opt.change_ticket, resume=opt.resume,
                      allow_reboot=opt.allow_reboot, allow_sql_failover=opt.allow_sql_failover,
                      keep_silenced=opt.keep_silenced, backout=opt.backout,
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
    return options, prior


def _check_options(options: Options) -> PriorRun | None:
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


def new_run_dir(change_ticket: str | None) -> Path:
    """reports/<run id>, made now (a second run in the same second gets .2, .3, …)."""
    from entsso.change.run import new_run_id

    run_id = new_run_id(change_ticket)
    run_dir = REPORTS / run_id
    n = 1
    while run_dir.exists():
        n += 1
        run_dir = REPORTS / f"{run_id}.{n}"
    run_dir.mkdir(parents=True)
    return run_dir


def open_run(run_dir: Path, options: Options, inventory_path: str | None, prior: PriorRun | None,
             lab: Any) -> Run:
    """The Run for the inventory; a refused inventory stops the lab and leaves no run folder."""
    try:
        run = _load_run(run_dir.name, run_dir, options, inventory_path, prior)
    except BaseException:
        if lab:
            lab.stop()
        shutil.rmtree(run_dir, ignore_errors=True)  # a refused inventory leaves no run folder
        raise
    run.lab = lab
    return run


def _load_run(run_id: str, run_dir: Path, options: Options, inventory_path: str | None,
              prior: PriorRun | None) -> Run:
    from entsso.change.run import build_run
    from entsso.inventory import InventoryError, load_inventory

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


def add_site_checks(config: pytest.Config, run: Run, override: str | None) -> None:
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


def console_writer(config: pytest.Config) -> Callable[[str], None]:
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


# --- while the run lasts ------------------------------------------------------------------------------------
def start(config: pytest.Config, run: Run, inventory_path: str | None, prior: PriorRun | None) -> None:
    """The run begins: its log kept per phase and its WinRM calls traced, shared through config.stash,
    interruptible, holding the estate's lock when it changes the estate, journalled; report.html and
    junit.xml in its folder unless the command line put them elsewhere."""
    _attach_phase_log(run)
    _trace_calls(run)
    config.stash[RUN_KEY] = run
    _RUNS.append(run)
    _catch_signals(run)
    checklist = None
    if run.options.apply:
        checklist = _acknowledge_checklist(config, run)
        _confirm_production(config, run)
        _lock_estate(run)
    assert run.journal is not None  # build_run opened it
    run.journal.write("run_started", change_ticket=run.options.change_ticket, apply=run.options.apply,
                      resume=run.options.resume, inventory=inventory_path,
                      change_started=(prior.change_started if prior and prior.change_started else None))
    if checklist is not None:
        run.journal.write("checklist", **checklist)
    _report_paths(config.option, run.dir)


def _report_paths(opt: Any, run_dir: Path) -> None:
    if not getattr(opt, "htmlpath", None) and not getattr(opt, "collectonly", False):
        opt.htmlpath = str(run_dir / "report.html")
    opt.self_contained_html = True
    if not getattr(opt, "xmlpath", None):
        opt.xmlpath = str(run_dir / "junit.xml")


class _PhaseLog(logging.Handler):
    """The entsso loggers' records, kept per phase so the report shows each phase's log with its phase
    (pytest would file a session fixture's whole setup log under the first test that needed it)."""

    def __init__(self, run: Run) -> None:
        super().__init__(logging.INFO)
        self.run = run
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        with contextlib.suppress(Exception):  # logging must never break the change
            self.run.phase_logs.setdefault(self.run.current_phase, []).append(self.format(record))


def _attach_phase_log(run: Run) -> None:
    logger = logging.getLogger("entsso")
    logger.setLevel(logging.INFO)
    logger.addHandler(_PhaseLog(run))


def _trace_calls(run: Run) -> None:
    """Every WinRM call with the phase it was made in (summary.json's calls)."""
    run.calls.listeners.append(lambda r: run.call_trace.append(
        {"phase": run.current_phase, "host": r.host, "operation": r.operation, "outcome": r.outcome,
         "started": r.started, "seconds": round(r.seconds, 4), "attempt": r.attempt}))


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
        if getattr(signal, "SIGHUP", None) == signum:
            _detach_console(console)  # the session is gone: what is still written goes nowhere; the files still
        first = run.interrupted is None
        run.interrupted = run.interrupted or name
        if first:
            raise KeyboardInterrupt(f"{name}: the run was interrupted")
        if run.reading_at_end and signum == signal.SIGINT:  # Ctrl-C again: the verdict without the estate's last read
            raise KeyboardInterrupt(f"{name}: the estate's last read cut short")
        # a second Ctrl-C while the run writes its evidence is not obeyed: no traceback, the verdict still comes
        with contextlib.suppress(OSError):
            os.write(2, b"\nentsso: already stopping; the report, summary.json and junit.xml are being written\n")

    console = _console_files()
    for sig in (signal.SIGINT, signal.SIGTERM, getattr(signal, "SIGHUP", None)):
        if sig is not None:
            signal.signal(sig, interrupt)


def _console_files() -> set[tuple[int, int]]:
    """The files stdout and stderr are at the start (a terminal, a pipe to tee): (device, inode)."""
    out = set()
    for fd in (1, 2):
        with contextlib.suppress(OSError):
            st = os.fstat(fd)
            out.add((st.st_dev, st.st_ino))
    return out


def _detach_console(console: set[tuple[int, int]]) -> None:
    """A lost session (SIGHUP): the terminal is gone and writing to it fails (EIO, or EPIPE through a tee),
    which would end the run before report.html, summary.json and junit.xml are written. Every descriptor
    open on the console — stdout and stderr, and the copies pytest's output capture keeps to restore them —
    goes to /dev/null instead."""
    try:
        fds = [int(n) for n in os.listdir("/proc/self/fd")]
    except OSError:
        fds = list(range(256))
    with contextlib.suppress(OSError):
        null = os.open(os.devnull, os.O_WRONLY)
        for fd in fds:
            with contextlib.suppress(OSError):
                st = os.fstat(fd)
                if (st.st_dev, st.st_ino) in console or fd in (1, 2):
                    os.dup2(null, fd)
        os.close(null)


def pytest_keyboard_interrupt(excinfo: pytest.ExceptionInfo[BaseException]) -> None:
    """Journal the interruption: where the change was and which steps were in flight."""
    run = _RUNS[-1] if _RUNS else None
    if run is None or run.journal is None:
        return
    if isinstance(excinfo.value, pytest.Session.Interrupted) and run.interrupted:
        return  # the suite stopped the session itself (entsso.outcomes.record_internal_error journalled why)
    run.interrupted = run.interrupted or "SIGINT"
    in_flight = [{"phase": k[0], "step": k[1], "host": k[2], "since": ts} for k, ts in list(run.in_flight.items())]
    run.journal.write("interrupted", signal=run.interrupted, phase=run.current_phase, in_flight=in_flight,
                      resume=run.resume_command())


_RUNS: list[Run] = []  # the run of this process (pytest_keyboard_interrupt is not given the config)


def _confirm_production(config: pytest.Config, run: Run) -> None:
    """On a terminal, a change (--apply or --backout) to an inventory whose `environment` says production
    asks the operator to type the ticket again (nothing has connected yet). No prompt when stdin is not a
    terminal (a scheduler, a pipe)."""
    import re
    import sys

    environment = str(getattr(run.inventory, "environment", "") or "")
    if not re.search(r"prod", environment, re.I):
        return
    fd = _terminal_stdin(config)
    if fd is None:
        return
    what = "back out" if run.options.backout else "change"
    sys.stdout.write(f"entsso: {environment} is production: you are about to {what} it for change "
                     f"{run.options.change_ticket}. Type the change ticket again to go on: ")
    sys.stdout.flush()
    answer = _read_line(fd)
    if answer != run.options.change_ticket:
        _abandon(config, run, f"the ticket typed again ({answer!r}) is not {run.options.change_ticket}: nothing "
                 "was done, nothing connected")


def _acknowledge_checklist(config: pytest.Config, run: Run) -> dict[str, Any]:
    """The plan's checklist (monitoring in maintenance, no tool starting ENTSSO: entsso.change.plan) before a
    change: on a terminal the operator types yes, unless --checklist-done said it; anything else changes nothing.
    The answer goes to the journal and the report: acknowledged, how, by whom, when."""
    import getpass
    import sys
    from datetime import UTC, datetime

    from entsso.change.plan import operator_checklist

    when = datetime.now(UTC).isoformat(timespec="seconds")
    items = operator_checklist(run)
    if run.options.backout:
        return {"acknowledged": False, "how": "a backout: not asked", "items": items, "at": when}
    if run.lab is not None:
        return {"acknowledged": False, "how": "a lab: no monitoring to pause", "items": items, "at": when}
    if config.option.checklist_done:
        return {"acknowledged": True, "how": f"--checklist-done on {getpass.getuser()}'s command line", "items": items,
                "at": when}
    fd = _terminal_stdin(config)
    if fd is None:
        return {"acknowledged": False, "how": "not asked: no terminal, and no --checklist-done", "items": items,
                "at": when}
    sys.stdout.write("entsso: before phase 1, what the suite cannot check:\n" + "".join(f"  - {x}\n" for x in items)
                     + "Type yes when this is done: ")
    sys.stdout.flush()
    answer = _read_line(fd)
    if answer.lower() != "yes":
        _abandon(config, run, f"the checklist was not acknowledged ({answer!r}, not yes): nothing was done, nothing "
                 "connected. Do it, then run the same command again (or add --checklist-done)")
    return {"acknowledged": True, "how": f"{getpass.getuser()} typed yes on the terminal", "items": items, "at": when}


def _abandon(config: pytest.Config, run: Run, why: str) -> NoReturn:
    """The operator said no at a prompt before anything connected: no run (nothing to conclude, no summary, its
    folder removed), and pytest's usage error says why."""
    del config.stash[RUN_KEY]
    _RUNS.remove(run)
    run.close()
    shutil.rmtree(run.dir, ignore_errors=True)
    raise pytest.UsageError(why)


def _read_line(fd: int) -> str:
    typed = b""
    while not typed.endswith(b"\n"):
        chunk = os.read(fd, 1)
        if not chunk:
            break
        typed += chunk
    return typed.decode(errors="replace").strip()


def _terminal_stdin(config: pytest.Config) -> int | None:
    """The operator's stdin as a descriptor when it is a terminal, else None. pytest's output capture holds
    stdin on /dev/null from before this plugin loads (its saved copy is the real one), and the prompt comes
    while the capture of stdout is suspended (configure time), so the real descriptor is read directly."""
    capturing = getattr(config.pluginmanager.getplugin("capturemanager"), "_global_capturing", None)
    saved = getattr(getattr(capturing, "in_", None), "targetfd_save", None)
    fd = saved if isinstance(saved, int) else 0
    try:
        return fd if os.isatty(fd) else None
    except OSError:
        return None


def start_banner(config: pytest.Config) -> None:
    """The change's first lines: the estate (its environment, the inventory's path and SHA-256), the
    ticket, the mode, the window's absolute end and the whole change's worst case."""
    run = config.stash.get(RUN_KEY, None)
    if run is None or not run.options.apply:
        return
    from entsso.change import window

    write = console_writer(config)
    inv = run.inventory
    mode = ("backout (puts the estate back in service)" if run.options.backout else
            "apply (changes the estate)")
    write(f"entsso: change {run.options.change_ticket} — {mode} — estate {getattr(inv, 'environment', '?')} "
          f"({getattr(inv, 'path', '?')}, SHA-256 {getattr(inv, 'sha256', '?')})")
    try:
        worst = (f"the whole change takes at most {window.worst_case(run) / 60:.0f} min with a backout from its "
                 "latest stop")
    except Exception:  # noqa: BLE001 - a banner never stops the change
        worst = "the worst case could not be worked out"
    ends = run.options.window_ends
    write(f"  window ends {ends.isoformat(timespec='minutes')} ({ends.tzname() or 'local'}); {worst}" if ends else
          f"  no change window given (--window-ends); {worst}")


def _lock_estate(run: Run) -> None:
    """One change at a time per SSO system (entsso.change.lock); refused before any test runs."""
    from entsso.change.lock import EstateLock, EstateLocked, owner_record
    from entsso.remote.sql import SqlError

    assert run.journal is not None  # build_run opened it
    lock = EstateLock(run.sql.ssodb.settings, run.sql._password, run.cluster_name, run.sql.names.ssodb)
    try:
        lock.acquire(reports=run.dir.parent)  # a refusal names the holder from its journal there
    except (EstateLocked, SqlError) as exc:
        run.journal.write("refused", reason=str(exc))
        raise pytest.UsageError(f"cannot take the estate lock: {exc}") from None
    run.estate_lock = lock
    run.journal.write("estate_locked", resource=lock.resource, ticket=run.options.change_ticket, **owner_record())


# --- the end ------------------------------------------------------------------------------------------------
def pytest_unconfigure(config: pytest.Config) -> None:
    """The estate's lock released, the hosts' shells closed, the lab's state kept and the lab stopped,
    summary.json written; a --collect-only listing leaves no run folder."""
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
