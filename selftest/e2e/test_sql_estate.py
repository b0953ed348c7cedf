"""SQL Server and BizTalkMgmtDb as real estates have them, end to end (`pytest tests_pre …` against the
lab): the force-full flag where each BizTalk version keeps it, the backup proven whatever SQL
Server's clock."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from selftest.e2e.suite import run_suite


def scenario(tmp_path: Path, name: str, **sql: Any) -> str:
    """A scenario file: the default estate, fast, with these `sql` keys."""
    path = tmp_path / f"{name}.yml"
    path.write_text(yaml.safe_dump({"extends": "default", "name": name, "speed": 200, "sql": sql}))
    return str(path)


def backup_evidence(run) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    results = [r for r in run.journal() if r["kind"] == "result" and r["step"] == "force a full BizTalk backup"]
    assert results, "no forced backup step in the journal"
    return results[-1].get("evidence") or {}


def test_forced_backup_on_a_biztalk_2006_schema_uses_adm_forcefullbackup(tmp_path):
    run = run_suite(tmp_path, "tests_pre", "--lab", scenario(tmp_path, "bts2006", biztalk_schema="2006"),
                    "--apply", "--change-ticket", "CHG-BTS2006")
    assert run.returncode == 0, run.output[-3000:]
    assert run.outcomes["test_force_full_flag_found_in_the_management_database"] == "passed"
    assert run.outcomes["test_force_full_flag_set_then_consumed"] == "passed"
    assert backup_evidence(run)["flag_table"] == "adm_ForceFullBackup"
    sql = run.lab_state["sql"]
    assert sql["counters"]["procedures"].get("sp_ForceFullBackup") == 1
    assert sql["force_full_backup"] == 0  # set by the procedure, consumed by the job's full set


@pytest.mark.parametrize("offset", [600, -480])
def test_backup_proof_holds_whatever_sql_servers_clock(tmp_path, offset):
    """A routine full set of an hour ago (east of UTC it reads as hours after the change began) is never
    taken as the change's backup: the forced run is made and proven by its newer set id; west of UTC the
    fresh set (whose local time reads as before the change began) is always accepted."""
    run = run_suite(tmp_path, "tests_pre", "--lab",
                    scenario(tmp_path, f"utc{offset:+d}", utc_offset_minutes=offset, last_full_minutes_ago=60),
                    "--apply", "--change-ticket", f"CHG-TZ{offset:+d}")
    assert run.returncode == 0, run.output[-3000:]
    proof = backup_evidence(run)
    assert proof["changed"] is True and proof["set_id"] > proof["before_set_id"]
    assert proof["sql_utc_offset_minutes"] == offset
    assert {"SSODB", "BizTalkMgmtDb", "BizTalkMsgBoxDb"} <= set(proof["databases"])
    procedures = run.lab_state["sql"]["counters"]["procedures"]
    assert procedures.get("sp_ForceFullBackup") == 1 and procedures.get("sp_start_job") == 1
    assert run.outcomes["test_full_backup_in_this_changes_forced_set[SSODB]"] == "passed"
    assert run.outcomes["test_force_full_flag_set_then_consumed"] == "passed"


def test_sql_agent_stopped_is_a_gate_finding_and_nothing_changes(tmp_path):
    run = run_suite(tmp_path, f"--lab={scenario(tmp_path, 'agent-stopped', agent_running=False)}",
                    "--apply", "--change-ticket", "CHG-AGENT")
    assert run.returncode == 1, run.output[-3000:]
    assert "SQL Server Agent: found state Stopped; expected Running: start the SQL Server Agent service" in run.output
    assert run.outcomes["test_sql_server_agent_running"] == "failed"
    kinds = [r["kind"] for r in run.journal()]
    assert "gate_refused" in kinds and "intent" not in kinds
    assert run.lab_state["changes"] == 0


def test_ssodb_missing_from_the_backup_jobs_databases_is_refused_before_phase_1(tmp_path):
    """SSODB is in the job's set only through its adm_OtherBackupDatabases row: without it phase 2 could not
    prove its backup. The rehearsal finds it before phase 1, with nothing changed (it was found in phase 2,
    after BizTalk had been silenced)."""
    run = run_suite(tmp_path, "--lab=" + scenario(tmp_path, "no-ssodb-row",
                                                  databases=["BizTalkMgmtDb", "BizTalkMsgBoxDb", "BizTalkDTADb"]),
                    "--apply", "--change-ticket", "CHG-NOSSODB")
    assert run.returncode == 1, run.output[-3000:]
    assert "the Backup BizTalk Server job does not back up SSODB" in run.output
    assert "adm_OtherBackupDatabases" in run.message("test_sql_server_rehearsed_every_statement_of_the_change")
    assert "then run the gate again: pytest --inventory=" in run.output
    assert run.summary["verdict"] == "refused"
    assert not [r for r in run.journal() if r["kind"] == "intent"]  # phase 1 never began
    assert run.lab_state["changes"] == 0


def test_missing_grant_is_refused_by_the_gate_naming_it_and_nothing_changes(tmp_path):
    """A login without EXECUTE on sp_update_job: the gate asks HAS_PERMS_BY_NAME before anything changes,
    names the grant and the GRANT that adds it; phase 1 never gets to error 229."""
    run = run_suite(tmp_path, f"--lab={scenario(tmp_path, 'denied', denied=['msdb.dbo.sp_update_job'])}",
                    "--apply", "--change-ticket", "CHG-DENIED")
    assert run.returncode == 1, run.output[-3000:]
    assert "found no EXECUTE on msdb.dbo.sp_update_job" in run.output
    assert "GRANT EXECUTE ON msdb.dbo.sp_update_job TO [entsso]" in run.output
    assert run.outcomes["test_sql_login_has_the_grants_the_run_needs"] == "failed"
    assert run.outcomes["test_sql_server_answers"] == "passed"
    kinds = [r["kind"] for r in run.journal()]
    assert "gate_refused" in kinds and "intent" not in kinds
    assert run.lab_state["changes"] == 0
    assert "sp_update_job" not in run.lab_state["sql"]["counters"]["procedures"]


def test_a_read_the_login_may_not_do_is_named_permission_denied_not_unreachable(tmp_path):
    run = run_suite(tmp_path, "tests_pre", f"--lab={scenario(tmp_path, 'denied-read', denied=['msdb.dbo.sysjobs'])}")
    assert run.returncode == 1, run.output[-3000:]
    assert ("permission denied: [42000] [FreeTDS][SQL Server]The SELECT "
            "permission was denied on the object 'sysjobs', database 'msdb', schema 'dbo'. (229)") in run.output
    assert "GRANT SELECT ON msdb.dbo.sysjobs TO [entsso]" in run.output
    assert "could not be reached" not in run.output
    assert run.outcomes["test_sql_login_has_the_grants_the_run_needs"] == "failed"
