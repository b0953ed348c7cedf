"""The report: when report.html is rewritten during a change (after a failed test at once, after passed
tests at most every REWRITE_EVERY seconds: each rewrite renders every result so far; never per test in a
read-only gate), and how its header names the way WinRM travels."""
from __future__ import annotations

from types import SimpleNamespace

import pytest

from entsso.report import plugin as report
from entsso.report.keys import RUN_KEY


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def harness(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    clock = Clock()
    monkeypatch.setattr(report.time, "monotonic", clock)
    writes: list[str] = []
    config = SimpleNamespace(stash=pytest.Stash())

    def rewrite(cfg) -> None:  # type: ignore[no-untyped-def]
        writes.append("w")
        cfg.stash[report._LAST_WRITE] = clock()

    monkeypatch.setattr(report, "rewrite", rewrite)

    def after_test(nodeid: str, run) -> None:  # type: ignore[no-untyped-def]
        config.stash[RUN_KEY] = run
        gen = report.pytest_runtest_protocol(SimpleNamespace(config=config, nodeid=nodeid), None)  # the hookwrapper
        next(gen)
        with pytest.raises(StopIteration):
            next(gen)

    return clock, writes, after_test


def change(failed: list[str] | None = None) -> SimpleNamespace:
    return SimpleNamespace(options=SimpleNamespace(apply=True), failed_tests=failed or [])


def test_passed_tests_rewrite_the_report_at_most_every_second(harness):
    clock, writes, after_test = harness
    run = change()
    for i in range(50):  # 50 tests within 0.5 s
        after_test(f"t{i}", run)
        clock.now += 0.01
    assert len(writes) == 1  # the first, then nothing until a second has passed
    clock.now += 1.0
    after_test("t50", run)
    assert len(writes) == 2


def test_a_failed_test_rewrites_the_report_at_once(harness):
    clock, writes, after_test = harness
    run = change()
    after_test("t0", run)
    run.failed_tests.append("t1")
    after_test("t1", run)
    assert len(writes) == 2


def test_a_read_only_gate_never_rewrites_per_test(harness):
    clock, writes, after_test = harness
    run = SimpleNamespace(options=SimpleNamespace(apply=False), failed_tests=["t0"])
    for i in range(3):
        after_test(f"t{i}", run)
        clock.now += 5
    assert writes == []


def _metadata(winrm: SimpleNamespace) -> dict:
    from datetime import datetime, timezone

    run = SimpleNamespace(inventory=SimpleNamespace(winrm=winrm, environment="PROD"), id="r1",
                          options=SimpleNamespace(apply=False, change_ticket=None, resume=None, backout=False),
                          started=datetime(2026, 11, 25, tzinfo=timezone.utc), cluster_name="SSOCLUSTER",
                          nodes=["NODE1"], biztalk_servers=["BTS1"])
    config = SimpleNamespace(stash=pytest.Stash())
    config.stash[RUN_KEY] = run
    metadata: dict = {}
    report.pytest_metadata(metadata, config)
    return metadata


def test_the_report_names_how_winrm_travels_including_a_proxy():
    w = SimpleNamespace(transport="ntlm", https=True, allow_insecure=False, server_cert_validation="validate",
                        proxy=None)
    assert _metadata(w)["WinRM"] == "ntlm over https"
    w.proxy = "http://proxy.corp.example:8080"
    assert _metadata(w)["WinRM"] == "ntlm over https, through the proxy http://proxy.corp.example:8080"
