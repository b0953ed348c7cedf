"""The change-ticket report: pytest-html's report.html, made to tell the change's story.

Title and environment table (ticket, operator, mode, inventory and its hash, cluster, versions), a
timeline of every phase and operation from the journal at the top — rebuilt after every test, with
pytest-html's generate_report_on_test, so a run that dies still leaves the story so far — and, when a
phase stopped, where the estate is and what to do next. Secrets are scrubbed from every report before
pytest-html sees it, and from every file of the run directory at the end.

This module holds pytest-html's hooks; the HTML they put in the report is entsso.report.html's.
"""
from __future__ import annotations

import getpass
import time
from collections.abc import Generator
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import pytest

from entsso.change.run import Run
from entsso.report.html import BANNER_COLOURS, mode, next_steps_html, site_checks_html, story_html
from entsso.report import earlier
from entsso.report.keys import ITEMS_KEY, NOT_REPEATED_KEY, OUTCOMES_KEY, RUN_KEY, SITE_CHECKS_KEY
from entsso.report.scrub import scrub, scrub_dir, secret_values
from entsso.report.verdict import conclude


def _run(config: pytest.Config) -> Run | None:
    return config.stash.get(RUN_KEY, None)


def _html_report(config: pytest.Config) -> Any:
    try:
        from pytest_html.basereport import BaseReport
    except ImportError:
        return None
    return next((p for p in config.pluginmanager.get_plugins() if isinstance(p, BaseReport)), None)


def _pkg(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


def pytest_metadata(metadata: dict[str, Any], config: pytest.Config) -> None:
    run = _run(config)
    if run is None:
        return
    inv = run.inventory
    w = inv.winrm
    security = f"{w.transport} over {'https' if w.https else 'http'}"
    if getattr(w, "allow_insecure", False):
        security += " — INSECURE OPT-IN (allow_insecure: true)"
    if w.server_cert_validation != "validate":
        security += ", certificate validation OFF"
    if getattr(w, "proxy", None):
        security += f", through the proxy {w.proxy}"
    for key in ("CI", "Plugins", "Packages"):
        metadata.pop(key, None)
    metadata.update({
        "Environment": inv.environment,
        "Change ticket": run.options.change_ticket or "(none: read-only)",
        "Operator": getpass.getuser(),
        "Mode": mode(run),
        "Run": run.id,
        "Started (UTC)": run.started.isoformat(timespec="seconds"),
        "Inventory": str(getattr(inv, "path", "")),
        "Inventory SHA-256": getattr(inv, "sha256", ""),
        "Cluster name (MSS)": run.cluster_name,
        "Cluster nodes": ", ".join(run.nodes),
        "BizTalk servers": ", ".join(run.biztalk_servers),
        "WinRM": security,
        "Tools": f"entsso-upgrade {_pkg('entsso-upgrade')}, pywinrm {_pkg('pywinrm')}, pyodbc {_pkg('pyodbc')}, "
                 f"pytest {_pkg('pytest')}, pytest-html {_pkg('pytest-html')}",
    })


def pytest_html_results_table_row(report: Any, cells: list[str]) -> None:
    """A continued change's checks that an earlier run verified are not rows of their own (the story counts
    them, one line a reason: entsso.report.earlier)."""
    if getattr(report, "skipped", False) and earlier.done_earlier(earlier.skip_reason(report)):
        cells.clear()


def pytest_html_report_title(report: Any) -> None:
    report.title = "Enterprise SSO upgrade — change evidence"


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Scrub secrets from what the report will show, before pytest-html reads it."""
    secrets = secret_values()
    if not secrets:
        return
    if report.longrepr is not None:
        text = str(report.longrepr)
        if any(s in text for s in secrets):
            report.longrepr = scrub(text, secrets)
    report.sections = [(name, scrub(body, secrets)) for name, body in report.sections]


REWRITE_EVERY = 1.0  # seconds: during a change, the longest a crash can keep passed tests out of report.html
_LAST_WRITE = pytest.StashKey[float]()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Generator[None, Any, None]:
    """During a change report.html is rewritten after every phase, after a failed test, and after other
    tests at most every REWRITE_EVERY seconds: a crash still leaves it. Each rewrite renders every result so
    far, so a rewrite per test grew with the square of the tests (7 s of a 32-server run, bench). A
    read-only gate writes it once, at the end."""
    yield
    run = _run(item.config)
    if run is None or not run.options.apply:
        return  # a read-only gate's story is built once, at the session's end (pytest_sessionfinish)
    last = item.config.stash.get(_LAST_WRITE, 0.0)
    if item.nodeid in run.failed_tests or time.monotonic() - last >= REWRITE_EVERY:
        rewrite(item.config)


def pytest_sessionstart(session: pytest.Session) -> None:
    """Rewrite report.html after every phase, not only after tests: the phases run inside fixture
    setups, and a run killed in phase 4 must still leave a report that shows phases 1–3."""
    run = _run(session.config)
    if run is not None:
        run.phase_listeners.append(lambda: rewrite(session.config))


def rewrite(config: pytest.Config) -> None:
    """Rebuild the story and write report.html now."""
    refresh(config)
    rep = _html_report(config)
    if rep is not None:
        rep._generate_report()
        config.stash[_LAST_WRITE] = time.monotonic()


def refresh(config: pytest.Config, *, final: bool = False) -> None:
    """Rebuild the story at the top of the report from the journal."""
    run, rep = _run(config), _html_report(config)
    if run is None or rep is None:
        return
    conclusion = conclude(config) if final else None
    verdict = conclusion["verdict"] if conclusion else "in progress"
    # the verdict is the report's first words: its title (pytest-html puts the environment before the summary)
    rep._report.title = (f"{verdict.upper()} — change {run.options.change_ticket or '(read-only gate)'} — "
                         "Enterprise SSO upgrade")
    colour = BANNER_COLOURS.get(verdict, "#555")
    title_style = (f"<style>#title{{background:{colour};color:#fff;padding:10px 14px}}"
                   # the verdict and the recap first: pytest-html's Environment (Python, Platform) goes to the end
                   "body{display:flex;flex-direction:column}"
                   "#environment-header,#environment{order:1;align-self:flex-start}</style>")
    prefix = rep._report.additional_summary["prefix"]  # pytest-html 4's summary slots
    prefix[:] = [title_style + story_html(run, final=final, conclusion=conclusion,
                                         not_repeated=config.stash.get(NOT_REPEATED_KEY, []))]
    site_checks = site_checks_html(config.stash.get(SITE_CHECKS_KEY, None), config.stash.get(ITEMS_KEY, []),
                                   config.stash.get(OUTCOMES_KEY, {}))
    rep._report.additional_summary["postfix"][:] = [site_checks + next_steps_html(run, conclusion)]


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    refresh(session.config, final=True)


def pytest_unconfigure(config: pytest.Config) -> None:
    run = _run(config)
    if run is not None:
        scrub_dir(run.dir, secret_values())
