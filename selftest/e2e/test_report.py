"""The change-ticket report, opened in a real headless browser (Debian's chromium): it renders from the
one file with no external request, shows the ticket, every phase and the outcome counts; a screenshot is
kept in the run directory. And the canary secret of the run appears in no file it left."""
from __future__ import annotations

import json
import os
import re
import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import pytest

from selftest.e2e.conftest import CANARY

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
PHASES = ["silence", "backup", "uncluster", "upgrade", "recluster", "failover", "resume"]
TITLES = ["1. Silence BizTalk", "2. Back up", "3. Uncluster the MSS", "4. Upgrade each node",
          "5. Recluster the MSS", "6. Fail over", "7. Put BizTalk back"]


def _chromium(*args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM, "chromium is not installed (scripts/bootstrap.sh installs it as root)"
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           "--disable-default-apps", "--user-data-dir=" + str(Path(args[0]).parent / "chromium-profile"), *args[1:]]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def rendered(full_run, tmp_path_factory):
    report = full_run.dir / "report.html"
    work = tmp_path_factory.mktemp("browser")
    netlog = work / "netlog.json"
    dom = _chromium(str(work / "x"), f"--log-net-log={netlog}", "--virtual-time-budget=5000", "--dump-dom",
                    report.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    shot = full_run.dir / "report.png"
    snap = _chromium(str(work / "y"), "--window-size=1400,2400", "--virtual-time-budget=5000",
                     f"--screenshot={shot}", report.as_uri())
    assert snap.returncode == 0, snap.stderr[-2000:]
    keep_artifact(shot, "report-completed.png")
    return {"dom": dom.stdout, "netlog": netlog.read_text(errors="replace"), "screenshot": shot}


ARTIFACTS = Path(os.environ.get("ENTSSO_TEST_ARTIFACTS", Path(__file__).resolve().parents[2] / "reports" / "selftest-artifacts"))


def keep_artifact(path: Path, name: str) -> Path:
    """Keep a screenshot where a person (or CI) looks after the run: reports/selftest-artifacts/ (git-ignored;
    ENTSSO_TEST_ARTIFACTS moves it), not only in pytest's temporary folder."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return Path(shutil.copy2(path, ARTIFACTS / name))


def png_pixel(path: Path, x: int, y: int) -> tuple[int, int, int]:
    """The RGB of one pixel of an 8-bit RGB(A) PNG, as Chromium writes its screenshots (no imaging library
    on the admin box: the PNG format's own filters, RFC 2083 section 6)."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width = 8, b"", 0
    while pos < len(data):
        size, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + size]
        if kind == b"IHDR":
            width, _, depth, colour = struct.unpack(">IIBB", body[:10])
            assert depth == 8 and colour in (2, 6), (depth, colour)
            bpp = 3 if colour == 2 else 4
        elif kind == b"IDAT":
            idat += body
        pos += 12 + size
    raw, stride, prev = zlib.decompress(idat), width * bpp, bytearray(width * bpp)
    for row in range(y + 1):
        line = raw[row * (stride + 1):(row + 1) * (stride + 1)]
        f, cur = line[0], bytearray(line[1:])
        for i in range(stride):
            a = cur[i - bpp] if i >= bpp else 0
            b, c = prev[i], prev[i - bpp] if i >= bpp else 0
            if f == 1:
                cur[i] = (cur[i] + a) & 255
            elif f == 2:
                cur[i] = (cur[i] + b) & 255
            elif f == 3:
                cur[i] = (cur[i] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                cur[i] = (cur[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        prev = cur
    return tuple(prev[x * bpp:x * bpp + 3])  # type: ignore[return-value]


# Chromium's NetLog tags each request with its network traffic annotation: the page's own loads are
# blink_resource_loader (101845102) and navigations navigation_url_loader (63171670); the browser's own
# background requests (time sync, component updates) carry other annotations and are not the page's.
PAGE_ANNOTATIONS = {101845102, 63171670}


def page_requests(netlog: str) -> set[str]:
    out = set()
    for m in re.finditer(r'\{[^{}]*"traffic_annotation":(\d+),"url":"([^"]+)"[^{}]*\}', netlog):
        if int(m.group(1)) in PAGE_ANNOTATIONS:
            out.add(m.group(2))
    return out


def external(urls: set[str]) -> list[str]:
    return sorted(u for u in urls if not u.startswith(("file:", "data:", "blob:", "about:")))


def test_the_request_check_sees_a_page_that_loads_from_the_network(tmp_path):
    page = tmp_path / "external.html"
    page.write_text('<html><body><img src="http://example.invalid/x.png">'
                    '<script src="https://cdn.example.invalid/a.js"></script></body></html>')
    netlog = tmp_path / "netlog.json"
    _chromium(str(tmp_path / "z"), f"--log-net-log={netlog}", "--virtual-time-budget=3000", "--dump-dom",
              page.as_uri())
    assert external(page_requests(netlog.read_text(errors="replace"))) == [
        "http://example.invalid/x.png", "https://cdn.example.invalid/a.js"]


def test_report_renders_with_no_external_request(rendered):
    assert "report.html" in rendered["netlog"], "the net log does not show the report loading"
    assert external(page_requests(rendered["netlog"])) == []


def test_report_shows_ticket_phases_and_outcome_counts(rendered, full_run):
    dom = rendered["dom"]
    assert "CHG-SELFTEST-1" in dom
    for title in TITLES:
        assert title in dom, f"phase {title!r} not in the rendered report"
    assert "no result (run ended)" not in dom  # every operation of a finished run has its outcome
    # each phase's log is with its phase, not under the first test whose setup ran it
    assert "Log of each phase" in dom
    for title in TITLES:
        assert re.search(re.escape(title) + r" \(\d+ lines\)", dom), f"no log for {title}"
    assert "their logs are in the timeline" in dom
    passed = full_run.summary["totals"]["passed"]
    # pytest-html renders the counts with JavaScript from the embedded data: only a browser shows them
    assert re.search(rf"{passed}\s+Passed", dom), "the passed count is not rendered"
    assert rendered["screenshot"].stat().st_size > 10_000


def test_the_rendered_banner_says_completed_in_green(rendered):
    dom = rendered["dom"]
    banner = re.search(r'<div class="entsso-verdict" data-verdict="([a-z -]+)" style="background:(#[0-9a-f]{6})[^"]*">'
                       r"(.*?)</div>", dom)
    assert banner, "no verdict banner in the rendered page"
    verdict, colour, text = banner.groups()
    assert verdict == "completed" and colour == "#1a7f37"
    assert re.sub("<[^>]+>", "", text) == ("COMPLETED — CHG-SELFTEST-1: The change is complete: SSO upgraded, the MSS "
                                           "clustered again, BizTalk back as before the change.")
    assert re.search(r'<h1 id="title">COMPLETED — change CHG-SELFTEST-1', dom)
    # and it is green on the screen: the title bar at the top of the screenshot, as a person sees it
    r, g, b = png_pixel(rendered["screenshot"], 1200, 30)
    assert (r, g, b) == (0x1a, 0x7f, 0x37), (r, g, b)


def test_the_rendered_timeline_is_an_svg_gantt_of_every_phase_and_host(rendered):
    dom = rendered["dom"]
    svg = re.search(r'<svg class="entsso-gantt".*?</svg>', dom, re.S)
    assert svg, "no SVG timeline in the rendered page"
    chart = svg.group(0)
    assert 'data-runs="1"' in chart
    phases = set(re.findall(r'class="entsso-gantt-phase" data-phase="(\w+)"', chart))
    assert phases >= set(PHASES)
    planned = set(re.findall(r'class="entsso-gantt-planned" data-phase="(\w+)"', chart))
    assert planned == set(PHASES), "each phase is drawn against its plan"
    hosts = set(re.findall(r'class="entsso-gantt-step" data-phase="upgrade" data-host="(\w+)"', chart))
    assert hosts == {"NODE1", "NODE2"}
    outcomes = set(re.findall(r'data-outcome="([a-z ]+)"', chart))
    assert "no result" not in outcomes and "ok" in outcomes
    figures = re.findall(r'class="entsso-gantt-figure"[^>]*>([^<]+)<', chart)
    assert len(figures) >= 7 and all(re.fullmatch(r"[\d.]+ (s|min) of ≤ [\d.]+ (s|min)", f) for f in figures), figures


DEMO_CONSOLE_LINES = 120  # issue 19: the demo's whole console fits on a screen an operator can scroll once


def test_the_demos_console_fits_in_120_lines(full_run):
    """The shared run is `make demo`'s command on the same estate (the fast scenario is the default one
    with short delays) and the same -q; make adds two lines of its own (the command, and the report's
    path). Measured 2026-12-02: `make demo` printed 103 lines (106 with a first bootstrap)."""
    lines = full_run.output.splitlines()
    assert len(lines) + 2 <= DEMO_CONSOLE_LINES, f"{len(lines)} lines:\n" + "\n".join(lines)
    assert "[phase 7/7] Put BizTalk back" in full_run.output and "entsso: COMPLETED" in full_run.output


def test_canary_secret_in_no_file_of_the_run(full_run):
    assert full_run.returncode == 0
    hits = [str(p) for p in full_run.dir.rglob("*") if p.is_file() and CANARY.encode() in p.read_bytes()]
    assert hits == []
    assert CANARY not in full_run.output


def test_summary_has_per_phase_figures(full_run):
    summary = full_run.summary
    for phase in PHASES:
        figures = summary["phases"][phase]
        assert figures["outcome"] == "done" and figures["seconds"] > 0
    assert summary["phases"]["silence"]["sql_statements"] > 0
    assert summary["phases"]["upgrade"]["winrm_calls"] > 0
    assert summary["totals"]["failed"] == 0
    json.dumps(summary)


def test_a_run_killed_mid_change_leaves_a_readable_report(tmp_path):
    """Kill -9 the suite while it waits for a manual upgrade (phase 4): the report shows phases 1–3."""
    import os
    import signal
    import sys
    import time

    from selftest.e2e.suite import ROOT

    scenario = tmp_path / "slow-operator.yml"
    scenario.write_text("extends: fast\nname: slow-operator\nupgrade:\n  operator_delay_sec: 1000000\n")
    reports = tmp_path / "reports"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ENTSSO_", "PYTEST_"))}
    env["ENTSSO_REPORTS"] = str(reports)
    proc = subprocess.Popen([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", f"--lab={scenario}",
                             "--apply", "--change-ticket", "CHG-KILLED-1"], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        journal = None
        while time.monotonic() < deadline:
            found = list(reports.glob("*/journal.jsonl"))
            if found and "operator_instruction" in found[0].read_text():
                journal = found[0]
                break
            time.sleep(0.2)
        assert journal is not None, "the run never reached the manual upgrade"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the suite and the lab it started
        proc.wait()
    report = journal.parent / "report.html"
    assert report.exists()
    shot = _chromium(str(tmp_path / "k"), "--virtual-time-budget=5000", "--dump-dom", report.as_uri())
    dom = shot.stdout
    for title in TITLES[:3]:
        assert title in dom, f"{title!r} missing from the report of the killed run"
    assert "CHG-KILLED-1" in dom
