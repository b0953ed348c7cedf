"""Run the suite on the benchmark's estates and compare every figure with its lower bound.

`bench_gate` and `bench_full` run `pytest tests_pre -m readiness` and `pytest --apply` in a child
process (as an operator would, selftest.e2e.suite) with the recorder plugin, and return the figures
beside the bounds; `main` is `python -m selftest.bench` (make bench)."""
from __future__ import annotations

import argparse
import json
import platform
import os
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from selftest.bench import bound, measure, scenarios
from selftest.e2e.suite import run_suite

RECORDER = ("-p", "selftest.bench.recorder")
SPEED = 20.0  # estate seconds per real second for `make bench`: 300 ms latency = 6 estate seconds
HOST_LATENCY = 1.0  # a real Windows host's cost of one WinRM call (shell, powershell.exe, teardown)


@dataclass
class Result:
    label: str
    kind: str  # gate | full
    scenario: dict[str, Any]
    run_dir: Path
    latency: float  # real seconds per WinRM call injected
    speed: float
    segments: dict[str, measure.Figures]
    total: measure.Figures
    startup: float
    bounds: dict[str, float] = field(default_factory=dict)  # segment -> seconds
    bound_rt: dict[str, int] = field(default_factory=dict)
    hosts: int = 0
    snapshot: dict[str, Any] | None = None  # the gate's look at the estate: seconds, suite_cpu, lab_cpu
    outage: float | None = None  # the business outage the run's recap measured (first BizTalk stop to last start)
    outage_bound: float | None = None  # its lower bound: phases 1-7's bounds, the estate's own delays between them

    def outage_line(self) -> str:
        if self.outage is None or not self.outage_bound:
            return ""
        return (f"Business outage (BizTalk out of service, from the run's recap): {self.outage:.2f} s; bound "
                f"{self.outage_bound:.2f} s (phases 1-7's); measured/bound {self.outage / self.outage_bound:.2f} "
                "(goal 1.1).\n")

    def cpu_line(self) -> str:
        s = self.snapshot
        if not s:
            return ""
        lab = "" if s.get("lab_cpu") is None else f", the lab's {s['lab_cpu']:.2f} s"
        return (f"The gate's snapshot ({s['hosts']} hosts and SQL Server at once): {s['seconds']:.2f} s; CPU of the "
                f"suite's process {s['suite_cpu']:.2f} s ({1000 * s['suite_cpu'] / max(1, s['hosts']):.0f} ms a "
                f"host){lab}.\n")

    def ratio(self, name: str) -> float | None:
        b = self.bounds.get(name)
        f = self.total if name == "total" else self.segments.get(name)
        return round(f.wall / b, 2) if f and b else None


class SuiteFailed(RuntimeError):
    pass


def _run(path: Path, reports: Path, *args: str, timeout: float = 1800) -> Path:
    r = run_suite(reports, *RECORDER, f"--lab={path}", *args, timeout=timeout)  # = : not a test path
    if r.returncode != 0 or r.dir is None or not (r.dir / "bench.json").exists():
        raise SuiteFailed(f"the suite failed on {path.name} (exit {r.returncode}):\n{r.output[-3000:]}")
    return r.dir


def bench_gate(label: str, scenario: dict[str, Any], reports: Path) -> Result:
    path = scenarios.write(scenario, reports / "scenarios")
    sc = scenarios.resolved(path)
    run_dir = _run(path, reports, "tests_pre", "-m", "readiness")
    doc = measure.load(run_dir)
    latency = float(sc["latency_sec"]) / float(sc["speed"])
    total = measure.whole(doc)
    g = bound.gate()
    res = Result(label, "gate", sc, run_dir, latency, float(sc["speed"]), measure.per_segment(doc), total,
                 measure.startup(doc), hosts=len(sc["cluster"]["nodes"]) + len(sc["biztalk"]["servers"]))
    res.bounds = {"gate": g.seconds(res.speed, latency), "total": g.seconds(res.speed, latency)}
    res.bound_rt = {"gate": g.round_trips, "total": g.round_trips}
    res.snapshot = measure.first_snapshot(doc)
    return res


