"""The fault matrix (selftest/faults/matrix.py). CI runs the representative slice (every phase's every
operation once, the fault kinds taken in turn); ENTSSO_FAULT_MATRIX=full (make faults) runs every step
on every host with every kind. Both print their totals."""
from __future__ import annotations

import os

import pytest

from selftest.faults.matrix import KINDS, clean_run, ok, representative, run_matrix, totals_text


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    return clean_run(tmp_path_factory.mktemp("clean"))


def test_every_fault_stops_safely_and_resumes_clean(clean, tmp_path, capsys):
    steps, final = clean
    assert len(steps) > 20  # the full run's remote steps, from its own trace
    if os.environ.get("ENTSSO_FAULT_MATRIX") == "full":
        cases = [(s, k) for s in steps for k in KINDS]
    else:
        cases = representative(steps)
    outcomes = run_matrix(cases, tmp_path, final)
    report = totals_text(outcomes)
    with capsys.disabled():
        print("\n" + report)
    (tmp_path / "matrix.txt").write_text(report)
    bad = [o for o in outcomes if not ok(o)]
    assert not bad, report
