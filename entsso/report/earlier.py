"""A continued change's report shows the change, not only its last run: what earlier runs did, one line a
step ("done in run …"), and the checks this run did not repeat because an earlier run verified them, one
line a reason (pytest-html would show each as a skipped row with its raw reason)."""
from __future__ import annotations

import html
from collections import Counter
from datetime import datetime
from typing import Any

from entsso.domain.change import PHASE_NUMBERS

# the skips of a continued change: verified by an earlier run of it, so not run again (entsso.collection,
# fixtures/rehearsal.py); their rows leave pytest-html's table and are counted here instead
DONE_EARLIER = ("its readiness was verified by run", "its preparation (phases 1-2) was verified by its runs",
                "it was rehearsed before its phase 1")


def done_earlier(reason: str) -> bool:
    return any(phrase in reason for phrase in DONE_EARLIER)


def skip_reason(report: Any) -> str:
    """A skipped test's reason, as pytest keeps it ((path, line, 'Skipped: …'))."""
    longrepr = getattr(report, "longrepr", None)
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2]).removeprefix("Skipped: ")
    return str(longrepr or "")


def change_started(runs: list[tuple[str, list[dict[str, Any]]]]) -> datetime | None:
    """When the change's first run (of those whose journals are here) started."""
    for _, records in runs:
        for r in records:
            if r.get("kind") == "run_started" and r.get("ts"):
                return datetime.fromisoformat(str(r["ts"]).replace("Z", "+00:00"))
    return None


def _subject(r: dict[str, Any]) -> str:
    what = r.get("host") or r.get("job") or r.get("database") or ""
    return f" on {what}" if r.get("host") else f" ({what})" if what else ""


def earlier_runs_html(runs: list[tuple[str, list[dict[str, Any]]]], not_repeated: list[str]) -> str:
    """Each step an earlier run of this change finished, one line each, and the checks not repeated."""
    earlier = runs[:-1]
    if not earlier and not not_repeated:
        return ""
    e = html.escape
    lines = []
    for rid, records in earlier:
        for r in records:
            if r.get("kind") != "result" or r.get("outcome") not in ("ok", "noop"):
                continue
            phase = str(r.get("phase", ""))
            number = PHASE_NUMBERS.get(phase)
            at = str(r.get("ts", ""))[11:19]
            lines.append(f"<li>{e(f'phase {number}' if number else phase)}: {e(str(r.get('step')))}{e(_subject(r))}"
                         f" — done in run {e(rid)} at {e(at)} UTC</li>")
    counted = Counter(not_repeated)
    checks = "".join(f"<li>{n} check{'s' if n > 1 else ''} not run again: {e(reason)}</li>"
                     for reason, n in counted.items())
    out = ['<div class="entsso-earlier"><h3>Done in earlier runs of this change</h3>']
    if lines:
        out.append(f"<details><summary>{len(lines)} steps done in earlier runs (one line each)</summary>"
                   f"<ul>{''.join(lines)}</ul></details>")
    if checks:
        out.append(f"<ul class='entsso-not-repeated'>{checks}</ul>")
    return "".join(out) + "</div>"
