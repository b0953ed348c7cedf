"""One full lab upgrade shared by the tests that read what it left (report, journal, lab state)."""
from __future__ import annotations

import pytest

from entsso.lab.launcher import LabProcess
from selftest.e2e.suite import ROOT, SuiteRun, run_suite

CANARY = "Canary-Secret-9b1e77d2"
SITE_CHECKS = ROOT / "site_checks" / "example"  # the shipped example of a site's own checks (docs/site-checks.md)  # the master secret backup password for the shared run


@pytest.fixture(scope="session")
def full_run(tmp_path_factory: pytest.TempPathFactory) -> SuiteRun:
    reports = tmp_path_factory.mktemp("full-run")
    return run_suite(reports, "--lab", "fast", "--apply", "--change-ticket", "CHG-SELFTEST-1",
                     "--site-checks", str(SITE_CHECKS), env={"ENTSSO_SECRET_PASSWORD": CANARY})


@pytest.fixture
def start_lab(tmp_path):
    """start_lab(SCENARIO): a lab started by hand (python -m entsso.lab serve), as an estate that outlives
    a run; stopped after the test."""
    labs: list[LabProcess] = []

    def start(scenario: str) -> LabProcess:
        lab = LabProcess(scenario, tmp_path / f"lab-{len(labs)}" / "lab-inventory.yml").start()
        labs.append(lab)
        return lab

    yield start
    for lab in labs:
        lab.stop()
