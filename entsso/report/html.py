"""The report's story as HTML (pytest-html's summary slots; entsso.report.plugin puts it there): the verdict
banner, who and when, before → after, the master secret backup, where the estate is, the change's runs,
the timeline and each phase's log, the site's checks, and what to do next."""
from __future__ import annotations

import getpass
import html
import socket
from collections import OrderedDict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from entsso.report.topology import topology_html
from entsso.change import journal
from entsso.change.run import Run
from entsso.domain import change
from entsso.report import gantt
from entsso.change import stepnames as S

PHASE_TITLES = OrderedDict(change.ALL_TITLES)


def mode(run: Run) -> str:
    if run.options.backout:
        return "backout (changes the estate: puts it back in service)"
    if run.options.resume:
        return f"continues change {run.options.change_ticket} (--resume {run.options.resume})"
    return "apply (changes the estate)" if run.options.apply else "gate (read-only)"


# each verdict its own colour: green only for a completed upgrade; a backout purple (in service, not upgraded)
BANNER_COLOURS = {"completed": "#1a7f37", "backed-out": "#6f2da8", "stopped": "#b35900", "interrupted": "#b00020",
                  "refused": "#7a6a00", "read-only": "#1f4e99", "in progress": "#555"}


def banner_html(run: Run, conclusion: dict[str, Any] | None) -> str:
    """The verdict at the top, in a colour: green only for a completed change."""
    e = html.escape
    if conclusion is None:  # a rewrite during the change: a run that dies now leaves this, never a green one
        verdict, reason = "in progress", (f"The change was in phase {run.current_phase} when this report was "
                                          "written; if the run ended without a later report, it did not finish.")
    else:
        verdict, reason = conclusion["verdict"], conclusion["reason"]
    colour = BANNER_COLOURS.get(verdict, "#555")
    return (f'<div class="entsso-verdict" data-verdict="{e(verdict)}" style="background:{colour};color:#fff;'
            f'padding:10px 14px;margin:8px 0;font-size:1.2em"><b>{e(verdict.upper())}</b> — '
            f'{e(run.options.change_ticket or "no change ticket")}: {e(reason)}</div>')


def outage_html(conclusion: dict[str, Any] | None) -> str:
    """What the business lives with while the change is unfinished."""
    if not conclusion or (conclusion.get("outage") is None and not conclusion.get("outage_error")):
        return ""
    e = html.escape
    if conclusion.get("outage") is None:
        return (f'<div class="entsso-estate-now"><h3>Where the estate is now</h3><p>{e(conclusion["outage_error"])}</p>'
                '</div>')
    o = conclusion["outage"]
    rows = "".join(f"<tr><td>{e(d['what'])}</td><td>{e(d['before'])}</td><td>{e(d['now'])}</td>"
                   f"<td>{e(d['since'] or 'since this change silenced BizTalk')}</td></tr>" for d in o["down"])
    down = (f"<p><b>{len(o['down'])} part(s) of BizTalk are down compared with before the change:</b></p>"
            '<table class="entsso-down" border="1" cellpadding="3" style="border-collapse:collapse">'
            f"<tr><th>What</th><th>Before the change</th><th>Now</th><th>Since (UTC)</th></tr>{rows}</table>"
            if o["down"] else
            "<p>BizTalk is as it was before the change (nothing down compared with the baseline).</p>")
    versions = ", ".join(f"{h} {v or 'unknown'}" for h, v in o["versions"].items())
    more = (f"<p>Master secret server (SSODB): <b>{e(str(o['secret_server']))}</b>; ENTSSO cluster resource: "
            f"{e(str(o['resource']))}.</p><p>SSO versions: {e(versions)}.</p>")
    if o["unreachable"]:
        more += f"<p>Not answering: {e(', '.join(o['unreachable']))}.</p>"
    return f'<div class="entsso-estate-now"><h3>Where the estate is now</h3>{down}{more}</div>'


