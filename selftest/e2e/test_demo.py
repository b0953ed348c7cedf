"""Issue 25 item 5: `make demo` works every time. Each demo starts a new lab, so it takes a fresh ticket
(an earlier demo's ticket has runs in reports/ but no record on the new lab, and was refused); `TICKET=`
names one. The demo's command, as make runs it, twice in a row into one reports folder: both completed."""
from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import time

import pytest

from selftest.e2e.suite import ROOT, run_suite

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")


def demo_command(*make_args: str) -> list[str]:
    """The pytest arguments `make demo` runs (make -n: printed, not run)."""
    out = subprocess.run(["make", "-n", "--no-print-directory", "demo", *make_args], cwd=ROOT, capture_output=True,
                         text=True, timeout=60, check=True).stdout
    line = next(line for line in out.splitlines() if " -m pytest " in line)
    return shlex.split(line.split(" -m pytest ", 1)[1])


def ticket_of(args: list[str]) -> str:
    return args[args.index("--change-ticket") + 1]


def test_make_demo_takes_a_fresh_ticket_each_time_unless_one_is_given():
    first = demo_command()
    time.sleep(1.1)
    second = demo_command()
    assert re.fullmatch(r"CHG-DEMO-\d{8}-\d{6}", ticket_of(first)), first
    assert ticket_of(first) != ticket_of(second)
    assert ticket_of(demo_command("TICKET=CHG-DEMO-0042")) == "CHG-DEMO-0042"


def test_make_demo_twice_in_a_row_completes_both_times(tmp_path):
    reports = tmp_path / "reports"
    for _ in range(2):
        args = demo_command()
        run = run_suite(reports, *args)
        assert run.returncode == 0, run.output[-3000:]
        assert run.summary["verdict"] == "completed", run.summary["verdict_reason"]
        time.sleep(1.1)  # the next demo's ticket is another second's
