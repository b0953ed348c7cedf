"""The run's verdict, reached once at its end (entsso.report.story says what it is): for a change left
unfinished, where the estate is now and how to continue; for --plan, the plan written beside the report;
for a read-only gate that failed on an estate an earlier change left part-way, how out. The report, the
console and summary.json all tell this one conclusion."""
from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from entsso.change import window
from entsso.change.rehearsal import UNREHEARSABLE
from entsso.change.run import Run
from entsso.report import causes, recap, story
from entsso.report.keys import (CAUSES_KEY, CONCLUSION_KEY, ITEMS_KEY, OUTCOMES_KEY, PLAN_SUMMARY_KEY, RUN_KEY,
                                TEST_PLAN_KEY)


def conclude(config: pytest.Config) -> dict[str, Any] | None:
    """The run's verdict and, for a change left unfinished, where the estate is (one fresh snapshot
    compared with the baseline). Once per run; the report, summary.json and the console use it."""
    run = config.stash.get(RUN_KEY, None)
    if run is None:
        return None
    done = config.stash.get(CONCLUSION_KEY, None)
    if done is not None:
        return done
    failed = list(run.failed_tests)
    v = story.verdict(run, failed, gate_only=gate_only(config))
    out: dict[str, Any] = {"verdict": v.verdict, "reason": v.reason, "phase": v.phase, "outage": None,
                           "continue": None, "record": None}
    if run.options.apply and v.verdict in ("stopped", "interrupted"):
        try:
            run.reading_at_end = True  # a further Ctrl-C now cuts this read short (entsso.session)
            snap = run.snapshot(fresh=True)  # each host once more: what the business lives with now
            run.final_snapshot = snap
            out["outage"] = story.outage(run, run.baseline(), snap).to_dict()
        except KeyboardInterrupt:  # Ctrl-C again while the estate was read
            out["outage_error"] = ("the estate was not read at the end (Ctrl-C again cut that read short): "
                                   "read it with the gate, or continue the change")
        except BaseException as exc:  # noqa: BLE001 - a dead estate: say so
            out["outage_error"] = f"the estate could not be read at the end ({type(exc).__name__}: {exc})"
        finally:
            run.reading_at_end = False
        out["continue"] = story.continue_line(run) if story.change_began(run) else None
        out["record"] = story.record_line(run)
    if v.verdict == "backed-out":  # which nodes stay upgraded, as the estate shows it now
        try:
            snap = run.snapshot(fresh=True)
            run.final_snapshot = snap
            out["reason"] += " " + story.upgraded_nodes(run, snap)
        except BaseException as exc:  # noqa: BLE001 - a second Ctrl-C or a dead estate: say so
            out["reason"] += f" Which nodes stay upgraded could not be read ({type(exc).__name__})."
    if run.options.plan and run._snapshot is not None:
        out["plan"] = write_plan(run, config)
        if not failed:
            out["reason"] = ("A plan (read-only): nothing was changed; the gate holds now. " + out["plan"])
        else:
            out["reason"] = (f"A plan (read-only): nothing was changed; the gate refuses now ({len(failed)} "
                             f"check(s) failed), so the change would not start. " + out["plan"])
    found = [c for c in config.stash.get(CAUSES_KEY, []) if c.reported_by]
    if found and v.verdict in ("read-only", "refused"):  # the cause first, once, and what it blocked
        out["reason"] = (out["reason"].rstrip(":") + " " + causes.sentence(found)).strip()
    if not run.options.apply and failed and run._snapshot is not None and not found:
        from entsso.estate import checks as gate

        half = gate.half_done(run.snapshot(), run)
        if half:  # an earlier attempt's leftovers (its record on a node): say so, and the commands out of it
            from entsso.change.run import change_command

            path = getattr(run.inventory, "path", None)
            opened = [r for r in run.snapshot().change_records() if r.status == "open"]
            ways = "; ".join(f"continue change {r.ticket} with {change_command(path, r.ticket)}, or back it out "
                             f"with {change_command(path, r.ticket, backout=True)}" for r in opened[:2])
            out["reason"] += f" The estate looks like a change stopped part-way: {half}. {ways[:1].upper()}{ways[1:]}."
    if run.options.apply:  # the change's recap, from every run's journal (this one's too)
        from entsso.change import journal
        from entsso.report.html import change_runs

        records = list(journal.read(run.dir / "journal.jsonl"))
        try:
            out["recap"] = recap.build(change_runs(run, records))
        except Exception as exc:  # noqa: BLE001 - a recap is never worth losing the verdict
            out["recap"] = None
            out["recap_error"] = f"{type(exc).__name__}: {exc}"
    out["warnings"] = []
    if run._snapshot is not None:  # what the gate does not refuse on but the operator must know (issue 28)
        from entsso.estate import checks as gate

        try:
            out["warnings"] = gate.warnings(run._snapshot)
        except Exception as exc:  # noqa: BLE001 - never worth losing the verdict
            out["warnings"] = [f"the warnings could not be worked out ({type(exc).__name__}: {exc})"]
    config.stash[CONCLUSION_KEY] = out
    assert run.journal is not None  # build_run opened it
    run.journal.write("verdict", verdict=v.verdict, reason=v.reason, phase=v.phase,
                      outage=out.get("outage"), resume=run.resume_command() if out["continue"] else None)
    return out


