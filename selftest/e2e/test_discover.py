"""python -m entsso.discover against a hand-started lab (an estate that outlives the run, as a real one):
it reads the estate read-only, writes an inventory that `python -m entsso.inventory` accepts and with
which the readiness gate passes, and a twin scenario whose lab, started fresh, gives the same gate facts
(the same baseline and the same gate verdicts, test by test) as the estate it came from; and the change,
run with that inventory as written, completes."""
from __future__ import annotations

import yaml

from entsso.tools import discover
from entsso import inventory as inventory_check
from entsso.lab.launcher import LabProcess
from selftest.e2e.suite import run_suite


def _discover(lab, out, monkeypatch, capsys, *extra):
    """python -m entsso.discover, in this process (its code is the same; a child would cost a second start)."""
    for name, value in lab.env.items():
        monkeypatch.setenv(name, value)
    code = discover.main(["--cluster", "SSOCLUSTER", "--sql", "SQL1", "--sql-auth", "sql", "--sql-user", "entsso",
                          "--winrm-user", "LAB\\svc-entsso", "--network", str(lab.inventory_path),
                          "--target-version", "10.0.2000.0",
                          "--package-path", "C:\\Install\\BizTalk Server 2020\\Platform\\SSO64\\Setup.exe",
                          "--environment", "LAB", "--out", str(out), *extra])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _gate_facts(run):
    baseline = next(r["baseline"] for r in run.journal() if r["kind"] == "baseline")
    baseline.pop("taken_at")
    return baseline, run.outcomes


def test_discovery_writes_an_inventory_the_gate_passes_and_a_twin_with_the_same_gate_facts(start_lab, tmp_path,
                                                                                         monkeypatch, capsys):
    lab = start_lab("fast")
    before = lab.state()["changes"]
    out = tmp_path / "discovered.yml"
    code, stdout, stderr = _discover(lab, out, monkeypatch, capsys)
    assert code == 0, stderr
    assert "2 node(s) (NODE1, NODE2), 2 BizTalk server(s), 13 BizTalk job(s)" in stdout
    assert lab.state()["changes"] == before  # read-only
    text = out.read_text()
    assert "upgrade.mode: manual" in text and "secret_backup.folder" in text  # what it could not know, said
    inv = yaml.safe_load(text)
    assert [n["name"] for n in inv["cluster"]["nodes"]] == ["NODE1", "NODE2"]
    assert (inv["cluster"]["group"], inv["cluster"]["resource"], inv["cluster"]["primary"]) == ("SSO", "ENTSSO", "NODE1")
    assert [b["name"] for b in inv["biztalk_servers"]] == ["BTS1", "BTS2"]
    assert inv["sql"]["backup_job"] == "Backup BizTalk Server (BizTalkMgmtDb)" and len(inv["sql"]["jobs"]) == 13
    # a name that is not a cluster node is said to be one, and nothing is written
    code, _, stderr = _discover(lab, tmp_path / "x.yml", monkeypatch, capsys, "--cluster", "BTS1")
    assert code == 1 and not (tmp_path / "x.yml").exists()
    assert "discovery stopped: BTS1 is not a failover cluster node" in stderr and "FailoverClusters" in stderr

    for name in lab.env:  # the checker needs no secret
        monkeypatch.delenv(name)
    assert inventory_check.main([str(out)]) == 0
    assert ": valid" in capsys.readouterr().out

    gate = run_suite(tmp_path / "reports", "tests_pre", "-m", "readiness", f"--inventory={out}", env=dict(lab.env))
    assert gate.returncode == 0, gate.output[-3000:]
    assert gate.summary["verdict"] == "read-only"

    twin_path = tmp_path / "discovered-twin.yml"
    twin = LabProcess(str(twin_path), tmp_path / "twin" / "lab-inventory.yml", speed=200).start()
    try:
        twin_gate = run_suite(tmp_path / "reports-twin", "tests_pre", "-m", "readiness",
                              f"--inventory={twin.inventory_path}", env=dict(twin.env))
    finally:
        twin.stop()
    assert twin_gate.returncode == 0, twin_gate.output[-3000:]
    base, outcomes = _gate_facts(gate)
    twin_base, twin_outcomes = _gate_facts(twin_gate)
    assert twin_base == base
    assert twin_outcomes == outcomes and len(outcomes) > 20

    # the rehearsal the twin's header proposes, on a fresh lab shaped like the estate: the whole change
    assert yaml.safe_load(twin_path.read_text())["biztalk"]["adapter_handlers"] == [
        {"kind": "receive", "adapter": "FILE", "host": "ReceiveHost"},
        {"kind": "receive", "adapter": "WCF-SQL", "host": "ReceiveHost"},
        {"kind": "send", "adapter": "FILE", "host": "SendHost"}, {"kind": "send", "adapter": "SMTP", "host": "SendHost"}]
    rehearsal = run_suite(tmp_path / "reports-rehearsal", f"--lab={twin_path}", "--apply", "--change-ticket", "REHEARSAL")
    assert rehearsal.returncode == 0, rehearsal.output[-3000:]
    assert rehearsal.summary["verdict"] == "completed", rehearsal.summary

    # the change itself, with the discovered inventory as written: it completes on the estate it came from
    change = run_suite(tmp_path / "reports-change", f"--inventory={out}", "--apply", "--change-ticket", "CHG-DISCOVERED",
                       env=dict(lab.env))
    assert change.returncode == 0, change.output[-3000:]
    assert set(change.outcomes.values()) == {"passed"}, sorted(n for n, s in change.outcomes.items() if s != "passed")
    hosts = lab.state()["estate"]["hosts"]
    assert [hosts[n]["sso"]["version"] for n in ("NODE1", "NODE2")] == ["10.0.2000.0"] * 2