def story_html(run: Run, *, final: bool = False, conclusion: dict[str, Any] | None = None,
               not_repeated: list[str] | None = None) -> str:
    records = list(journal.read(run.dir / "journal.jsonl"))
    e = html.escape
    from entsso.report import earlier, recap

    runs = change_runs(run, records)
    parts = [banner_html(run, conclusion), recap.to_html((conclusion or {}).get("recap")),
             f"<h2>Change {e(run.options.change_ticket or '(read-only gate)')} — {e(mode(run))}</h2>",
             who_when_html(run, ended=datetime.now(UTC) if final else None,
                           change_started=earlier.change_started(runs) if len(runs) > 1 else None),
             before_after_html(run), earlier.earlier_runs_html(runs, not_repeated or [])]
    # the change's evidence from every run of it: the backup an earlier run made stays in a resumed run's report
    parts.append(secret_backup_html([r for _, recs in runs for r in recs]))
    parts.append(rehearsal_html([r for _, recs in runs for r in recs]))
    parts.append(checklist_html([r for _, recs in runs for r in recs]))
    parts.append(topology_html(run.topology))  # issue 26
    if run.stopped:
        phase, message = run.stopped
        parts.append(f'<div class="entsso-stopped" style="border:2px solid #c00;padding:8px;margin:8px 0">'
                     f"<b>The run stopped in phase {e(PHASE_TITLES.get(phase, phase))}.</b>"
                     f"<pre style='white-space:pre-wrap'>{e(message)}</pre>"
                     f"{recovery_html(run, phase)}</div>")
    elif run.interrupted:
        parts.append(f'<div class="entsso-stopped" style="border:2px solid #c00;padding:8px;margin:8px 0">'
                     f"<b>The run was interrupted ({e(run.interrupted)}) in phase "
                     f"{e(PHASE_TITLES.get(run.current_phase, run.current_phase))}.</b>"
                     f"{recovery_html(run, run.current_phase)}</div>")
    warned = (conclusion or {}).get("warnings") or []
    if warned:
        parts.append('<div class="entsso-warnings" style="border:2px solid #b80;padding:8px;margin:8px 0">'
                     "<b>Warnings (the gate does not refuse on these; read them before phase 1)</b><ul>"
                     + "".join(f"<li>{e(w)}</li>" for w in warned) + "</ul></div>")
    parts.append(outage_html(conclusion))
    parts.append(runs_html(run, runs))
    parts.append("<h3>Timeline</h3>")
    parts.append("<p>Every run of this change"
                 f"{' (' + str(len(runs)) + ' runs, the pauses between them cut out)' if len(runs) > 1 else ''}: "
                 "each phase (blue: what it took; dashed: the longest the plan gives it) and each host's steps. "
                 "Hover a bar for its step, outcome and time.</p>")
    parts.append(f'<div class="entsso-gantt-box" style="overflow-x:auto">{gantt.gantt_svg(runs)}</div>')
    parts.append("<details class='entsso-timeline-table'><summary>Every operation of this run, as a table</summary>"
                 + timeline_html(records) + "</details>")
    logs = [(p, run.phase_logs[p]) for p in PHASE_TITLES if run.phase_logs.get(p) and p != "gate"]
    if logs:
        parts.append("<h3>Log of each phase</h3>")
        for p, lines in logs:
            parts.append(f"<details class='entsso-phase-log'><summary>{e(PHASE_TITLES.get(p, p))} "
                         f"({len(lines)} lines)</summary><pre>{e(chr(10).join(lines))}</pre></details>")
    return "\n".join(parts)


def change_runs(run: Run, records: list[dict[str, Any]]) -> list[tuple[str, list[dict[str, Any]]]]:
    """This change's runs whose journals are in this reports folder (oldest first), this run last: a
    stop and its resume are one change, and each run's report shows all of it."""
    out: list[tuple[str, list[dict[str, Any]]]] = []
    if run._snapshot is not None and run.options.change_ticket:
        for prior in run.history().local:
            if prior.applied and prior.run_id != run.id:
                out.append((prior.run_id, list(journal.read(run.dir.parent / prior.run_id / "journal.jsonl"))))
    return [*out, (run.id, records)]


