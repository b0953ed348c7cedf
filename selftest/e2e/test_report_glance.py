"""The report at a glance, as a browser renders it (headless Chromium): who made the change with which
accounts and when, each host before → after, and where the off-node copy of the master secret backup
went with its SHA-256. Words an administrator uses; no internal names or Python values."""
from __future__ import annotations

import hashlib
import html
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from selftest.e2e.test_report import _chromium, keep_artifact


class _Tables(HTMLParser):
    """The text of each cell of the tables with a given class, row by row."""

    def __init__(self, wanted: str) -> None:
        super().__init__()
        self.wanted, self.depth, self.rows, self.cell = wanted, 0, [], None

    def handle_starttag(self, tag, attrs):
        if tag == "table" and (self.depth or self.wanted in (dict(attrs).get("class") or "").split()):
            self.depth += 1
        elif self.depth and tag == "tr":
            self.rows.append([])
        elif self.depth and tag in ("td", "th"):
            self.cell = []

    def handle_endtag(self, tag):
        if self.depth and tag == "table":
            self.depth -= 1
        elif self.depth and tag in ("td", "th") and self.cell is not None:
            self.rows[-1].append(" ".join("".join(self.cell).split()))
            self.cell = None

    def handle_data(self, data):
        if self.cell is not None:
            self.cell.append(data)


def table(dom: str, cls: str) -> list[list[str]]:
    parser = _Tables(cls)
    parser.feed(dom)
    return parser.rows


@pytest.fixture(scope="module")
def page(full_run, tmp_path_factory) -> str:
    work = tmp_path_factory.mktemp("glance")
    dom = _chromium(str(work / "x"), "--virtual-time-budget=5000", "--dump-dom", (full_run.dir / "report.html").as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    shot = _chromium(str(work / "y"), "--window-size=1400,1800", "--virtual-time-budget=5000",
                     f"--screenshot={full_run.dir / 'report-glance.png'}", (full_run.dir / "report.html").as_uri())
    assert shot.returncode == 0
    keep_artifact(full_run.dir / "report-glance.png", "report-glance.png")
    return dom.stdout


def test_before_after_table_shows_each_host_as_it_was_and_is(page):
    rows = {r[0]: r[1:] for r in table(page, "entsso-before-after")}
    assert rows["Host"] == ["Enterprise SSO version", "Master secret server", "SSO tools point at", "ENTSSO service",
                            "Rule Engine Update service", "Host instances running"]
    assert rows["NODE1 (cluster node)"] == ["10.0.1000.0 → 10.0.2000.0", "yes, as the cluster SSOCLUSTER → yes, as the "
                                            "cluster SSOCLUSTER", "SSOCLUSTER → SSOCLUSTER", "Running → Running", "—", "—"]
    assert rows["NODE2 (cluster node)"][:2] == ["10.0.1000.0 → 10.0.2000.0", "no → no"]
    bts1 = rows["BTS1 (BizTalk server)"]
    assert bts1[0] == "10.0.1000.0 → 10.0.1000.0"  # BizTalk servers are not upgraded by this change
    assert bts1[3] == "Running → Running" and re.fullmatch(r"(\d) of (\d) → \1 of \2", bts1[5]), bts1
    assert rows["SQL1 (SQL Server)"] == ["SQL Agent jobs of the change enabled", "11 of 13 → 11 of 13"]


def test_before_after_marks_what_changed(full_run):
    text = (full_run.dir / "report.html").read_text()
    changed = re.findall(r"<td class='entsso-changed'[^>]*>([^<]*)</td>", text)
    assert [html.unescape(c) for c in changed] == ["10.0.1000.0 → 10.0.2000.0"] * 2  # the two nodes, nothing else


def test_who_and_when_name_the_accounts_and_dated_times_with_offsets(page):
    rows = dict((r[0], r[1]) for r in table(page, "entsso-who-when"))
    assert re.fullmatch(r"\S+ on the admin box \S+", rows["Operator"])
    assert rows["WinRM account"] == "LAB\\svc-entsso"
    assert rows["SQL Server account"] == "SQL login entsso on SQL1"
    stamp = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d[+-]\d\d:\d\d"
    assert re.fullmatch(rf"{stamp}( \({stamp}\))?", rows["Started"]), rows["Started"]
    assert re.fullmatch(rf"{stamp}( \({stamp}\))? \(after \d+ (s|min \d+ s)\)", rows["Ended"]), rows["Ended"]


def test_the_off_node_secret_backup_copy_is_named_with_its_sha256(page, full_run):
    rows = dict((r[0], r[1]) for r in table(page, "entsso-secret-backup"))
    copy = Path(rows["Copy off the node"])
    assert copy.name == "ENTSSO-CHG-SELFTEST-1.bak" and copy.exists()
    assert rows["SHA-256 of the copy"] == hashlib.sha256(copy.read_bytes()).hexdigest()
    assert rows["On the node"] == "C:\\SSOBackup\\ENTSSO-CHG-SELFTEST-1.bak on NODE1"
    assert rows["Size"] == f"{copy.stat().st_size} bytes"


def test_the_glance_sections_use_no_internal_names_or_python_values(page):
    sections = "".join(" ".join(" ".join(r) for r in table(page, cls))
                       for cls in ("entsso-who-when", "entsso-before-after", "entsso-secret-backup"))
    assert sections
    for internal in ("None", "True", "False", "('", "gate_refused", "phase_stopped", "_snapshot", "{'"):
        assert internal not in sections
