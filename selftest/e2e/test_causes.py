"""Errors that name the real cause, as the operator sees them: a node whose name does not resolve, an
operator's upgrade that never came (with the version seen all along, no chained traceback), a lab
stopped with Ctrl-C."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import urllib.request

import pytest
import yaml

from selftest.e2e.suite import ROOT, run_suite
from selftest.e2e.test_report_glance import table


def test_a_node_whose_name_does_not_resolve_fails_the_gate_naming_dns(start_lab, tmp_path):
    lab = start_lab("fast")
    inv = yaml.safe_load(lab.inventory_path.read_text())
    inv["biztalk_servers"] = [b if b["name"] != "BTS2" else {**b, "address": "bts2.lab.invalid"}
                              for b in inv["biztalk_servers"]]
    bad = tmp_path / "dns.yml"
    bad.write_text(yaml.safe_dump(inv, sort_keys=False))
    run = run_suite(tmp_path / "r", f"--inventory={bad}", "tests_pre", "-m", "readiness", env=dict(lab.env))
    assert run.returncode == 1
    message = run.message("test_host_answers_over_winrm[BTS2]")
    assert "bts2.lab.invalid does not resolve (DNS): check the inventory's address for BTS2 or the admin box's DNS" \
        in message
    assert "no answer from" not in message
    assert run.outcomes["test_host_answers_over_winrm[BTS1]"] == "passed"  # the others are asked as ever


def test_an_operator_wait_that_times_out_says_the_version_seen_without_a_traceback(tmp_path):
    scenario = tmp_path / "slow-operator.yml"
    # the lab's operator never gets to it; the suite waits 3 s for the new version
    scenario.write_text("extends: fast\nupgrade:\n  operator_delay_sec: 100000\ntimeouts:\n  upgrade: 3\n")
    run = run_suite(tmp_path / "r", f"--lab={scenario}", "--apply", "--change-ticket", "CHG-WAIT")
    assert run.returncode == 1
    expected = ("wait for the operator's upgrade on NODE1 failed: gave up waiting for NODE1 to report SSO "
                "10.0.2000.0 after 3 s; it reported 10.0.1000.0 the whole time")
    assert expected in run.output
    assert "last seen: None" not in run.output
    assert "During handling of the above exception" not in run.output
    assert "Traceback" not in run.output
    assert run.summary["verdict"] == "stopped"
    # the report's before → after shows what the business lives with while the change is stopped
    rows = {r[0]: r[1:] for r in table((run.dir / "report.html").read_text(), "entsso-before-after")}
    assert rows["BTS1 (BizTalk server)"] == ["10.0.1000.0 → 10.0.1000.0", "no → no", "SSOCLUSTER → SSOCLUSTER",
                                             "Running → Stopped", "Running → Stopped", "3 of 4 → 0 of 4"]
    assert rows["NODE1 (cluster node)"][:2] == ["10.0.1000.0 → 10.0.1000.0",
                                                "yes, as the cluster SSOCLUSTER → yes (outside the cluster)"]
    assert rows["SQL1 (SQL Server)"] == ["SQL Agent jobs of the change enabled", "11 of 13 → 0 of 13"]


def test_a_lab_stopped_with_ctrl_c_exits_without_a_traceback():
    env = {**os.environ, "ENTSSO_WINRM_PASSWORD": "lab-w", "ENTSSO_SQL_PASSWORD": "lab-s"}
    proc = subprocess.Popen([sys.executable, "-m", "entsso.lab", "serve", "--scenario", "fast"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        ready = proc.stdout.readline()
        assert ready.startswith("entsso-lab ready"), proc.stderr.read()
        control = dict(p.split("=", 1) for p in ready.split()[2:])["control"]
        with urllib.request.urlopen(f"{control}/state", timeout=10) as answer:
            assert answer.status == 200  # serving
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0
    assert err.strip() == "entsso-lab: stopped"
    assert "Traceback" not in out + err
    with pytest.raises(OSError):  # and nothing is left listening
        urllib.request.urlopen(f"{control}/state", timeout=3)


def test_a_lab_interrupted_while_starting_stops_cleanly(monkeypatch, capsys):
    from entsso.lab import __main__ as lab_main
    from entsso.lab.server import Lab

    started, stopped = [], []
    real_start, real_stop = Lab.start, Lab.stop

    def start(self):
        real_start(self)
        started.append(self)
        os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C while the lab is still starting

    def stop(self):
        stopped.append(self)
        real_stop(self)

    monkeypatch.setattr(Lab, "start", start)
    monkeypatch.setattr(Lab, "stop", stop)
    monkeypatch.setenv("ENTSSO_WINRM_PASSWORD", "lab-w")
    monkeypatch.setenv("ENTSSO_SQL_PASSWORD", "lab-s")
    monkeypatch.delenv("ENTSSO_LAB_PARENT", raising=False)
    handlers = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    try:
        assert lab_main.main(["serve", "--scenario", "fast"]) == 0
    finally:
        signal.signal(signal.SIGINT, handlers[0])
        signal.signal(signal.SIGTERM, handlers[1])
    out, err = capsys.readouterr()
    assert started and stopped == started
    assert "entsso-lab ready" not in out  # never announced: a launcher would not take it for a lab
    assert err.strip() == "entsso-lab: stopped before it was ready (Ctrl-C or SIGTERM); nothing is left running"
    with socket.socket() as s:  # its WS-Management endpoint is closed again
        s.settimeout(2)
        assert s.connect_ex((started[0].addresses["NODE1"], started[0].winrm_port)) != 0
