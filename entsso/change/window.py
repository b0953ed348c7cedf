"""The change window (`--window-ends`): before phase 1, the whole change's worst case (phases 1-7 and a
backout from the latest point it could stop) is held against the time left, so a change that cannot fit is
refused before BizTalk is silenced; and before each later phase, the time that phase and a backout from
after it may need is compared with the time left; a phase that cannot finish with time left to back out is
not started. Estimates are the inventory's timeouts — the longest each wait may
take before the suite itself gives up — so a phase that fits its estimate fits the window. Phases 3-5
are one unit for the window: once the MSS leaves the cluster, the ways back in are recluster (phase 5)
or a backout, so phase 3 starts only when phases 3, 4 and 5 and a backout all fit.
"""
from __future__ import annotations

import re
from datetime import datetime, timedelta, UTC
from typing import Any

from entsso.domain.change import PHASES

MARGIN = 60.0  # seconds a phase spends on its own reads and journal beyond its waits


class WindowError(ValueError):
    pass


AHEAD_AT_MOST = timedelta(hours=24)  # no change window is longer: a later end is a typo or the wrong day
HHMM_AHEAD_AT_MOST = timedelta(hours=12)  # HH:MM further ahead than this most likely meant a time already past


def parse_window_end(text: str, now: datetime | None = None) -> datetime:
    """`HH:MM` (this admin box's local time: its next occurrence, at most 12 h ahead) or an ISO 8601 time (with
    an offset, or local when it has none), at most 24 h ahead. Returned timezone-aware. A time already past is
    refused, never read as tomorrow's."""
    now = now or datetime.now().astimezone()
    text = text.strip()
    m = re.fullmatch(r"([01]?\d|2[0-3]):([0-5]\d)", text)
    if m:
        end = now.replace(hour=int(m.group(1)), minute=int(m.group(2)), second=0, microsecond=0)
        if end <= now:
            end += timedelta(days=1)
        if end - now > HHMM_AHEAD_AT_MOST:
            passed = now - (end - timedelta(days=1))
            raise WindowError(f"--window-ends {text}: that time passed {passed.total_seconds() / 60:.0f} min ago today "
                              f"({now.tzname() or 'local time'}); if the window really ends tomorrow, give the date: "
                              f"--window-ends {end.isoformat(timespec='minutes')}")
        return end
    try:
        end = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise WindowError(f"--window-ends {text!r}: give the time the change window ends as HH:MM (local time, "
                          "e.g. 05:30) or as an ISO time (e.g. 2026-12-03T05:30+01:00)") from None
    end = end if end.tzinfo else end.astimezone()  # naive: this admin box's local time
    if end <= now:
        raise WindowError(f"--window-ends {text}: that time has passed ({end.isoformat(timespec='minutes')}); give "
                          "the end of this change's window")
    if end - now > AHEAD_AT_MOST:
        raise WindowError(f"--window-ends {text}: that is {(end - now).total_seconds() / 3600:.0f} h from now, more "
                          "than a change window's 24 h; check the date and the time zone, and give the end of this "
                          "change's window")
    return end


def estimates(run: Any) -> dict[str, float]:
    """Per phase, the longest it may take (seconds), from the inventory's timeouts."""
    t = run.inventory.timeouts
    nodes = len(run.nodes)
    upgrade = 0.0
    for _ in run.nodes:
        upgrade += t.upgrade + t.service_start + (t.reboot if run.options.allow_reboot else 0.0)
    return {
        "silence": t.service_stop * 2 + MARGIN,  # host instances, then Rule Engine and ENTSSO (servers at once)
        "backup": t.backup_job + MARGIN,
        "uncluster": t.group_move + t.service_start * 2 + MARGIN,
        "upgrade": upgrade + MARGIN,
        "recluster": t.service_stop + nodes * 3 * t.group_move + MARGIN,  # per node: move, offline, online
        "failover": nodes * t.group_move + MARGIN,
        "resume": t.service_start * 2 + MARGIN,
    }


def backout_estimate(run: Any, after: str) -> float:
    """The longest a backout from a stop in or after phase `after` may take."""
    t, e = run.inventory.timeouts, estimates(run)
    recluster = e["recluster"] if PHASES.index(after) >= PHASES.index("uncluster") else 0.0
    return recluster + t.group_move + e["resume"]


def needed(run: Any, phase: str) -> tuple[float, str]:
    """What starting `phase` commits to (seconds), and in words."""
    e = estimates(run)
    if phase == "uncluster":
        work = e["uncluster"] + e["upgrade"] + e["recluster"]
        what = "phases 3-5 (the MSS is outside the cluster until phase 5)"
    else:
        work = e[phase]
        what = f"phase {PHASES.index(phase) + 1}"
    return work + backout_estimate(run, phase), what


def worst_case(run: Any) -> float:
    """The whole change at its longest (seconds): phases 1-7 and a backout from the latest point it could stop
    (during phase 6: the MSS reclustered, BizTalk still silenced)."""
    return sum(estimates(run).values()) + backout_estimate(run, "failover")


def check_change(run: Any, now: datetime | None = None) -> str | None:
    """Before phase 1: why the whole change must not start in the window (None: it fits)."""
    end = run.options.window_ends
    if end is None:
        return None
    left = (end - (now or datetime.now(UTC))).total_seconds()
    need = worst_case(run)
    if need <= left:
        return None
    return (f"the change window ends at {end.isoformat(timespec='minutes')}, {max(left, 0) / 60:.1f} min from now; "
            f"the whole change may take up to {need / 60:.1f} min with a backout from its latest stop "
            f"({sum(estimates(run).values()):.0f} s for phases 1-7 + {backout_estimate(run, 'failover'):.0f} s of "
            "backout, from the inventory's timeouts)")


def check(run: Any, phase: str, now: datetime | None = None) -> str | None:
    """Why `phase` must not start in the window (None: it fits)."""
    end = run.options.window_ends
    if end is None or phase not in PHASES:
        return None
    now = now or datetime.now(UTC)
    left = (end - now).total_seconds()
    need, what = needed(run, phase)
    if need <= left:
        return None
    return (f"the change window ends at {end.isoformat(timespec='minutes')}, {max(left, 0) / 60:.1f} min from now; "
            f"{what} may take up to {need / 60:.1f} min with time to back out after "
            f"({need - backout_estimate(run, phase):.0f} s of work + {backout_estimate(run, phase):.0f} s of "
            "backout, from the inventory's timeouts)")
