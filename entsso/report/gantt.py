"""The change's timeline drawn as a Gantt chart: an inline SVG (no script, no external file) of each
phase and, under it, each host's steps, from the journals of every run of the change — a stop and its
resume are drawn side by side on one time axis, the pause between them cut out and marked.

Each phase's bar is what it took; behind it, dashed, the longest the plan gave it (the phase_finished
record's `estimate`, from entsso.change.window: the inventory's timeouts). A plan's figure is an upper bound,
so in the lab (seconds against timeouts of minutes) the planned bar usually runs off the chart: it is
then cut at the edge and its figure written beside it. Steps are coloured by outcome; a step that
started and has no result (the run ended there) is drawn to its run's end, hatched red.
"""
from __future__ import annotations

import html
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from entsso.domain import change

PHASE_TITLES = change.ALL_TITLES
LABEL_W, CHART_W, ROW_H, TOP, RUN_GAP = 300, 860, 16, 40, 28
OUTCOME_COLOURS = {"ok": "#1a7f37", "unchanged": "#8c959f", "failed": "#cf222e", "no result": "#cf222e"}
OTHER_COLOUR = "#bf8700"
EVENTS = {"operator_instruction": "operator told", "phase_stopped": "stopped", "gate_refused": "refused",
          "interrupted": "interrupted", "window_refused": "not started (window)", "over_estimate": "past its estimate",
          "sql_unavailable": "SQL Server goes offline (moves with the group)", "sql_back": "SQL Server answers again"}


def colour(outcome: str) -> str:
    """A step's colour: green done, grey already so, red failed (an installer's failure exit code too; 3010,
    done but a reboot pending, is not a failure), amber anything else."""
    if outcome.startswith("exit code "):
        return OTHER_COLOUR if outcome.split()[-1] in ("0", "3010", "1641") else OUTCOME_COLOURS["failed"]
    return OUTCOME_COLOURS.get(outcome, OTHER_COLOUR)


def _t(ts: str) -> float:
    return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()


@dataclass
class Bar:
    start: float
    end: float
    outcome: str
    title: str


@dataclass
class Row:
    phase: str
    host: str | None  # None: the phase's own row
    bars: list[Bar] = field(default_factory=list)
    planned: list[tuple[float, float]] = field(default_factory=list)  # (start, planned seconds)
    events: list[tuple[float, str]] = field(default_factory=list)


@dataclass
class Segment:
    run_id: str
    start: float
    end: float


def _seconds(s: float) -> str:
    return f"{s:.1f} s" if s < 120 else f"{s / 60:.1f} min"