def bench_full(label: str, scenario: dict[str, Any], reports: Path) -> Result:
    path = scenarios.write(scenario, reports / "scenarios")
    sc = scenarios.resolved(path)
    # one ticket per estate: each full run is its own change on a fresh lab (this admin box's earlier runs of
    # a ticket are that change's history: a second run of CHG-BENCH-1 here would take its phases as done)
    run_dir = _run(path, reports, "--apply", "--change-ticket", f"CHG-BENCH-{sc['name']}")
    doc = measure.load(run_dir)
    latency = float(sc["latency_sec"]) / float(sc["speed"])
    res = Result(label, "full", sc, run_dir, latency, float(sc["speed"]), measure.per_segment(doc),
                 measure.whole(doc), measure.startup(doc),
                 hosts=len(sc["cluster"]["nodes"]) + len(sc["biztalk"]["servers"]))
    phases = bound.full_run(sc)
    g, r = bound.gate(), bound.rehearsal(sc)
    res.bounds = {"gate": g.seconds(res.speed, latency), "rehearsal": r.seconds(res.speed, latency),
                  **{p: b.seconds(res.speed, latency) for p, b in phases.items()}}
    res.bound_rt = {"gate": g.round_trips, "rehearsal": r.round_trips, **{p: b.round_trips for p, b in phases.items()}}
    # the business outage: from the first BizTalk stop (phase 1) to the last start (phase 7)
    res.outage_bound = sum(res.bounds[p] for p in bound.PHASES)
    summary = json.loads((run_dir / "summary.json").read_text())
    outage = ((summary.get("recap") or {}).get("outage") or {}).get("seconds")
    res.outage = float(outage) if outage is not None else None
    # the run as a whole: every phase's bound plus the gate's (the checks between phases add nothing)
    res.bounds["total"] = sum(res.bounds.values())
    res.bound_rt["total"] = sum(res.bound_rt.values())
    return res


# --- printing ------------------------------------------------------------------------------------------
def table(res: Result) -> str:
    head = (f"### {res.label}: {res.kind}, {res.hosts} hosts, latency {res.latency * 1000:.0f} ms/call, "
            f"speed {res.speed:g} (start-up before the first request: {res.startup:.2f} s)\n\n"
            "| segment | wall s | bound s | measured/bound | WinRM calls | critical path (bound) | SQL | "
            "poll sleep s (looks) | talking s | own s | estate span s |\n|---|---|---|---|---|---|---|---|---|---|---|\n")
    rows = []
    order = ["gate", "rehearsal"] + bound.PHASES + ["checks", "total"]
    for name in order:
        f = res.total if name == "total" else res.segments.get(name)
        if f is None:
            continue
        b = res.bounds.get(name)
        rt = res.bound_rt.get(name)
        rows.append(f"| {name} | {f.wall:.2f} | {'' if b is None else f'{b:.2f}'} | "
                    f"{'' if b is None else res.ratio(name)} | {f.calls} | {f.critical_path}"
                    f"{'' if rt is None else f' ({rt})'} | {f.statements} | {f.poll_sleep:.2f} ({f.polls}) | "
                    f"{f.in_calls:.2f} | {f.own:.2f} | {f.span:.2f} |")
    return (head + "\n".join(rows) + "\n" + ("\n" + res.cpu_line() if res.kind == "gate" and res.snapshot else "")
            + ("\n" + res.outage_line() if res.outage_line() else ""))


def scale_table(gates: list[Result], fulls: list[Result]) -> str:
    out = ["| BizTalk servers | hosts | gate wall s | gate estate span s | gate calls | gate critical path | "
           "full wall s | full calls | full critical path | full bound s | full measured/bound |",
           "|---|---|---|---|---|---|---|---|---|---|---|"]
    fulls_by = {len(r.scenario["biztalk"]["servers"]): r for r in fulls}
    for g in gates:
        n = len(g.scenario["biztalk"]["servers"])
        f = fulls_by.get(n)
        out.append(f"| {n} | {g.hosts} | {g.total.wall:.2f} | {g.total.span:.2f} | {g.total.calls} | {g.total.critical_path} | "
                   + (f"{f.total.wall:.2f} | {f.total.calls} | {f.total.critical_path} | {f.bounds['total']:.2f} | "
                      f"{f.ratio('total')} |" if f else "| | | | |"))
    return "\n".join(out) + "\n"


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} CPUs, {platform.system()} {platform.release()}, Python {platform.python_version()}"


# --- the criteria of issue 8 ------------------------------------------------------------------------------
def gate_criteria(gate: Result) -> list[str]:
    """What fails of: wall ≤ 2.5 × latency (after the fixed start-up), calls = hosts, critical path 1."""
    problems = []
    if gate.total.wall > 2.5 * gate.latency:
        problems.append(f"gate wall {gate.total.wall:.2f} s > 2.5 × {gate.latency:.2f} s")
    if gate.total.calls != gate.hosts:
        problems.append(f"gate made {gate.total.calls} WinRM calls for {gate.hosts} hosts")
    if gate.total.critical_path != 1:
        problems.append(f"gate critical path {gate.total.critical_path} (want 1)")
    return problems


