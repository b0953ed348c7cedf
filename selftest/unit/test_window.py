"""entsso.change.window: the change window's arithmetic, on an inventory's timeouts."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

import pytest

from entsso.change import window


def _run(ends: datetime | None, *, allow_reboot: bool = False):  # type: ignore[no-untyped-def]
    t = SimpleNamespace(service_start=10.0, service_stop=10.0, group_move=20.0, backup_job=100.0, upgrade=600.0,
                        reboot=300.0)
    return SimpleNamespace(inventory=SimpleNamespace(timeouts=t), nodes=["NODE1", "NODE2"],
                           options=SimpleNamespace(window_ends=ends, allow_reboot=allow_reboot))


NOW = datetime(2026, 12, 2, 22, 0, tzinfo=timezone.utc)


def test_hh_mm_is_the_next_such_local_time():
    now = datetime(2026, 12, 2, 22, 0).astimezone()
    assert window.parse_window_end("23:30", now) == now.replace(hour=23, minute=30)
    assert window.parse_window_end("05:00", now) == (now + timedelta(days=1)).replace(hour=5, minute=0)


def test_an_iso_time_keeps_its_offset_and_a_past_one_is_refused():
    end = window.parse_window_end("2026-12-03T05:30+01:00", NOW)
    assert end == datetime(2026, 12, 3, 4, 30, tzinfo=timezone.utc)
    with pytest.raises(window.WindowError, match="that time has passed"):
        window.parse_window_end("2026-12-02T21:00Z", NOW)


def test_phase_3_commits_to_phases_3_to_5_and_a_backout():
    run = _run(NOW + timedelta(hours=1))
    need, what = window.needed(run, "uncluster")
    e = window.estimates(run)
    assert need == e["uncluster"] + e["upgrade"] + e["recluster"] + window.backout_estimate(run, "uncluster")
    assert what.startswith("phases 3-5")
    # a backout before phase 3 need not recluster
    assert window.backout_estimate(run, "silence") < window.backout_estimate(run, "uncluster")


def test_a_phase_that_fits_starts_and_one_that_does_not_is_refused_with_the_arithmetic():
    e_need, _ = window.needed(_run(None), "uncluster")
    assert window.check(_run(NOW + timedelta(seconds=e_need + 1)), "uncluster", NOW) is None
    reason = window.check(_run(NOW + timedelta(seconds=e_need - 1)), "uncluster", NOW)
    assert reason and "phases 3-5 (the MSS is outside the cluster until phase 5) may take up to 31.0 min" in reason and "from the inventory's timeouts" in reason
    assert window.check(_run(None), "uncluster", NOW) is None  # no window, no limit


def test_allow_reboot_adds_each_nodes_reboot_to_the_upgrade():
    assert window.estimates(_run(None, allow_reboot=True))["upgrade"] - window.estimates(_run(None))["upgrade"] == 600


def test_a_hh_mm_already_past_today_is_refused_not_taken_as_tomorrow():
    now = datetime(2026, 12, 7, 16, 53).astimezone()
    with pytest.raises(window.WindowError, match="that time passed 5 min ago today") as err:
        window.parse_window_end("16:48", now)
    assert "give the date: --window-ends 2026-12-08T16:48" in str(err.value)


def test_a_window_end_more_than_24_hours_ahead_is_refused():
    with pytest.raises(window.WindowError, match="more than a change window's 24 h"):
        window.parse_window_end("2026-12-04T05:30Z", NOW)


def test_the_whole_change_is_held_against_the_window_before_phase_1():
    worst = window.worst_case(_run(None))
    e = window.estimates(_run(None))
    assert worst == sum(e.values()) + window.backout_estimate(_run(None), "failover")
    assert window.check_change(_run(NOW + timedelta(seconds=worst + 1)), NOW) is None
    reason = window.check_change(_run(NOW + timedelta(seconds=worst - 60)), NOW)
    assert reason is not None and "the whole change may take up to" in reason
    assert window.check_change(_run(None), NOW) is None