def rows_of(runs: Iterable[tuple[str, list[dict[str, Any]]]]) -> tuple[list[Row], list[Segment]]:
    """The chart's rows (phase, then its hosts) and the runs' time segments, from their journals."""
    rows: dict[tuple[str, str | None], Row] = {}
    segments: list[Segment] = []

    def row(phase: str, host: str | None) -> Row:
        if (phase, None) not in rows:
            rows[(phase, None)] = Row(phase, None)
        if (phase, host) not in rows:
            rows[(phase, host)] = Row(phase, host)
        return rows[(phase, host)]

    for run_id, records in runs:
        stamped = [r for r in records if r.get("ts")]
        if not stamped:
            continue
        begin, finish = _t(stamped[0]["ts"]), _t(stamped[-1]["ts"])
        segments.append(Segment(run_id, begin, max(finish, begin + 0.001)))
        phase_start: dict[str, float] = {}
        phase_span: dict[str, list[float]] = {}
        open_steps: dict[tuple[Any, ...], dict[str, Any]] = {}
        planned: dict[str, float] = {}
        for r in stamped:
            kind, at = r.get("kind"), _t(r["ts"])
            phase: str = r.get("phase") or ""
            if phase and kind in ("intent", "result", "phase_started", "phase_finished", *EVENTS):
                span = phase_span.setdefault(phase, [at, at])
                span[0], span[1] = min(span[0], at), max(span[1], at)
            if kind == "phase_started":
                phase_start.setdefault(phase, at)
            elif kind == "phase_finished" and r.get("estimate") is not None:
                planned[phase] = float(r["estimate"])  # a two-part phase finishes twice: one plan for it
            elif kind == "intent":
                open_steps[(phase, r.get("step"), r.get("host"), r.get("job"))] = r
            elif kind == "result":
                key = (phase, r.get("step"), r.get("host"), r.get("job"))
                began = open_steps.pop(key, None)
                start = _t(began["ts"]) if began else at
                what = r.get("step", "") + (f" ({r['job']})" if r.get("job") else "")
                outcome = str(r.get("outcome", ""))
                row(phase or "other", r.get("host") or "SQL Server").bars.append(Bar(
                    start, at, outcome, f"{what} on {r.get('host') or 'SQL Server'}: {outcome}, "
                                        f"{_seconds(at - start)}"))
            elif kind in EVENTS:
                row(phase or "gate", r.get("host") or None).events.append((at, EVENTS[kind]))
        for key, r in open_steps.items():  # started, never finished: the run ended here
            phase, step, host, job = key
            row(phase or "other", host or "SQL Server").bars.append(Bar(
                _t(r["ts"]), finish, "no result", f"{step}{f' ({job})' if job else ''} on {host or 'SQL Server'}: "
                                                  "no result (the run ended)"))
        for phase, est in planned.items():
            row(phase, None).planned.append((phase_start.get(phase, phase_span[phase][0]), est))
        for phase, (a, b) in phase_span.items():
            row(phase, None).bars.append(Bar(a, b, "phase", f"{PHASE_TITLES.get(phase, phase)} in run {run_id}: "
                                                           f"{_seconds(b - a)}"))
    order = {p: i for i, p in enumerate(PHASE_TITLES)}
    phases = sorted({p for p, _ in rows}, key=lambda p: order.get(p, len(order)))
    out: list[Row] = []
    for p in phases:
        out.append(rows[(p, None)])
        out.extend(r for (q, h), r in rows.items() if q == p and h is not None)
    return out, segments


class _Axis:
    """Time → x, run by run: each run's span keeps its share of the width; the pauses between runs are
    cut out (RUN_GAP pixels each)."""

    def __init__(self, segments: list[Segment]) -> None:
        self.segments = segments
        total = sum(s.end - s.start for s in segments) or 1.0
        self.scale = (CHART_W - RUN_GAP * max(len(segments) - 1, 0)) / total
        self.offsets, x = [], float(LABEL_W)
        for s in segments:
            self.offsets.append(x)
            x += (s.end - s.start) * self.scale + RUN_GAP

    def x(self, t: float) -> float:
        for s, off in zip(self.segments, self.offsets, strict=True):
            if t <= s.end + 1e-6:
                return off + max(t - s.start, 0.0) * self.scale
        s, off = self.segments[-1], self.offsets[-1]
        return off + (s.end - s.start) * self.scale


