"""A lab started by hand (`python -m entsso.lab serve`), as a real estate outlives a run: a run that
stops is resumed with --resume and finishes without redoing what was done; two runs at once are refused;
and the lab answers pywinrm from another process."""
from __future__ import annotations

import os

import pytest
import winrm
import yaml

from entsso.lab.launcher import LabProcess
from selftest.e2e.suite import run_suite


@pytest.fixture
def lab(start_lab):
    return start_lab("package")


def _received(lab: LabProcess, host: str, operation: str) -> int:
    return lab.state()["winrm"]["received"].get(f"{host} {operation}", 0)


def test_hand_started_lab_answers_pywinrm_from_another_process(lab):
    text = lab.inventory_path.read_text()
    assert lab.env["ENTSSO_WINRM_PASSWORD"] not in text  # the inventory names variables, never values
    inventory = yaml.safe_load(text)
    node = inventory["cluster"]["nodes"][0]
    session = winrm.Session(f"https://{node['address']}:{inventory['winrm']['port']}/wsman",
                            auth=(inventory["winrm"]["username"], lab.env["ENTSSO_WINRM_PASSWORD"]),
                            transport="ntlm", ca_trust_path=inventory["winrm"]["ca_trust_path"])
    result = session.run_cmd("hostname")
    assert result.status_code == 0
    assert result.std_out.decode().strip() == node["name"]


def test_stopped_run_resumes_where_it_stopped(lab, tmp_path):
    env = dict(lab.env)
    inv = str(lab.inventory_path)
    lab.post("/faults", {"kind": "installer_exit", "host": "NODE2", "exit_code": 1603})
    first = run_suite(tmp_path / "reports", f"--inventory={inv}", "--apply", "--change-ticket", "CHG-RESUME-1", env=env)
    assert first.returncode == 1
    command = f"--inventory={inv} --apply --change-ticket CHG-RESUME-1"
    assert "exit code 1603" in first.output and command in first.output
    report = (first.dir / "report.html").read_text()
    assert "What to do next" in report and command in report
    assert "Read the installer log" in report  # the cause and the way out, in the evidence
    assert _received(lab, "NODE1", "Install-SsoUpdate") == 1
    backups_before = _received(lab, "NODE1", "Backup-MasterSecret")

    lab.post("/faults/clear", {})  # the operator fixed the cause on NODE2
    # --resume RUN-ID still continues the change that run belongs to
    second = run_suite(tmp_path / "reports", f"--inventory={inv}", "--resume", first.dir.name, env=env)
    assert second.returncode == 0, second.output[-3000:]
    # done steps were verified, not redone
    assert _received(lab, "NODE1", "Install-SsoUpdate") == 1
    assert _received(lab, "NODE1", "Backup-MasterSecret") == backups_before
    assert _received(lab, "NODE2", "Install-SsoUpdate") == 2
    # BizTalk put back to what ran before the *first* run, not to the silenced state the resume found
    estate = lab.state()["estate"]
    bts1 = {i["host_name"]: i["service_state"] for i in estate["hosts"]["BTS1"]["host_instances"]}
    assert bts1["ReceiveHost"] == "Running" and bts1["OrchestrationHost"] == "Stopped"
    assert lab.state()["sql"]["jobs"]["Backup BizTalk Server (BizTalkMgmtDb)"]["enabled"] in (True, 1)
    assert estate["cluster"]["restart_policy"]["actions"] == []  # the resume too: the run never stopped the cluster's own ENTSSO behind its back (its restart policy is active)


def test_second_run_against_the_same_estate_is_refused(lab, tmp_path):
    from entsso.inventory import load_inventory
    from entsso.change.lock import EstateLock
    from entsso.change.run import build_run, Options

    os.environ.update(lab.env)
    inventory = load_inventory(str(lab.inventory_path))
    run = build_run("holder", tmp_path / "holder", Options(apply=True, change_ticket="CHG-A"), inventory)
    holder = EstateLock(run.sql.settings, inventory.secrets.sql_password, run.cluster_name)
    holder.acquire()
    try:
        second = run_suite(tmp_path / "reports", f"--inventory={lab.inventory_path}", "--apply",
                           "--change-ticket", "CHG-B", env=dict(lab.env))
        assert second.returncode == 4
        assert "another entsso-upgrade run holds the estate lock 'entsso-upgrade:SSOCLUSTER'" in second.output
        assert lab.state()["changes"] == 0
    finally:
        holder.release()
        run.close()