def scale_criteria(small: Result, large: Result, *, figure: str = "wall") -> list[str]:
    """Gate on the large estate ≤ 1.5 × on the small one. `wall` (the issue's figure, the default) runs from
    the first request to the last verdict; `span` is the estate's part of it, first request to last answer."""
    a, b = getattr(small.total, figure), getattr(large.total, figure)
    if b > 1.5 * a:
        return [f"gate {figure} on {large.hosts} hosts {b:.2f} s > 1.5 × {a:.2f} s on {small.hosts}"]
    return []


def full_criteria(full: Result, limit: float) -> list[str]:
    r = full.ratio("total")
    return [f"full run measured/bound {r} > {limit}"] if r is None or r > limit else []


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m selftest.bench", description=__doc__)
    ap.add_argument("--speed", type=float, default=SPEED, help="lab speed of the full runs (default 20)")
    ap.add_argument("--latency", type=float, default=scenarios.LATENCY_REAL, help="real seconds per WinRM call")
    ap.add_argument("--scale", default="2,8,32", help="BizTalk server counts of the scale estates")
    ap.add_argument("--no-scale-full", action="store_true", help="only the gate on the scale estates")
    ap.add_argument("--limit", type=float, default=1.3, help="full run measured/bound must not exceed this")
    ap.add_argument("--reports", default=None, help="where the runs' reports go (default: a temp dir)")
    ap.add_argument("--host-latency", type=float, default=HOST_LATENCY,
                    help="also run the scale gates at this latency: a real host's cost of a call (default 1 s)")
    ap.add_argument("--json", default=None, help="write every figure to this file")
    args = ap.parse_args(argv)
    reports = Path(args.reports or tempfile.mkdtemp(prefix="entsso-bench-"))
    print(f"# entsso benchmark\n\nmachine: {machine()}\nreports: {reports}\n")
    problems: list[str] = []

    gate = bench_gate("default lab", scenarios.default_scenario(args.speed, args.latency), reports)
    print(table(gate))
    problems += gate_criteria(gate)
    full = bench_full("default lab", scenarios.default_scenario(args.speed, args.latency), reports)
    print(table(full))
    problems += full_criteria(full, args.limit)

    counts = [int(n) for n in args.scale.split(",") if n.strip()]
    gates = [bench_gate(f"{n} BizTalk servers × 8", scenarios.scale_scenario(n, args.speed, args.latency), reports)
             for n in counts]
    fulls = [] if args.no_scale_full else [
        bench_full(f"{n} BizTalk servers × 8", scenarios.scale_scenario(n, args.speed, args.latency), reports)
        for n in counts]
    for r in gates + fulls:
        print(table(r))
    print("## scale\n")
    print(scale_table(gates, fulls))
    if len(gates) >= 2:
        problems += scale_criteria(gates[0], gates[-1])
        # the same at a real host's cost of a call: the CPU the suite spends per host fits in the wait
        host_gates = [bench_gate(f"{n} BizTalk servers × 8, {args.host_latency:g} s a call",
                                 scenarios.scale_scenario(n, args.speed, args.host_latency), reports)
                      for n in (counts[0], counts[-1])]
        for r in host_gates:
            print(table(r))
        found = scale_criteria(*host_gates)
        print(f"At {args.host_latency:g} s a call: gate wall {host_gates[1].total.wall:.2f} s on {host_gates[1].hosts} "
              f"hosts vs {host_gates[0].total.wall:.2f} s on {host_gates[0].hosts}: "
              f"{host_gates[1].total.wall / host_gates[0].total.wall:.2f} × ({'not ' if found else ''}within 1.5 ×)\n")
        problems += found
        gates += host_gates
    if args.json:
        Path(args.json).write_text(json.dumps(
            {"machine": machine(), "runs": [{"label": r.label, "kind": r.kind, "hosts": r.hosts, "latency": r.latency,
                                             "speed": r.speed, "startup": r.startup, "bounds": r.bounds,
                                             "bound_round_trips": r.bound_rt, "total": r.total.row(),
                                             "segments": {k: v.row() for k, v in r.segments.items()}}
                                            for r in [gate, full, *gates, *fulls]]}, indent=1))
    print("## criteria\n")
    print("\n".join(f"- FAILED: {p}" for p in problems) or "- all met")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