def runs_html(run: Run, runs: list[tuple[str, list[dict[str, Any]]]]) -> str:
    """The change's runs: this admin box's journals of it, and the ones the estate's record names that were
    made elsewhere. Nothing for a change of one run."""
    recorded = list(run.change_record.runs) if run.change_record is not None else []
    if run.change_record is None and run._snapshot is not None and run.options.change_ticket:
        recorded = list(run.history().runs)
    here = {rid for rid, _ in runs}
    elsewhere = [rid for rid in recorded if rid not in here]
    if len(runs) < 2 and not elsewhere:
        return ""
    e = html.escape
    rows = []
    for rid, recs in runs:
        start = next((r for r in recs if r.get("kind") == "run_started"), {})
        verdict = next((r for r in reversed(recs) if r.get("kind") == "verdict"), None)
        done = sorted({r["phase"] for r in recs if r.get("kind") == "phase_finished" and r.get("outcome") == "done"
                       and r.get("complete", True)}, key=lambda p: change.PHASE_NUMBERS.get(p, 99))
        how = ("backed the change out" if start.get("backout") or "backout" in done
               else f"continued it (--resume {start['resume']})" if start.get("resume")
               else "started the change" if rid == runs[0][0] else "continued it (same ticket)")
        outcome = (verdict["verdict"] if verdict else "no verdict (the run ended without one)")
        link = ("this report" if rid == run.id else
                f"<a href='../{e(rid)}/report.html'>its report</a>" if (run.dir.parent / rid / "report.html").exists()
                else "no report")
        rows.append(f"<tr><td>{e(rid)}</td><td>{e(str(start.get('ts', ''))[:19].replace('T', ' '))}</td>"
                    f"<td>{e(how)}</td><td>{e(', '.join(PHASE_TITLES.get(p, p) for p in done) or 'none')}</td>"
                    f"<td>{e(outcome)}</td><td>{link}</td></tr>")
    for rid in elsewhere:
        rows.append(f"<tr><td>{e(rid)}</td><td colspan='4'>made from another admin box (named by the change's record "
                    "on "
                    f"the estate; its journal is not in this reports folder)</td><td>—</td></tr>")
    return ("<h3>This change's runs</h3><p>One change, several runs (a stop, then a resume): this report shows all of "
            "them; the timeline below draws each run's journal.</p>"
            '<table class="entsso-runs" border="1" cellpadding="3" style="border-collapse:collapse">'
            "<tr><th>Run</th><th>Started (UTC)</th><th>What it did</th><th>Phases it finished</th><th>Its verdict</th>"
            "<th>Report</th></tr>" + "".join(rows) + "</table>")


def _when(at: datetime | None) -> str:
    """A moment with its date and UTC offset, in this machine's time and in UTC: unambiguous across midnight."""
    if at is None:
        return ""
    at = at if at.tzinfo else at.replace(tzinfo=UTC)
    local, utc = at.astimezone(), at.astimezone(UTC)
    text = local.isoformat(sep=" ", timespec="seconds")
    return text if local.utcoffset() == timedelta(0) else f"{text} ({utc.isoformat(sep=' ', timespec='seconds')})"


def who_when_html(run: Run, ended: datetime | None, change_started: datetime | None = None) -> str:
    """Who made the change, with which accounts, from where, and when it started and ended: the change's
    start (its first run's) when it took several runs, and this run's start beside it."""
    e = html.escape
    inv = run.inventory
    operator = getpass.getuser()
    sql = (f"SQL login {inv.sql.username}" if inv.sql.auth == "sql"
           else f"{operator}'s Windows logon (Kerberos)")
    began = change_started if change_started is not None and change_started < run.started else run.started
    if ended is not None:
        end = f"{_when(ended)} (after {_duration((ended - began).total_seconds())})"
    else:
        end = "not yet: the run had not ended when this report was written"
    rows = [("Operator", f"{operator} on the admin box {socket.gethostname()}"),
            ("WinRM account", inv.winrm.username), ("SQL Server account", f"{sql} on {inv.sql.server}"),
            ("Started", _when(began) + (f" (the change's first run; this run started {_when(run.started)})"
                                        if began != run.started else "")), ("Ended", end)]
    return ('<table class="entsso-who-when" border="1" cellpadding="3" style="border-collapse:collapse;margin:6px 0">'
            + "".join(f"<tr><th style='text-align:left'>{e(k)}</th><td>{e(v)}</td></tr>" for k, v in rows)
            + "</table>")


def _duration(seconds: float) -> str:
    minutes, sec = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if hours else f"{minutes} min {sec} s" if minutes else f"{sec} s"