def gantt_svg(runs: list[tuple[str, list[dict[str, Any]]]]) -> str:
    """The inline SVG chart, or a sentence when no journal has a record yet."""
    rows, segments = rows_of(runs)
    if not segments or not rows:
        return "<p>No operation has run yet.</p>"
    e = html.escape
    axis = _Axis(segments)
    right = LABEL_W + CHART_W
    height = TOP + ROW_H * len(rows) + 46
    out = [f'<svg class="entsso-gantt" xmlns="http://www.w3.org/2000/svg" width="{right + 160}" height="{height}" '
           f'viewBox="0 0 {right + 160} {height}" role="img" font-family="sans-serif" font-size="11" '
           f'data-runs="{len(segments)}" data-rows="{len(rows)}">',
           "<title>The change's timeline: each phase and each host's steps, planned against actual</title>",
           '<defs><pattern id="entsso-hatch" width="4" height="4" patternUnits="userSpaceOnUse">'
           '<path d="M0,4 L4,0" stroke="#cf222e" stroke-width="1.5"/></pattern></defs>']
    for s, off in zip(segments, axis.offsets, strict=True):
        w = (s.end - s.start) * axis.scale
        stamp = datetime.fromtimestamp(s.start, UTC).strftime("%Y-%m-%d %H:%M:%S")
        out.append(f'<rect class="entsso-gantt-run" data-run="{e(s.run_id)}" x="{off:.1f}" y="{TOP - 6}" '
                   f'width="{w:.1f}" height="{ROW_H * len(rows) + 6}" fill="#f6f8fa"/>')
        out.append(f'<text x="{off:.1f}" y="12">run {e(s.run_id)}</text>'
                   f'<text x="{off:.1f}" y="26" fill="#555">{stamp} UTC, {_seconds(s.end - s.start)}</text>')
    for a in axis.offsets[1:]:  # a pause before each run but the first
        cut = a - RUN_GAP / 2
        out.append(f'<line class="entsso-gantt-pause" x1="{cut:.1f}" y1="{TOP - 6}" x2="{cut:.1f}" '
                   f'y2="{TOP + ROW_H * len(rows)}" stroke="#555" stroke-dasharray="3,3"/>')
    for i, r in enumerate(rows):
        y = TOP + i * ROW_H
        if r.host is None:
            out.append(f'<rect x="0" y="{y}" width="{right}" height="{ROW_H}" fill="#eef" opacity="0.6"/>')
            label = f"<tspan font-weight='bold'>{e(PHASE_TITLES.get(r.phase, r.phase))}</tspan>"
        else:
            label = f"    {e(r.host)}"
        out.append(f'<text x="4" y="{y + ROW_H - 4}" xml:space="preserve">{label}</text>')
        for start, est in r.planned:
            x0 = axis.x(start)
            x1 = x0 + est * axis.scale
            cut = x1 > right
            out.append(f'<rect class="entsso-gantt-planned" data-phase="{e(r.phase)}" x="{x0:.1f}" y="{y + 2}" '
                       f'width="{min(x1, right) - x0:.1f}" height="{ROW_H - 4}" fill="none" stroke="#1f4e99" '
                       f'stroke-dasharray="4,2"><title>planned: at most {_seconds(est)}</title></rect>')
            if cut:
                out.append(f'<path d="M{right},{y + 3} l5,5 l-5,5 z" fill="#1f4e99"/>')
        if r.host is None:
            took = sum(b.end - b.start for b in r.bars)
            plan = sum(est for _, est in r.planned)
            figure = f"{_seconds(took)} of ≤ {_seconds(plan)}" if r.planned else _seconds(took)
            over = bool(r.planned) and took > plan
            out.append(f'<text class="entsso-gantt-figure" x="{LABEL_W - 6}" y="{y + ROW_H - 4}" text-anchor="end" '
                       f'fill="{"#cf222e" if over else "#1f4e99"}">{e(figure)}{" OVER" if over else ""}</text>')
        for b in r.bars:
            x0, x1 = axis.x(b.start), axis.x(b.end)
            if r.host is None:
                fill, cls = "#1f4e99", "entsso-gantt-phase"
            else:
                fill = "url(#entsso-hatch)" if b.outcome == "no result" else colour(b.outcome)
                cls = "entsso-gantt-step"
            out.append(f'<rect class="{cls}" data-phase="{e(r.phase)}" data-host="{e(r.host or "")}" '
                       f'data-outcome="{e(b.outcome)}" x="{x0:.1f}" y="{y + 4}" width="{max(x1 - x0, 1.5):.1f}" '
                       f'height="{ROW_H - 8}" fill="{fill}"><title>{e(b.title)}</title></rect>')
        for at, what in r.events:
            x = axis.x(at)
            out.append(f'<path class="entsso-gantt-event" d="M{x:.1f},{y + 2} l4,6 l-4,6 l-4,-6 z" fill="#bf8700">'
                       f'<title>{e(what)}</title></path>')
    ly = TOP + ROW_H * len(rows) + 20
    legend = [("#1f4e99", "phase (actual)"), ("#1a7f37", "step done"), ("#8c959f", "already so (unchanged)"),
              ("#cf222e", "failed"), ("#bf8700", "other outcome / event")]
    x = LABEL_W
    for swatch, text in legend:
        out.append(f'<rect x="{x}" y="{ly - 9}" width="10" height="10" fill="{swatch}"/>'
                   f'<text x="{x + 14}" y="{ly}">{e(text)}</text>')
        x += 30 + 6 * len(text)
    out.append(f'<rect x="{x}" y="{ly - 9}" width="14" height="10" fill="none" stroke="#1f4e99" '
               f'stroke-dasharray="4,2"/><text x="{x + 18}" y="{ly}">planned (longest the plan allows)</text>')
    out.append("</svg>")
    return "".join(out)
