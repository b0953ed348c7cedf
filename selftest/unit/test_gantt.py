"""The report's Gantt chart (entsso.report.gantt), from journals: phases and each host's steps, planned against
actual, a stop and its resume on one axis with the pause cut out, a step without a result drawn hatched."""
from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from entsso.report import gantt

SVG = "{http://www.w3.org/2000/svg}"


def rec(ts: str, kind: str, **kw):
    return {"ts": f"2026-12-02T{ts}Z", "kind": kind, **kw}


STOPPED = [
    rec("01:00:00.000", "run_started", resume=None),
    rec("01:00:01.000", "phase_started", phase="silence"),
    rec("01:00:01.000", "intent", phase="silence", step="stop host instances", host="BTS1"),
    rec("01:00:03.000", "result", phase="silence", step="stop host instances", host="BTS1", outcome="ok"),
    rec("01:00:03.000", "intent", phase="silence", step="disable job", host=None, job="J1"),
    rec("01:00:04.000", "result", phase="silence", step="disable job", host=None, job="J1", outcome="unchanged"),
    rec("01:00:04.000", "phase_finished", phase="silence", started="2026-12-02T01:00:01+00:00", seconds=3.0,
        estimate=2.0, outcome="done"),
    rec("01:00:05.000", "phase_started", phase="upgrade"),
    rec("01:00:05.000", "intent", phase="upgrade", step="run the update package", host="NODE2"),
    rec("01:00:09.000", "phase_stopped", phase="upgrade", host="NODE2", message="exit code 1603"),
]
RESUMED = [  # three hours later
    rec("04:00:00.000", "run_started", resume="R1"),
    rec("04:00:01.000", "phase_started", phase="upgrade"),
    rec("04:00:01.000", "intent", phase="upgrade", step="run the update package", host="NODE2"),
    rec("04:00:05.000", "result", phase="upgrade", step="run the update package", host="NODE2", outcome="ok"),
    rec("04:00:05.000", "phase_finished", phase="upgrade", started="2026-12-02T04:00:01+00:00", seconds=4.0,
        estimate=100.0, outcome="done"),
]


def parse(svg: str) -> ET.Element:
    return ET.fromstring(svg)  # well-formed XML: an inline SVG a browser draws as it is


def rects(root: ET.Element, cls: str) -> list[ET.Element]:
    return [r for r in root.iter(f"{SVG}rect") if r.get("class") == cls]


def test_rows_are_each_phase_then_its_hosts_with_sql_server_named():
    rows, segments = gantt.rows_of([("R1", STOPPED)])
    assert [(r.phase, r.host) for r in rows] == [("silence", None), ("silence", "BTS1"), ("silence", "SQL Server"),
                                                ("upgrade", None), ("upgrade", "NODE2")]
    assert [s.run_id for s in segments] == ["R1"]


def test_steps_carry_their_outcome_and_an_unfinished_step_is_drawn_to_the_runs_end():
    root = parse(gantt.gantt_svg([("R1", STOPPED)]))
    steps = {(r.get("data-host"), r.get("data-outcome")) for r in rects(root, "entsso-gantt-step")}
    assert steps == {("BTS1", "ok"), ("SQL Server", "unchanged"), ("NODE2", "no result")}
    open_bar = next(r for r in rects(root, "entsso-gantt-step") if r.get("data-outcome") == "no result")
    assert open_bar.get("fill") == "url(#entsso-hatch)"
    assert "no result (the run ended)" in open_bar.find(f"{SVG}title").text
    # the stop is a marker on its host's row
    assert [p.find(f"{SVG}title").text for p in root.iter(f"{SVG}path") if p.get("class") == "entsso-gantt-event"] \
        == ["stopped"]


def test_planned_against_actual_and_a_phase_over_its_plan_is_marked():
    root = parse(gantt.gantt_svg([("R1", STOPPED)]))
    planned = rects(root, "entsso-gantt-planned")
    assert [p.get("data-phase") for p in planned] == ["silence"]
    actual = next(r for r in rects(root, "entsso-gantt-phase") if r.get("data-phase") == "silence")
    # 3 s taken against 2 s planned: the dashed bar is shorter than the actual one
    assert float(planned[0].get("width")) < float(actual.get("width"))
    figures = [t.text for t in root.iter(f"{SVG}text") if t.get("class") == "entsso-gantt-figure"]
    assert figures[0] == "3.0 s of ≤ 2.0 s OVER"


def test_a_stop_and_its_resume_share_one_axis_with_the_pause_cut_out():
    root = parse(gantt.gantt_svg([("R1", STOPPED), ("R2", RESUMED)]))
    assert root.get("data-runs") == "2"
    runs = rects(root, "entsso-gantt-run")
    assert [r.get("data-run") for r in runs] == ["R1", "R2"]
    w1, w2 = (float(r.get("width")) for r in runs)
    assert abs(w1 / w2 - 9 / 5) < 0.01  # each run keeps its share: 9 s and 5 s, not the three hours between
    assert len([x for x in root.iter(f"{SVG}line") if x.get("class") == "entsso-gantt-pause"]) == 1
    upgrade = [r for r in rects(root, "entsso-gantt-phase") if r.get("data-phase") == "upgrade"]
    assert len(upgrade) == 2  # one bar per run
    assert float(upgrade[1].get("x")) > float(runs[1].get("x")) - 0.1
    # a planned bar longer than the chart is cut at its edge, with an arrow
    plan = rects(root, "entsso-gantt-planned")[-1]
    assert float(plan.get("x")) + float(plan.get("width")) <= gantt.LABEL_W + gantt.CHART_W + 0.1


def test_nothing_to_draw_says_so_and_names_are_escaped():
    assert gantt.gantt_svg([("R1", [])]) == "<p>No operation has run yet.</p>"
    svg = gantt.gantt_svg([("R<1>", [rec("01:00:00.000", "intent", phase="silence", step="a & b", host="H")])])
    assert "R&lt;1&gt;" in svg and "a &amp; b" in svg
    parse(svg)
    assert not re.search(r"<script|href=", svg)


def test_an_installers_failure_exit_code_is_red_and_a_pending_reboot_is_not():
    assert gantt.colour("exit code 1603") == gantt.colour("failed") == "#cf222e"
    assert gantt.colour("exit code 3010") == gantt.OTHER_COLOUR
    assert gantt.colour("ok") == "#1a7f37" and gantt.colour("unchanged") == "#8c959f"
