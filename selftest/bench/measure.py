"""Figures from what selftest.bench.recorder left in a run directory (bench.json): per segment of the
run (the gate, each phase, the checks between phases) the wall time, WinRM calls, the critical path
(the longest chain of calls each starting after the previous one ended), SQL statements, the time
spent sleeping between polls of the estate and the time the suite spent neither talking to the estate
nor waiting on it."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

EPS = 0.002  # a call that starts within 2 ms of another's end still follows it (clock granularity)


@dataclass(frozen=True)
class Figures:
    segment: str
    wall: float
    calls: int
    critical_path: int
    statements: int
    poll_sleep: float
    polls: int
    in_calls: float  # union of WinRM call and SQL statement intervals
    own: float  # wall − union(calls, statements, poll sleeps): the suite's own work
    span: float = 0.0  # first request to last answer: how long the estate is talked to

    def row(self) -> dict[str, Any]:
        return self.__dict__.copy()


def critical_path(calls: list[dict[str, Any]]) -> int:
    """The longest chain of calls where each starts after the previous one ended."""
    spans = sorted((c["start"], c["start"] + c["seconds"]) for c in calls)
    chain: list[int] = []
    for i, (start, _) in enumerate(spans):
        chain.append(1 + max((chain[j] for j in range(i) if spans[j][1] <= start + EPS), default=0))
    return max(chain, default=0)


def _union(intervals: list[tuple[float, float]], lo: float, hi: float) -> float:
    clipped = sorted((max(a, lo), min(b, hi)) for a, b in intervals if b > lo and a < hi)
    total, end = 0.0, lo
    for a, b in clipped:
        if b <= end:
            continue
        total += b - max(a, end)
        end = b
    return total


def load(run_dir: Path) -> dict[str, Any]:
    return json.loads((run_dir / "bench.json").read_text())


def segments(doc: dict[str, Any]) -> list[tuple[str, float, float]]:
    """(name, start, end): 'gate' from the first request to the first phase (or the end), each phase
    window, 'checks' for the gaps between and after phases (the tests and snapshots of the fixtures)."""
    firsts = [c["start"] for c in doc["calls"]] + [s["start"] for s in doc["statements"]]
    begin = min(firsts, default=doc["configured"])
    end = doc["finished"]
    windows = sorted((w["phase"], w["start"], w["end"] or end) for w in doc["phases"])
    out: list[tuple[str, float, float]] = []
    cursor = begin
    first = True
    for name, a, b in sorted(windows, key=lambda w: w[1]):
        if a > cursor:
            out.append(("gate" if first else "checks", cursor, a))
        out.append((name, a, b))
        cursor, first = b, False
    if end > cursor:
        out.append(("gate" if first else "checks", cursor, end))
    return out


def figures(doc: dict[str, Any], lo: float, hi: float, name: str) -> Figures:
    calls = [c for c in doc["calls"] if lo <= c["start"] < hi]
    stmts = [s for s in doc["statements"] if lo <= s["start"] < hi]
    sleeps = [s for s in doc["sleeps"] if lo <= s["start"] < hi]
    talk = [(c["start"], c["start"] + c["seconds"]) for c in calls] + \
           [(s["start"], s["start"] + s["seconds"]) for s in stmts]
    wait = [(s["start"], s["start"] + s["seconds"]) for s in sleeps]
    busy = _union(talk + wait, lo, hi)
    span = max((b for _, b in talk), default=lo) - min((a for a, _ in talk), default=lo)
    return Figures(name, round(hi - lo, 3), len(calls), critical_path(calls), len(stmts),
                   round(sum(s["seconds"] for s in sleeps), 3), len(sleeps), round(_union(talk, lo, hi), 3),
                   round(hi - lo - busy, 3), round(span, 3))


def per_segment(doc: dict[str, Any]) -> dict[str, Figures]:
    """Figures per segment; a phase met twice (backup is two fixtures) and the checks are summed."""
    out: dict[str, Figures] = {}
    for name, a, b in segments(doc):
        f = figures(doc, a, b, name)
        if name in out:
            g = out[name]
            f = Figures(name, round(g.wall + f.wall, 3), g.calls + f.calls, g.critical_path + f.critical_path,
                        g.statements + f.statements, round(g.poll_sleep + f.poll_sleep, 3), g.polls + f.polls,
                        round(g.in_calls + f.in_calls, 3), round(g.own + f.own, 3), round(g.span + f.span, 3))
        out[name] = f
    return out


def whole(doc: dict[str, Any]) -> Figures:
    """The run from its first request to the session's end."""
    firsts = [c["start"] for c in doc["calls"]] + [s["start"] for s in doc["statements"]]
    return figures(doc, min(firsts, default=doc["configured"]), doc["finished"], "total")


def startup(doc: dict[str, Any]) -> float:
    """pytest's own start after the lab is up, to the first request (collection, fixtures): fixed."""
    firsts = [c["start"] for c in doc["calls"]] + [s["start"] for s in doc["statements"]]
    return round(min(firsts, default=doc["configured"]) - doc["configured"], 3)


def first_snapshot(doc: dict[str, Any]) -> dict[str, Any] | None:
    """The gate's look at the estate (every host's facts and SQL Server's, at once): its wall time and the
    CPU the suite's process and the lab's spent on it; None if the recorder saw none."""
    snaps = doc.get("snapshots") or []
    return snaps[0] if snaps else None