def test_re_running_a_finished_change_changes_nothing(lab, tmp_path):
    env, inv = dict(lab.env), f"--inventory={lab.inventory_path}"
    first = run_suite(tmp_path / "reports", inv, "--apply", "--change-ticket", "CHG-TWICE-1", env=env)
    assert first.returncode == 0, first.output[-3000:]
    changes = lab.state()["changes"]
    assert changes > 0

    again = run_suite(tmp_path / "reports", inv, "--resume", first.dir.name, env=env)
    assert again.returncode == 0, again.output[-3000:]
    assert lab.state()["changes"] == changes  # every phase verified, none redone
    outcomes = again.outcomes
    assert outcomes["test_adapter_properties_readable_through_node[NODE2]"] == "passed"
    assert outcomes["test_cluster_node_is_up[NODE1]"] == "skipped"

    # a new change on the upgraded estate: the gate sees nothing to upgrade and refuses, changing nothing
    other = run_suite(tmp_path / "reports", inv, "--apply", "--change-ticket", "CHG-TWICE-2", env=env)
    assert other.returncode == 1
    assert "test_update_package_in_place_and_newer[NODE1]" in other.failed()
    assert "refusing to silence BizTalk" in other.output
    assert lab.state()["changes"] == changes


def test_a_backup_that_did_not_happen_stops_the_run_before_unclustering(lab, tmp_path):
    # phase 2's backup call answers as if it worked, but no file was written (the first call is the
    # rehearsal's own backup before phase 1, which works)
    lab.post("/faults", {"kind": "wrong_output", "host": "NODE1", "operation": "Backup-MasterSecret", "call": 2,
                         "output": '{"file": "C:\\\\SSOBackup\\\\ENTSSO-CHG-LIE-1.bak", "size": 2048, '
                                   '"last_write_utc": "2026-11-25T00:00:00Z"}'})
    run = run_suite(tmp_path / "reports", f"--inventory={lab.inventory_path}", "--apply", "--change-ticket",
                    "CHG-LIE-1", env=dict(lab.env))
    assert run.returncode == 1
    assert "[backup]" in run.output
    assert run.outcomes["test_master_secret_backed_up_in_this_change"] in ("failed", "error")
    # nothing of phase 3 or later ran (the rehearsal ran these operations before phase 1, each finding the
    # estate already so: no change)
    assert not [r for r in run.journal() if r["kind"] == "intent" and r["phase"] not in ("silence", "backup")]
    received = lab.state()["winrm"]["received"]
    assert not [k for k in received if k.split()[1] in ("Install-SsoUpdate", "Restore-MasterSecret")]
    assert lab.state()["sql"]["secret_server"] == "SSOCLUSTER"


def test_gate_apply_prepares_and_stops_after_phase_2_then_the_read_only_gate_passes(lab, tmp_path):
    env, inv = dict(lab.env), f"--inventory={lab.inventory_path}"
    prepared = run_suite(tmp_path / "reports", "tests_pre", inv, "--apply", "--change-ticket", "CHG-PREP-1", env=env)
    assert prepared.returncode == 0, prepared.output[-3000:]
    phases = {r["phase"] for r in prepared.journal() if r["kind"] == "phase_finished"}
    assert phases == {"silence", "backup"}
    # no phase 3 or later: only the rehearsal's forms of their operations ran, once each, before phase 1
    assert not [r for r in prepared.journal() if r["kind"] == "intent" and r["phase"] not in ("silence", "backup")]
    received = lab.state()["winrm"]["received"]
    assert all(received.get(f"NODE1 {op}", 0) <= 1 for op in ("Update-SsoDatabase", "Set-ClusterResourceState",
                                                               "Move-ClusterGroup"))
    assert "NODE1 Install-SsoUpdate" not in received and "NODE2 Install-SsoUpdate" not in received
    changes = lab.state()["changes"]
    # the gate re-run read-only for the same change judges that run's backups, and changes nothing
    gate = run_suite(tmp_path / "reports", "tests_pre", inv, "--change-ticket", "CHG-PREP-1", env=env)
    assert gate.returncode == 0, gate.output[-3000:]
    assert gate.outcomes["test_master_secret_backed_up_in_this_change"] == "passed"
    assert lab.state()["changes"] == changes
    started = [r for r in gate.journal() if r["kind"] == "change_started"]
    recorded = [r for r in prepared.journal() if r["kind"] == "change_recorded"]
    assert started and "ENTSSO-CHG-PREP-1.change.json on NODE1" in started[0]["source"]
    assert started[0]["change_started"] == recorded[0]["change_started"]  # the change's, not this run's
