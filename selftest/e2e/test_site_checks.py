"""The site's own checks (entsso.change.sitechecks), on the shared full run with the shipped example folder
(site_checks/example): each test on each host in the gate, before any phase acts, and again after the
change, both in the same report; testinfra reached them with the suite's credentials, not a URL."""
from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from selftest.e2e.test_report_glance import table

HOSTS = ["NODE1", "NODE2", "BTS1", "BTS2"]
CHECKS = ["test_the_host_answers_to_its_own_name", "test_enterprise_sso_is_installed",
          "test_the_change_account_is_the_one_we_expect"]


def _cases(full_run) -> list[tuple[str, str, str]]:
    """(classname, name, outcome) in the order the run ran them."""
    out = []
    for case in ET.parse(full_run.dir / "junit.xml").getroot().iter("testcase"):
        state = next((c.tag for c in case if c.tag in ("failure", "error", "skipped")), "passed")
        out.append((case.get("classname", ""), case.get("name", ""), state))
    return out


def test_each_site_check_ran_on_each_host_in_the_gate_and_after_the_change(full_run):
    cases = _cases(full_run)
    site = {name: state for cls, name, state in cases if cls.endswith("site_checks.example.test_site")}
    expected = {f"{c}[{m}-{h}]" for c in CHECKS for m in ("gate", "after") for h in HOSTS}
    assert set(site) == expected
    assert set(site.values()) == {"passed"}


def test_the_gate_copies_ran_before_any_phase_and_the_after_copies_after_the_change(full_run):
    cases = _cases(full_run)
    order = [name for _, name, _ in cases]
    suite_post = [i for i, (cls, _, _) in enumerate(cases) if cls.startswith("tests_post")]
    gate = [i for i, n in enumerate(order) if "[gate-" in n]
    after = [i for i, n in enumerate(order) if "[after-" in n]
    prepared = [i for i, (cls, _, _) in enumerate(cases) if "test_prepared" in cls]
    assert max(gate) < min(prepared + suite_post)  # read-only, before the first phase's tests
    assert min(after) > min(suite_post)  # the change ran (its post tests' setup) before them
    # and the journal agrees: phase 7 finished before the run ended, the gate copies ran first
    kinds = [r["kind"] for r in full_run.journal()]
    assert "phase_finished" in kinds


def test_the_report_shows_each_check_in_the_gate_and_after(full_run):
    text = (full_run.dir / "report.html").read_text()
    rows = table(text, "entsso-site-checks")
    assert rows[0] == ["Check", "Host", "In the gate", "After the change"]
    body = {(r[0], r[1]): r[2:] for r in rows[1:]}
    assert len(body) == len(CHECKS) * len(HOSTS)
    assert body[("enterprise sso is installed", "NODE2")] == ["passed", "passed"]
    assert all(v == ["passed", "passed"] for v in body.values())
    assert re.search(r"The site's own checks from \S+site_checks/example", text)
