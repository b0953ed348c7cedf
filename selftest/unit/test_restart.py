"""entsso.domain.restart: a node is back from its restart only once it has gone (its boot time changed, or it
stopped answering) and answers again; a node still counting down to its restart is not back."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from entsso.estate.snapshot import HostFacts
from entsso.domain.restart import RestartWatch, pending_restart_reasons

BOOTED = datetime(2026, 11, 21, 21, 30, tzinfo=timezone.utc)


def answer(booted: datetime | None) -> HostFacts:
    return HostFacts(name="NODE2", role="node", reachable=True, last_boot_utc=booted)


def silent() -> HostFacts:
    return HostFacts(name="NODE2", role="node", reachable=False, error="connection refused", error_kind="unreachable")


def test_a_node_that_still_answers_with_its_old_boot_time_is_not_back():
    watch = RestartWatch("NODE2", BOOTED)
    assert watch.observe(answer(BOOTED)) is False
    assert "the restart has not happened yet" in watch.last


def test_a_node_that_went_silent_and_answers_with_a_new_boot_time_is_back():
    watch = RestartWatch("NODE2", BOOTED)
    assert watch.observe(silent()) is False
    assert watch.observe(answer(BOOTED + timedelta(hours=1))) is True
    assert watch.evidence(answer(BOOTED + timedelta(hours=1)))["seen_down"] is True


def test_a_new_boot_time_is_enough_even_if_no_look_fell_in_the_outage():
    assert RestartWatch("NODE2", BOOTED).observe(answer(BOOTED + timedelta(minutes=2))) is True


def test_a_network_blip_without_a_restart_is_not_a_restart():
    watch = RestartWatch("NODE2", BOOTED)
    watch.observe(silent())
    assert watch.observe(answer(BOOTED)) is False
    assert "did not restart" in watch.last


def test_without_boot_times_only_silence_then_an_answer_counts():
    watch = RestartWatch("NODE2", None)
    assert watch.observe(answer(None)) is False
    assert watch.observe(silent()) is False
    assert watch.observe(answer(None)) is True


def test_no_marker_means_no_pending_restart():
    assert pending_restart_reasons({"pending_restart": {"cbs_reboot_pending": False, "wu_reboot_required": False,
                                                        "pending_file_rename_operations": []}}) == ()
    assert pending_restart_reasons({}) == ()


def test_each_documented_marker_is_a_reason_named_by_its_registry_key():
    reasons = pending_restart_reasons({"pending_restart": {
        "cbs_reboot_pending": True, "wu_reboot_required": True,
        "pending_file_rename_operations": ["\\??\\C:\\Config.Msi\\3ec7bbbf.rbf", "", "", ""]}})
    assert len(reasons) == 3
    assert "Component Based Servicing\\RebootPending exists" in reasons[0]
    assert "WindowsUpdate\\Auto Update\\RebootRequired exists" in reasons[1]
    assert "PendingFileRenameOperations holds 1 file operation(s)" in reasons[2]
    assert "3ec7bbbf.rbf" in reasons[2]
