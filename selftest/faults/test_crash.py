"""Crash consistency: the admin box killed outright (SIGKILL: no handler runs, nothing is flushed but
what the journal already fsynced) at moments spread over a full run, each followed by the change's own
command. Every one must end `completed`, with BizTalk exactly as before the change, the estate as a
clean run leaves it, and no step done twice that must not be (an installer run twice on a node, a
second master secret backup).

CI kills at 20 seeded moments (each right after the k-th step's intent reached the journal: a step in
flight); ENTSSO_FAULT_MATRIX=full (make faults) kills after every step of the run."""
from __future__ import annotations

import os
import random
import signal
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from entsso.lab.launcher import LabProcess
from selftest.e2e.suite import run_suite, spawn_suite
from selftest.e2e.test_change import biztalk_state
from selftest.faults.matrix import final_state

SCENARIO = "package"
SEED = 13
CI_KILLS = 6  # the CI sample (make faults kills at every step)
ONCE = ("Install-SsoUpdate", "Backup-MasterSecret")  # must never reach a host twice in one change


@dataclass
class Crash:
    after_intent: int
    killed_in: str = ""  # the phase of the last journalled record before the kill
    step: str = ""
    problems: list[str] = field(default_factory=list)


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory) -> tuple[int, dict[str, Any], dict[str, Any]]:
    work = tmp_path_factory.mktemp("crash-clean")
    lab = LabProcess(SCENARIO, work / "lab-inventory.yml").start()
    try:
        before = biztalk_state(lab)
        run = run_suite(work / "reports", f"--inventory={lab.inventory_path}", "--apply", "--change-ticket",
                        "CHG-CLEAN", env=dict(lab.env))
        assert run.returncode == 0, run.output[-3000:]
        intents = sum(1 for r in run.journal() if r["kind"] == "intent")
        assert biztalk_state(lab) == before
        return intents, final_state(lab.state()), before
    finally:
        lab.stop()


def crash_once(k: int, work: Path, clean_final: dict[str, Any], before: dict[str, Any]) -> Crash:
    out = Crash(k)
    lab = LabProcess(SCENARIO, work / "lab-inventory.yml").start()
    try:
        env, ticket = dict(lab.env), f"CHG-KILL-{k}"
        command = [f"--inventory={lab.inventory_path}", "--apply", "--change-ticket", ticket]
        running = spawn_suite(work / "reports", *command, env=env)
        records = running.wait_for(lambda rs: sum(r["kind"] == "intent" for r in rs) >= k, timeout=240)
        running.proc.send_signal(signal.SIGKILL)
        running.proc.wait(30)
        last = [r for r in records if r["kind"] == "intent"][-1]
        out.killed_in, out.step = last.get("phase", ""), f"{last.get('step')} on {last.get('host') or 'SQL Server'}"
        resumed = run_suite(work / "reports", *command, env=env, timeout=400)
        if resumed.returncode != 0:
            out.problems.append(f"the change's command did not complete it (exit {resumed.returncode}): "
                                f"{resumed.output[-1200:]}")
            return out
        if resumed.summary.get("verdict") != "completed":
            out.problems.append(f"verdict {resumed.summary.get('verdict')}: {resumed.summary.get('verdict_reason')}")
        if biztalk_state(lab) != before:
            out.problems.append("BizTalk is not as before the change")
        state = lab.state()
        if final_state(state) != clean_final:
            got = final_state(state)
            out.problems.append("the estate differs from a clean run's: "
                                + str({k2: got[k2] for k2 in got if got[k2] != clean_final.get(k2)})[:800])
        received = state["winrm"]["received"]
        # each rehearsal (before phase 1: the killed run's, and the resumed run's when the change had not yet
        # passed its gate) makes one backup of its own, named as a rehearsal; the change's is the rest
        rehearsals = sum(1 for path in (work / "reports").glob("*/journal.jsonl")
                         for line in path.read_text().splitlines() if '"kind": "rehearsal"' in line)
        for key, n in received.items():
            own = n - (rehearsals if key == "NODE1 Backup-MasterSecret" else 0)
            if key.split()[1] in ONCE and own > 1:
                out.problems.append(f"{key} reached the host {own} times for the change ({n} in all)")
    except Exception as exc:  # noqa: BLE001 - one crash's failure is a finding, not the matrix's end
        out.problems.append(f"{type(exc).__name__}: {exc}")
    finally:
        lab.stop()
    return out


def kill_points(intents: int) -> list[int]:
    if os.environ.get("ENTSSO_FAULT_MATRIX") == "full":
        return list(range(1, intents + 1))
    rng = random.Random(SEED)
    return sorted(rng.sample(range(1, intents + 1), min(CI_KILLS, intents)))


def test_a_run_killed_at_any_moment_is_completed_by_the_changes_own_command(clean, tmp_path, capsys):
    intents, clean_final, before = clean
    assert intents > 40  # the full run's steps, counted from its own journal
    points = kill_points(intents)
    with ThreadPoolExecutor(max_workers=3) as pool:
        crashes = list(pool.map(lambda k: crash_once(k, tmp_path / f"kill-{k:03d}", clean_final, before), points))
    lines = [f"crash consistency: {len(crashes)} kills (SIGKILL) over a run of {intents} steps, "
             f"{sum(not c.problems for c in crashes)} completed clean by the change's own command"]
    for c in crashes:
        lines.append(f"  {'ok ' if not c.problems else 'BAD'} after step {c.after_intent:3d} ({c.killed_in}: {c.step})"
                     + (f"  -- {c.problems[0][:400]}" if c.problems else ""))
    report = "\n".join(lines)
    with capsys.disabled():
        print("\n" + report)
    assert all(not c.problems for c in crashes), report
