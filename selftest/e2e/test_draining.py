"""A host instance that drains longer than the run waits for it, end to end, on a lab started by hand: phase 1
(which stops it as its service BTSSvc$ReceiveHost through the SCM) stops naming it as still draining, with what
to do; nothing after it changes; the change's own command then sends it no second stop, waits for it, and
completes."""
from __future__ import annotations

from pathlib import Path

from selftest.e2e.suite import run_suite

# speed 200 (fast): ReceiveHost drains for 6000 estate s (30 real s) after its stop; the first run waits
# service_stop, 20 s (the suite's seconds are real ones), and stops with it StopPending; the continuing run's
# 20 s outlast the rest of the drain (~10 s).
SCENARIO = """name: draining-receive-host
extends: fast
timeouts:
  service_stop: 20
biztalk:
  servers:
    - name: BTS1
      host_instances:
        - {host: BizTalkServerApplication, type: InProcess, state: Running}
        - {host: ReceiveHost, type: InProcess, state: Running, stop_sec: 6000}
        - {host: SendHost, type: InProcess, state: Running}
      rule_engine: Running
    - name: BTS2
      host_instances:
        - {host: BizTalkServerApplication, type: InProcess, state: Running}
        - {host: SendHost, type: InProcess, state: Running}
      rule_engine: Stopped
"""


def test_a_draining_host_instance_is_reported_as_such_and_the_continuing_run_waits_for_it(start_lab, tmp_path: Path):
    scenario = tmp_path / "draining-receive-host.yml"
    scenario.write_text(SCENARIO)
    lab = start_lab(str(scenario))
    command = (f"--inventory={lab.inventory_path}", "--apply", "--change-ticket", "CHG-DRAIN-1")
    first = run_suite(tmp_path / "reports", *command, env=dict(lab.env))
    assert first.returncode == 1, first.output[-3000:]
    assert first.summary["verdict"] == "stopped"
    reason = first.summary["verdict_reason"]
    assert "stop host instances on BTS1 failed: BizTalk host instance ReceiveHost on BTS1 is still draining" in reason
    assert "not Stopped within 20 s, last state StopPending" in reason
    assert "Do not stop it again" in reason and "BTSSvc$ReceiveHost on BTS1 shows Stopped" in reason
    state = lab.state()
    bts1 = state["estate"]["hosts"]["BTS1"]["services"]
    assert bts1["BTSSvc$ReceiveHost"]["status"] == "StopPending"
    assert bts1["ENTSSO"]["status"] == "Running"  # nothing after the stop: BTS1's ENTSSO was not stopped
    assert state["winrm"]["received"].get("NODE1 Backup-MasterSecret", 0) == 1  # the rehearsal's own: no phase 2
    controls = state["estate"]["service_controls"]
    assert controls.get("BTS1 BTSSvc$ReceiveHost stop") == 1

    second = run_suite(tmp_path / "reports", *command, env=dict(lab.env))
    assert second.returncode == 0, second.output[-3000:]
    assert second.summary["verdict"] == "completed"
    # it found ReceiveHost still StopPending, sent no second stop and waited until it was Stopped
    stops = [r for r in second.journal() if r["kind"] == "result" and r.get("step") == "stop host instances"
             and r.get("host") == "BTS1"]
    seen = {i["host_name"]: (i["state_before"], i["state"]) for i in stops[0]["evidence"]}
    assert seen["ReceiveHost"] == ("StopPending", "Stopped"), seen
    final = lab.state()["estate"]
    assert final["service_controls"]["BTS1 BTSSvc$ReceiveHost stop"] == 1
    instances = {i["host_name"]: i["service_state"] for i in final["hosts"]["BTS1"]["host_instances"]}
    assert instances["ReceiveHost"] == "Running"  # phase 7 put it back as it ran before the change