def before_after_html(run: Run) -> str:
    """Each host before the change (its baseline) and now (the last look at the estate): what a change
    manager compares first."""
    base, now = run._baseline, run.final_snapshot or run._snapshot
    if base is None or now is None or not (run.options.apply or run.options.backout):
        return ""
    e = html.escape
    view = now.cluster_view()
    owner_now = view.group.owner_node if view and view.group else None

    def mss(host: str, secret_server: str | None, owner: str | None) -> str:
        if secret_server is None:
            return "unknown"
        if secret_server.upper() == host.upper():
            return "yes (outside the cluster)"
        if secret_server.upper() == run.cluster_name.upper() and owner and owner.upper() == host.upper():
            return f"yes, as the cluster {run.cluster_name}"
        return "no"

    def running(states: list[str]) -> str:
        return f"{sum(1 for st in states if st == 'Running')} of {len(states)}" if states else "none"

    def cell(before: str, after: str) -> str:
        if before != after:
            return f"<td class='entsso-changed' style='font-weight:bold'>{e(before)} → {e(after)}</td>"
        return f"<td class='entsso-same'>{e(before)} → {e(after)}</td>"

    rows = []
    for name in [*run.nodes, *run.biztalk_servers]:
        facts = now.hosts.get(name)
        h = facts if facts is not None and facts.reachable else None  # None: not answering
        biztalk = name in run.biztalk_servers
        after_sso = h.sso if h is not None and h.sso else None
        unknown = "not answering" if h is None else "unknown"
        tools_before = base.tools_servers.get(name) if base.tools_servers else None
        cells = [
            cell(base.versions.get(name) or "not installed",
                 (after_sso.version or "not installed") if after_sso else unknown),
            cell(mss(name, base.secret_server, base.group_owner) if base.secret_server else "not recorded",
                 mss(name, now.sql.secret_server, owner_now) if now.sql.reachable else "unknown"),
            cell(tools_before or ("not recorded" if not base.tools_servers else "not set"),
                 (after_sso.tools_server or "not set") if after_sso else unknown),
            cell(base.entsso.get(name) or "not installed",
                 (h.service("ENTSSO").status or "not installed") if h is not None else unknown),
            cell(base.rule_engine.get(name) or "not installed",
                 (h.service("RuleEngineUpdateService").status or "not installed") if h is not None else unknown)
            if biztalk else "<td>—</td>",
            cell(running(list(base.host_instances.get(name, {}).values())),
                 running([i.state for i in h.host_instances if i.in_process]) if h is not None else unknown)
            if biztalk else "<td>—</td>",
        ]
        role = "BizTalk server" if biztalk else "cluster node"
        rows.append(f"<tr><th style='text-align:left'>{e(name)} <small>({role})</small></th>{''.join(cells)}</tr>")
    jobs = run.job_names
    enabled_before = sum(1 for j in jobs if base.jobs_enabled.get(j))
    if now.sql.reachable:
        enabled_now = f"{sum(1 for j in jobs if now.sql.jobs.get(j) and now.sql.jobs[j].enabled)} of {len(jobs)}"
    else:
        enabled_now = "unknown (SQL Server not answering)"
    rows.append(f"<tr><th style='text-align:left'>{e(run.inventory.sql.server)} <small>(SQL Server)</small></th>"
                f"<td colspan='5' style='text-align:right'>SQL Agent jobs of the change enabled</td>"
                f"{cell(f'{enabled_before} of {len(jobs)}', enabled_now)}</tr>")
    head = ("<tr><th>Host</th><th>Enterprise SSO version</th><th>Master secret server</th>"
            "<th>SSO tools point at</th><th>ENTSSO service</th><th>Rule Engine Update service</th>"
            "<th>Host instances running</th></tr>")
    # (no clock times here: the snapshots carry the estate's own clock, which need not be this machine's)
    return ("<h3>Before → after</h3>"
            "<p>Before: the change's baseline, read before it changed anything. After: the estate as this run "
            "last read it. Changed values are in bold.</p>"
            '<table class="entsso-before-after" border="1" cellpadding="3" style="border-collapse:collapse">'
            + head + "".join(rows) + "</table>")


