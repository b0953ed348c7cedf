"""Which tests run, in which order and with which parameters, for entsso.plugin: the gate's tests before
a phase acts, the suite's tests parametrised by the estate's own names (and the site's checks by host and
moment), --backout's proof or the change's, --plan's gate only; and, in a change that continues, the
readiness its gate already proved skipped."""
from __future__ import annotations

from pathlib import Path

import pytest

from entsso.report.keys import ITEMS_KEY, RUN_KEY, SITE_CHECKS_KEY, TEST_PLAN_KEY

PHASE_ORDER = {"readiness": 0, "rehearsal": 1, "prepared": 2, "post": 3, "backout": 3}


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


def _is_site_check(config: pytest.Config, path: Path) -> bool:
    from entsso.change.sitechecks import is_site_check

    return is_site_check(path, config.stash.get(SITE_CHECKS_KEY, None))


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
        db_names = run.inventory.sql.databases
        dbs = [db_names.ssodb, db_names.management]
        listed = [d.database for d in s.sql.backups.databases] if s.sql.backups else []
        dbs += [d for d in listed if d.lower() not in {x.lower() for x in dbs}]
        metafunc.parametrize("database", dbs)


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