def write_plan(run: Run, config: pytest.Config) -> str:
    """--plan: plan.md and plan.html beside the report (entsso.change.plan), journalled; the sentence that
    says where they are."""
    from entsso.change import plan

    p = plan.build(run, run.snapshot(), config.stash.get(TEST_PLAN_KEY, {}))
    (run.dir / "plan.md").write_text(plan.to_markdown(p, run), encoding="utf-8")
    (run.dir / "plan.html").write_text(plan.to_html(p, run), encoding="utf-8")
    assert run.journal is not None  # build_run opened it
    run.journal.write("plan", operations=len(p.operations), changes=sum(not o.already for o in p.operations),
                      skipped=p.skipped)
    config.stash[PLAN_SUMMARY_KEY] = {
        "operations": [{"phase": o.phase, "step": o.step, "host": o.host, "job": o.job, "change": o.change,
                        "already": o.already} for o in p.operations],
        "skipped": p.skipped, "estimates": p.estimates}
    changes = sum(not o.already for o in p.operations)
    return (f"The plan: {len(p.operations)} operations ({changes} that change the estate), written to "
            f"{run.dir / 'plan.md'} and plan.html.")


def run_backout(config: pytest.Config) -> bool:
    run = config.stash.get(RUN_KEY, None)
    return bool(run and run.options.backout)


def gate_only(config: pytest.Config) -> bool:
    """`pytest tests_pre --apply`: the run asked for phases 1-2 only."""
    items = config.stash.get(ITEMS_KEY, [])
    return bool(items) and not any(i.get_closest_marker("post") for i in items)


def _window(run: Run) -> dict[str, Any] | None:
    """The change window as this run held the change against it (--window-ends), with the worst case."""
    ends = run.options.window_ends
    if ends is None:
        return None
    return {"ends": ends.isoformat(), "time_zone": ends.tzname(),
            "worst_case_minutes": round(window.worst_case(run) / 60, 1)}


def _rehearsal(run: Run) -> dict[str, Any] | None:
    """What this run rehearsed (entsso.change.rehearsal), and what no rehearsal can try, with why."""
    if run.rehearsal is None:
        return None
    return {"passed": all(r.ok for r in run.rehearsal), "operations": [r.to_dict() for r in run.rehearsal],
            "unrehearsable": UNREHEARSABLE}