def site_checks_html(folder: Path | None, collected: list[Any], outcomes: dict[str, str]) -> str:
    """The site's own checks (entsso.change.sitechecks) from folder: each test on each host, in the gate and
    after the change. collected: the run's tests; outcomes: node id -> passed, failed, error or skipped."""
    from entsso.change.sitechecks import is_site_check

    items = [i for i in collected if is_site_check(i.path, folder)]
    if not items:
        return ""
    e = html.escape
    table: OrderedDict[tuple[str, str], dict[str, str]] = OrderedDict()
    for i in items:
        spec = getattr(i, "callspec", None)
        name, moment = spec.params["host"] if spec else (i.name, "gate")
        table.setdefault((i.originalname, name), {})[moment] = outcomes.get(i.nodeid, "not run yet")
    colours = {"passed": "#1a7f37", "failed": "#cf222e", "error": "#cf222e", "skipped": "#8c959f"}
    rows = "".join(f"<tr><td>{e(test.removeprefix('test_').replace('_', ' '))}</td><td>{e(host)}</td>"
                   + "".join(f"<td style='color:{colours.get(m.get(k, ''), '#555')}'>"
                             f"{e(m.get(k, 'not in this run'))}</td>"
                             for k in ("gate", "after")) + "</tr>"
                   for (test, host), m in table.items())
    return (f'<h3>Site checks</h3><p>The site\'s own checks from {e(str(folder))}, each on each host: in the gate '
            "(before anything changed) and after the change.</p>"
            '<table class="entsso-site-checks" border="1" cellpadding="3" style="border-collapse:collapse">'
            "<tr><th>Check</th><th>Host</th><th>In the gate</th><th>After the change</th></tr>" + rows + "</table>")


def secret_backup_html(records: list[dict[str, Any]]) -> str:
    """Where the master secret backup is: on the node, and the copy off it with its SHA-256."""
    e = html.escape
    copies = [r for r in records if r.get("kind") == "result" and r.get("step") == S.COPY_SECRET_OFF_NODE
              and isinstance(r.get("evidence"), dict) and r["evidence"].get("copy")]
    if not copies:
        return ""
    r = copies[-1]
    ev = r["evidence"]
    backs = [b for b in records if b.get("kind") == "result" and b.get("step") == S.READ_BACK_SECRET_BACKUP
             and isinstance(b.get("evidence"), dict)]
    back = backs[-1]["evidence"] if backs else {}
    read_back = (f"<tr><th style='text-align:left'>Read back on the node</th><td>SHA-256 "
                 f"<code>{e(str(back.get('sha256_on_node')))}</code>; password reminder (SSO read it from the file): "
                 f"{e(repr(back.get('reminder')))}"
                 f"{'' if not back.get('unrestorable') else ' — NOT RESTORABLE: ' + e(str(back['unrestorable']))}"
                 "</td></tr>") if back else ""
    return ('<div class="entsso-secret-backup"><h3>Master secret backup</h3>'
            '<table class="entsso-secret-backup" border="1" cellpadding="3" '
            'style="border-collapse:collapse">'
            f"<tr><th style='text-align:left'>On the node</th>"
            f"<td>{e(str(r.get('file') or ''))} on {e(str(r.get('host')))}</td></tr>"
            f"<tr><th style='text-align:left'>Copy off the node</th><td>{e(ev['copy'])}</td></tr>"
            f"<tr><th style='text-align:left'>SHA-256 of the copy</th>"
            f"<td><code>{e(str(ev.get('sha256')))}</code></td></tr>"
            f"<tr><th style='text-align:left'>Size</th><td>{e(str(ev.get('size')))} bytes</td></tr>"
            + read_back + "</table><p>The password is not in this report: it is the one the operator gave for the "
            "backup.</p></div>")


def checklist_html(records: list[dict[str, Any]]) -> str:
    """The plan's checklist (what the suite cannot check) and whether the operator acknowledged it, each run."""
    seen = [r for r in records if r.get("kind") == "checklist"]
    if not seen:
        return ""
    e, last = html.escape, seen[-1]
    rows = "".join(f"<li>{'acknowledged' if r.get('acknowledged') else 'NOT acknowledged'} — {e(str(r.get('how')))} "
                   f"({e(str(r.get('at', ''))[:19].replace('T', ' '))} UTC, run {e(str(r.get('run')))})</li>"
                   for r in seen)
    return ("<div class='entsso-checklist'><h3>Before phase 1: the operator's checklist</h3><ul>"
            + "".join(f"<li>{e(str(x))}</li>" for x in last.get("items") or []) + f"</ul><ul>{rows}</ul></div>")


