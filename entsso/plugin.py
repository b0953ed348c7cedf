"""The pytest plugin (conftest.py and `-p entsso.plugin` load this module): options, the inventory (checked
before anything connects), the run directory, the lab for `--lab`, parametrisation by the estate's own
names, the gate between phases, and the report files (report.html, junit.xml, journal.jsonl, summary.json,
lab-state.json).

Its jobs are in modules beside it, and every hook and fixture is reachable from here, where pytest looks:
entsso.session (from the options to a Run, and the run's end), entsso.collection (which tests run, in
which order, with which parameters), entsso.outcomes (each test's outcome, the verdict at the end) and
entsso.base_fixtures (run, estate, baseline, judge, host). The lab is started here: this is the one module
that imports entsso.lab.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from entsso import session
from entsso.base_fixtures import baseline, estate, host, judge, run, testinfra_host
from entsso.change.operator import Operator
from entsso.change.run import Run
from entsso.collection import pytest_collection_modifyitems, pytest_generate_tests, pytest_runtest_setup
from entsso.outcomes import pytest_runtest_makereport, pytest_runtestloop, pytest_sessionfinish
from entsso.report.keys import RUN_KEY
from entsso.session import REPORTS, latest_report, pytest_keyboard_interrupt, pytest_unconfigure, start_banner

__all__ = [
    "REPORTS", "RUN_KEY", "baseline", "estate", "host", "judge", "latest_report", "pytest_addoption",
    "pytest_collection_modifyitems", "pytest_configure", "pytest_generate_tests", "pytest_keyboard_interrupt",
    "pytest_runtest_makereport", "pytest_runtest_setup", "pytest_runtestloop", "pytest_sessionfinish",
    "pytest_sessionstart", "pytest_unconfigure", "run", "testinfra_host",
]

MARKERS = ("readiness", "prepared", "post", "slow", "change_guard", "backout")


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
    g.addoption("--allow-sql-failover", action="store_true",
                help="the MSS inside SQL Server's own cluster role: accept that each move of the SSO group moves "
                     "SQL Server (an outage of every BizTalk database while BizTalk is silenced)")
    g.addoption("--keep-silenced", action="store_true", help="skip phase 7: leave BizTalk silenced")
    g.addoption("--checklist-done", action="store_true",
                help="the operator has done the plan's checklist (monitoring in maintenance): not asked on a terminal")
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


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    """The run, before anything is collected: the options checked, the run folder, the lab for --lab, the
    inventory loaded and checked, the site's checks, the operator's console, then the run begun
    (entsso.session.start)."""
    for marker in MARKERS:
        config.addinivalue_line("markers", f"{marker}: entsso phase marker")
    if not session.wants_estate(config):
        return
    lab_value = session.lab_scenario(config)
    options, prior = session.options_of(config, lab_value)
    run_dir = session.new_run_dir(options.change_ticket)
    lab = _start_lab(lab_value, run_dir, config.option.lab_speed) if lab_value else None
    inventory_path = str(lab.inventory_path) if lab is not None else config.option.inventory
    the_run = session.open_run(run_dir, options, inventory_path, prior, lab)
    session.add_site_checks(config, the_run, config.option.site_checks)
    the_run.operator = Operator(write=session.console_writer(config), lab=_lab_control(the_run))
    session.start(config, the_run, inventory_path, prior)


def _start_lab(scenario: str, run_dir: Path, speed: float | None) -> Any:
    """--lab: a lab (entsso.lab.launcher.LabProcess) for this run, its inventory in the run folder; its
    credentials exported, as an operator would export an estate's."""
    from entsso.lab.launcher import LabError, LabProcess

    lab = LabProcess(scenario, run_dir / "lab-inventory.yml", speed=speed)
    try:
        lab.start()
    except LabError as exc:
        raise pytest.UsageError(str(exc)) from None
    os.environ.update(lab.env)  # the lab's credentials, as an operator would export them
    return lab


def _lab_control(run: Run) -> Any:
    """The lab that plays the operator (the instructions it is given, it carries out): the run's own
    (--lab), or a hand-started lab its inventory names; None for a real estate."""
    if run.lab is not None:
        return run.lab
    if getattr(run.inventory, "lab", None) is not None and run.inventory.lab.control_url:
        from entsso.lab.launcher import LabControl

        return LabControl(run.inventory.lab.control_url)  # a hand-started lab plays the operator too
    return None


@pytest.hookimpl(trylast=True)
def pytest_sessionstart(session: pytest.Session) -> None:
    """The change's start banner (entsso.session.start_banner), once the console is there."""
    start_banner(session.config)
