"""Services through the SCM as the suite drives them (entsso/domain/services.py over Set-ServiceState), on the lab
with the real client: a service still starting takes no stop control (SCM 1061), so the script returns it
as found and goes no further; the wait for it to finish starting is the suite's, in Python."""
from __future__ import annotations

from entsso.domain import services
from entsso.lab.model import RULE_ENGINE
from selftest.lab.conftest import lab_host


def test_a_service_still_starting_is_stopped_once_it_has_started_and_the_rest_after_it(make_lab):
    lab = make_lab("fast")
    estate = lab.estate
    bts2 = estate._h["BTS2"]
    with estate._lock:  # BTS2's Rule Engine (Stopped in the scenario) asked to start: StartPending for 15 s
        estate._start_service(bts2, RULE_ENGINE)
    assert bts2.services[RULE_ENGINE].status == "StartPending"
    calls_before = estate.dump()["operations"].get("BTS2 Set-ServiceState", 0)
    send = "BTSSvc$SendHost"
    got = services.ensure_services(lab_host(lab, "BTS2"), [(RULE_ENGINE, "Stopped"), (send, "Stopped")], 60).evidence
    assert [(g["name"], g["status"]) for g in got] == [(RULE_ENGINE, "Stopped"), (send, "Stopped")]
    assert bts2.services[RULE_ENGINE].status == "Stopped" and bts2.services[send].status == "Stopped"
    # asked at least twice: the first answer left it (and the host instance after it) untouched while it started
    assert estate.dump()["operations"]["BTS2 Set-ServiceState"] - calls_before >= 2


def test_the_script_answer_for_a_service_still_starting_is_as_found_and_ends_the_list(make_lab):
    # a start long enough (3 s at the lab's speed) that a loaded machine's WinRM call still finds it starting
    lab = make_lab("fast", sso={"service_start_sec": 600})
    estate = lab.estate
    bts2 = estate._h["BTS2"]
    with estate._lock:
        estate._start_service(bts2, RULE_ENGINE)
    doc = lab_host(lab, "BTS2").invoke("Set-ServiceState", {"services": [
        {"name": RULE_ENGINE, "status": "Stopped"}, {"name": "BTSSvc$SendHost", "status": "Stopped"}],
        "timeout_sec": 30})
    assert doc["services"] == [{"name": RULE_ENGINE, "status_before": "StartPending", "status": "StartPending",
                                "changed": False}]
    assert bts2.services["BTSSvc$SendHost"].status == "Running"  # not reached