def rehearsal_html(records: list[dict[str, Any]]) -> str:
    """The change's rehearsal before phase 1 (entsso.change.rehearsal): what it proved, and what no rehearsal can
    try, with why."""
    e = html.escape
    done = [r for r in records if r.get("kind") == "rehearsal"]
    if not done:
        return ""
    last = done[-1]
    rows = "".join(f"<tr><td>{e(str(o.get('operation')))}</td><td>{e(str(o.get('host') or 'SQL Server'))}</td>"
                   f"<td>{e(str(o.get('what')))}</td><td>{'ok' if o.get('ok') else '<b>FAILED</b>'}</td>"
                   f"<td>{e(str(o.get('detail')))}</td></tr>" for o in last.get("operations") or [])
    never = "".join(f"<li><b>{e(k)}</b>: {e(str(v))}</li>" for k, v in (last.get("unrehearsable") or {}).items())
    return ('<div class="entsso-rehearsal"><h3>Rehearsal before phase 1</h3>'
            f"<p>Every operation of the change, once, in a form that changes nothing "
            f"({'passed' if last.get('passed') else 'FAILED'}, {e(str(last.get('seconds')))} s).</p>"
            '<table border="1" cellpadding="3" style="border-collapse:collapse"><tr><th>operation</th><th>on</th>'
            f"<th>what</th><th>result</th><th>detail</th></tr>{rows}</table>"
            f"<p>Not rehearsed (no form of it leaves the estate as it was):</p><ul>{never}</ul></div>")


def next_steps_html(run: Run, conclusion: dict[str, Any] | None = None) -> str:
    """The report's closing section: where the estate is and what to do next."""
    e = html.escape
    verdict = conclusion["verdict"] if conclusion else "in progress"
    if run.stopped or verdict in ("stopped", "interrupted"):
        phase = run.stopped[0] if run.stopped else (conclusion or {}).get("phase") or run.current_phase
        first = (run.stopped[1].splitlines()[0] if run.stopped else (conclusion or {}).get("reason", ""))
        return (f'<h3>What to do next</h3><div class="entsso-next" style="border:2px solid #c00;padding:8px">'
                f"<p>The change is unfinished ({e(verdict)} in phase {e(PHASE_TITLES.get(phase, phase))}): "
                f"{e(first)}</p>{recovery_html(run, phase)}"
                f"<p>Every phase's recovery: docs/recovery.md.</p></div>")
    if verdict == "completed":
        return ("<h3>What to do next</h3><p>Nothing: the change is complete; attach this report to the change "
                "ticket.</p>")
    if verdict == "backed-out":
        return ("<h3>What to do next</h3><p>The change was backed out, not completed: the estate is back in service "
                "and the upgrade is not done. Record the change as backed out; the upgrade needs a new change "
                "ticket.</p>")
    if verdict == "refused":
        return ("<h3>What to do next</h3><p>The gate refused the change and nothing was changed: fix what it names, "
                "then run the same command again.</p>")
    if run.options.apply:
        return ("<h3>What to do next</h3><p>The change is in progress: this report was written before the run "
                "ended. If no later report exists, the run did not finish: " + e(run.resume_command()) + "</p>")
    return ("<h3>What to do next</h3><p>A read-only gate: fix what failed, run it again; when it passes, run "
            "the change with --apply --change-ticket.</p>")