def write_summary(run: Run, config: pytest.Config) -> None:
    """summary.json: the verdict, the change's record, the calls and every test's outcome, for machines."""
    outcomes = config.stash.get(OUTCOMES_KEY, {})
    out = conclude(config) or {}
    summary = {
        "run": run.id, "change_ticket": run.options.change_ticket, "apply": run.options.apply,
        "verdict": out.get("verdict"), "verdict_reason": out.get("reason"), "verdict_phase": out.get("phase"),
        "estate_now": out.get("outage"), "continue": out.get("continue"), "recap": out.get("recap"),
        "warnings": out.get("warnings") or [],
        "plan": config.stash.get(PLAN_SUMMARY_KEY, None),
        "window": _window(run),
        "rehearsal": _rehearsal(run),
        "topology": run.topology,  # issue 26: the cluster's topology as the gate read it
        "change": ({"record": run.change_record.path, "record_on": run.change_record.kept_on,
                    "status": run.change_record.status, "phases_finished": list(run.change_record.phases_finished),
                    "runs": list(run.change_record.runs), "gate_passed_by": run.change_record.gate_passed_by}
                   if run.change_record else None),
        "winrm_calls": run.calls.count(), "winrm_per_host": run.calls.per_host(),
        "sql_statements": run.statements.count(),
        "phases": run.phase_stats,
        "calls": run.call_trace,
        "tests": outcomes,
        "totals": {k: sum(1 for v in outcomes.values() if v == k) for k in ("passed", "failed", "error", "skipped")},
        "finished": datetime.now(UTC).isoformat(),
    }
    (run.dir / "summary.json").write_text(json.dumps(summary, indent=2, default=str))


# each verdict its own colour, as the report's banner (entsso.report.html.BANNER_COLOURS): green only for a
# completed upgrade; a backout is magenta (in service, not upgraded), a refusal yellow (nothing changed)
CONSOLE_COLOURS: dict[str, dict[str, bool]] = {
    "completed": {"green": True}, "backed-out": {"purple": True}, "refused": {"yellow": True},
    "read-only": {"blue": True}, "stopped": {"red": True}, "interrupted": {"red": True}}


def to_junit(config: pytest.Config, out: dict[str, Any]) -> None:
    """junit.xml says the verdict too: a testsuite property `entsso.verdict` (with its reason); a backout adds
    a skipped case `change::upgrade` (the upgrade was not done), so it never reads as a passed upgrade."""
    from _pytest.junitxml import xml_key

    xml = config.stash.get(xml_key, None)
    if xml is None:
        return
    xml.add_global_property("entsso.verdict", out["verdict"])
    xml.add_global_property("entsso.verdict_reason", out["reason"])


def to_console(tr: Any, config: pytest.Config) -> None:
    """The verdict as the console's last word (tr: pytest's terminal reporter), with where BizTalk is and
    how to continue."""
    out = conclude(config)
    if not out:
        return
    colour = CONSOLE_COLOURS.get(out["verdict"], {"red": True})
    if out.get("plan"):
        from entsso.change import plan

        text = (config.stash[RUN_KEY].dir / "plan.md").read_text(encoding="utf-8")
        tr.write_line(plan.brief(text))
    tr.write_sep("=", f"entsso: {out['verdict'].upper()}", bold=True, **colour)
    tr.write_line(out["reason"])
    for warning in out.get("warnings") or []:
        tr.write_line(f"Warning: {warning}", yellow=True)
    if out.get("recap"):
        for line in recap.lines(out["recap"]):
            tr.write_line(line, bold=line.startswith("BizTalk"))
    o = out.get("outage")
    if o is not None:
        tr.write_line(f"Where the estate is: SSODB's master secret server {o['secret_server']}; ENTSSO resource "
                      f"{o['resource']}; versions " + ", ".join(f"{h} {v}" for h, v in o["versions"].items()))
        if o["down"]:
            tr.write_line(f"BizTalk down compared with before the change ({len(o['down'])}): "
                          + "; ".join(d["what"] for d in o["down"][:8]) + (" …" if len(o["down"]) > 8 else ""))
    elif out.get("outage_error"):
        tr.write_line(out["outage_error"])
    if out.get("record"):
        tr.write_line(out["record"])
    if out.get("continue"):
        tr.write_line(out["continue"], bold=True)
        if not run_backout(config):
            tr.write_line(f"Or back it out (the estate in service as before, upgraded nodes stay upgraded): "
                          f"{config.stash[RUN_KEY].backout_command()}")
