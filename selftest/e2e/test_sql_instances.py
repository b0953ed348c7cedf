"""BizTalk's databases on two SQL Server instances, end to end: SSODB and the MessageBox (with its jobs,
ManageRefCountLog running continuously) on SQL2\\SSO (lab scenario second-instance), the management
database, the backup job and the other jobs on SQL1. With the inventory the lab writes (`sql.instances`),
the gate passes and phases 1-2 read SSODB, take the estate lock, check the grants and SQL Agent, and
disable and stop the MessageBox jobs on SQL2, the rest and the backup on SQL1; with an inventory that puts
everything on SQL1, the gate names the database the Backup BizTalk Server job's view puts elsewhere, and
the fix.
One lab, module-scoped: the readiness-only run first (it changes nothing), then the acting one."""
from __future__ import annotations

import json
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

from entsso.lab.launcher import LabProcess
from selftest.e2e.suite import run_suite



@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory):
    lab = LabProcess("second-instance", tmp_path_factory.mktemp("lab2") / "lab-inventory.yml", speed=200).start()
    yield lab
    lab.stop()


def state(lab: LabProcess) -> dict[str, Any]:
    with urllib.request.urlopen(f"{lab.control_url}/state", timeout=10) as answer:
        return json.loads(answer.read())


def test_an_inventory_that_puts_ssodb_on_the_wrong_instance_is_refused_by_name(lab, tmp_path: Path):
    doc = yaml.safe_load(lab.inventory_path.read_text())
    assert doc["sql"]["instances"] == [{"server": "SQL2", "databases": ["SSODB", "BizTalkMsgBoxDb"],
                                        "instance": "SSO"}]
    del doc["sql"]["instances"], doc["lab"]["instances"]  # the common single-instance inventory
    wrong = tmp_path / "one-instance.yml"
    wrong.write_text(yaml.safe_dump(doc, sort_keys=False))
    run = run_suite(tmp_path / "reports", "tests_pre", "-m", "readiness", f"--inventory={wrong}", env=dict(lab.env))
    assert run.returncode == 1, run.output[-3000:]
    assert run.outcomes["test_each_database_on_the_instance_the_backup_job_names"] == "failed"
    message = run.message("test_each_database_on_the_instance_the_backup_job_names")
    assert "SSODB: the Backup BizTalk Server job backs it up on SQL2\\SSO, the inventory puts it on SQL1" in message
    assert "list SSODB under sql.instances with `server: SQL2` and `instance: SSO`" in message
    assert state(lab)["changes"] == 0


def test_two_instances_each_asked_for_what_it_holds(lab, tmp_path: Path):
    run = run_suite(tmp_path / "reports", "tests_pre", f"--inventory={lab.inventory_path}", "--apply",
                    "--change-ticket", "CHG-TWO-SQL", env=dict(lab.env))
    assert run.returncode == 0, run.output[-3000:]
    for name in ("test_each_database_on_the_instance_the_backup_job_names",
                 "test_ssodb_names_the_cluster_as_secret_server", "test_sql_login_has_the_grants_the_run_needs",
                 "test_sql_server_agent_running", "test_full_backup_in_this_changes_forced_set[SSODB]",
                 "test_full_backup_in_this_changes_forced_set[BizTalkMsgBoxDb]",
                 "test_biztalk_job_not_running[MessageBox_Message_ManageRefCountLog_BizTalkMsgBoxDb]",
                 "test_biztalk_job_disabled[MessageBox_Message_ManageRefCountLog_BizTalkMsgBoxDb]"):
        assert run.outcomes[name] == "passed", name
    sql = state(lab)["sql"]
    second = sql["second_instance"]
    assert second["server_name"] == "SQL2\\SSO" and {"SSODB", "BizTalkMsgBoxDb"} <= set(second["databases"])
    # SQL2 was asked for SSODB (the secret server, the lock) and its grants; SQL1 ran the jobs and the backup
    assert second["counters"]["statements"] > 0
    assert sql["counters"]["procedures"].get("sp_ForceFullBackup") == 1
    assert second["counters"]["procedures"].get("sp_getapplock") == 1
    # the MessageBox jobs in SQL2's msdb: disabled there, and ManageRefCountLog stopped there
    assert "MessageBox_Message_ManageRefCountLog_BizTalkMsgBoxDb" in second["jobs"]
    assert "Backup BizTalk Server (BizTalkMgmtDb)" not in second["jobs"]
    assert second["counters"]["procedures"].get("sp_update_job", 0) >= 5
    assert second["counters"]["procedures"].get("sp_stop_job", 0) >= 1
    assert not sql["counters"]["procedures"].get("sp_stop_job")  # nothing ran on SQL1 to stop
    stopped = [r for r in run.journal() if r["kind"] == "result" and r["step"] == "stop the jobs still running"][-1]
    assert "MessageBox_Message_ManageRefCountLog_BizTalkMsgBoxDb" in stopped["evidence"]["stopped"]
    assert stopped["evidence"]["instances"] == ["SQL1", "SQL2\\SSO"]
    proof = [r for r in run.journal() if r["kind"] == "result" and r["step"] == "force a full BizTalk backup"][-1]
    assert proof["evidence"]["databases"]["SSODB"]["server"] == "SQL2\\SSO"
    assert proof["evidence"]["databases"]["BizTalkMsgBoxDb"]["server"] == "SQL2\\SSO"
    assert proof["evidence"]["databases"]["BizTalkMgmtDb"]["server"] == "SQL1"