def timeline_html(records: list[dict[str, Any]]) -> str:
    e = html.escape
    by_phase: OrderedDict[str, list[dict[str, Any]]] = OrderedDict((p, []) for p in PHASE_TITLES)
    open_intents: dict[tuple[Any, ...], dict[str, Any]] = {}
    finished: dict[str, dict[str, Any]] = {}
    for r in records:
        if r.get("kind") == "phase_finished":
            finished[r.get("phase", "")] = r
    for r in records:
        key = (r.get("phase"), r.get("step"), r.get("host"), r.get("job"))
        if r.get("kind") == "intent":
            open_intents[key] = r
        elif r.get("kind") == "result":
            start = open_intents.pop(key, None)
            by_phase.setdefault(r.get("phase") or "other", []).append({**r, "start": start["ts"] if start else r["ts"]})
        elif r.get("kind") in ("snapshot", "gate_refused", "phase_stopped", "operator_instruction", "interrupted",
                               "window_refused", "over_estimate"):
            outcome = {"operator_instruction": "told", "gate_refused": "refused", "phase_stopped": "stopped",
                       "snapshot": "read", "window_refused": "not started (window)",
                       "over_estimate": "past its estimate"}.get(r["kind"], r["kind"])
            if r["kind"] == "interrupted":
                r = {**r, "message": f"{r.get('signal')}; in flight: "
                     + (", ".join(f"{x['step']} on {x['host'] or 'SQL Server'}" for x in r.get("in_flight") or [])
                        or "nothing")}
            by_phase.setdefault(r.get("phase") or "gate", []).append({**r, "start": r["ts"], "outcome": outcome})
    for r in open_intents.values():  # started, never finished: the run died here
        by_phase.setdefault(r.get("phase") or "other", []).append({**r, "start": r["ts"],
                                                                   "outcome": "no result (run ended)"})
    rows = []
    for phase, items in by_phase.items():
        if not items:
            continue
        f = finished.get(phase)
        took = ""
        if f is not None and f.get("seconds") is not None:
            took = f" — took {f['seconds']:.1f} s"
            if f.get("estimate") is not None:
                over = f["seconds"] > f["estimate"]
                took += f" (planned at most {f['estimate']:.0f} s{': OVER' if over else ''})"
        rows.append(f'<tr class="entsso-phase"><th colspan="5" style="text-align:left;background:#eef">'
                    f"{e(PHASE_TITLES.get(phase, phase))}<span class='entsso-planned'>{e(took)}</span></th></tr>")
        for r in items:
            what = r.get("step") or r["kind"]
            if r.get("job"):
                what += f" ({r['job']})"
            detail = r.get("error") or r.get("message") or ""
            if not detail and r.get("seconds") is not None:
                detail = f"{r['seconds']:.1f} s"
            if not detail and r.get("kind") == "snapshot":
                detail = f"{r.get('winrm_calls')} WinRM calls, {r.get('sql_statements')} SQL statements"
            outcome = r.get("outcome", "")
            colour = {"ok": "#070", "unchanged": "#555", "failed": "#c00"}.get(outcome, "#a60")
            where = r.get("host") or ("SQL Server" if r.get("kind") in ("intent", "result") else "—")
            rows.append(f"<tr><td>{e(str(r.get('start', ''))[11:23])}</td><td>{e(where)}</td>"
                        f"<td>{e(what)}</td><td style='color:{colour}'>{e(outcome)}</td><td>{e(str(detail))}</td></tr>")
    if not rows:
        return "<p>No operation has run yet.</p>"
    return ('<table class="entsso-timeline" style="border-collapse:collapse" border="1" cellpadding="3">'
            "<tr><th>UTC</th><th>Host</th><th>Operation</th><th>Outcome</th><th>Detail</th></tr>"
            + "".join(rows) + "</table>")


RECOVERY = {
    "gate": "Nothing was changed. Fix what the gate names and run the same command again.",
    "silence": "BizTalk may be partly silenced. Resume to finish; or put it back by hand from baseline.json "
               "(start the host instances and services listed there; re-enable the jobs listed there).",
    "backup": "The estate is silenced; the master secret may not be backed up yet. Resume. Do not uncluster "
              "anything by hand without a verified master secret backup and its password.",
    "uncluster": "The SSO group may be offline and SSODB may name the primary. Resume to finish unclustering; "
                 "to go back instead: run <code>ssomanage -updatedb</code> with the cluster name as secretServer, "
                 "stop ENTSSO on the nodes, bring the ENTSSO resource online (docs/recovery.md).",
    "upgrade": "The primary is the MSS outside the cluster. Finish the node's upgrade (or fix the installer's "
               "cause), then resume; the upgraded nodes are not touched again.",
    "recluster": "SSODB may name the cluster name while the resource is offline. Resume; or bring the ENTSSO "
                 "resource online on the primary and restore the master secret there (docs/recovery.md).",
    "failover": "The cluster is back; a node could not serve SSO. Restore the master secret on that node "
                "from this change's backup with the group owned by it, then resume.",
    "resume": "The change is done; BizTalk is not fully back. Resume, or start what baseline.json lists by hand.",
    "backout": "The backout stopped part-way. Fix what it names and run the backout again (each step reads first).",
}


def recovery_html(run: Run, phase: str) -> str:
    e = html.escape
    if phase == "gate" and run.change_record is None:
        return f"<p><b>Where the estate is and what to do:</b> {RECOVERY['gate']}</p>"
    back = ("" if run.options.backout else
            f"<p>Or put the estate back in service instead: <code>{e(run.backout_command())}</code></p>")
    return (f"<p><b>Where the estate is and what to do:</b> {RECOVERY.get(phase, 'See docs/recovery.md.')}</p>"
            f"<p>Continue (the same command, from any admin box): <code>{e(run.resume_command())}</code></p>{back}")

