"""The backup and SQL Agent checks as pure logic: a BizTalkMgmtDb with neither force-full table (the lab
models only real BizTalk schemas, which have one or the other), the gate's judgement of a backup proof,
of the continuously running jobs and of SQL Agent's state, and where the proof is read from a journal."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import pytest

from entsso.domain import backup
from entsso.estate import checks as gate
from entsso.remote import tsql
from entsso.estate.snapshot import SqlFacts, Snapshot
from entsso.domain.poll import Poller
from entsso.remote.sql import Result


class _Answers:
    """A SqlServer that answers each statement of entsso/remote/tsql.py with fixed rows and records what ran."""

    name = "SQL1"

    def __init__(self, answers: dict[str, list[dict[str, Any]]]) -> None:
        self.answers = answers
        self.ran: list[str] = []

    def execute(self, sql: str, params: Any = (), *, database: str = "master") -> Any:
        self.ran.append(sql)
        return Result([self.answers[sql]], [])


NEITHER = {tsql.FORCE_FULL_OBJECTS: [{"backup_settings": None, "force_full_backup": None}],
           tsql.BACKUP_DATABASES: [{"server_name": "SQL1", "database_name": "SSODB", "last_full_set": 7}],
           tsql.LAST_FULL_SET: [{"set_id": 7}]}


def test_flag_is_read_from_neither_table_when_neither_exists():
    sql = _Answers(NEITHER)
    assert backup.force_full_flag(sql) == backup.ForceFullFlag(None, None)
    assert sql.ran == [tsql.FORCE_FULL_OBJECTS]  # no SELECT of a table the probe did not find (error 208)


def test_gate_names_the_missing_flag_tables():
    state = backup.backup_state(_Answers(NEITHER))
    snap = Snapshot(datetime.now(timezone.utc), {}, SqlFacts(reachable=True, backups=state))
    finding = gate.force_full_flag_found(snap)
    assert finding is not None
    assert "neither adm_BackupSettings.ForceFull" in str(finding) and "adm_ForceFullBackup" in str(finding)
    assert "sql.databases.management" in str(finding)


def test_forced_backup_refuses_without_a_flag_table_and_starts_no_job():
    sql = _Answers(NEITHER)
    with pytest.raises(backup.BackupFailed) as err:
        backup.ensure_full_backup(sql, "Backup BizTalk Server (BizTalkMgmtDb)", ["SSODB", "BizTalkMgmtDb"], 60,
                                  Poller())
    assert str(err.value).startswith("BizTalkMgmtDb has neither adm_BackupSettings.ForceFull")
    assert "nothing was backed up" in str(err.value)
    assert tsql.FORCE_FULL_BACKUP not in sql.ran and tsql.START_JOB not in sql.ran


def _snapshot(last_full_set: int | None, listed: bool = True) -> Snapshot:
    dbs = (backup.DatabaseBackup("SQL1", "SSODB", last_full_set),) if listed else ()
    state = backup.BackupState(False, dbs, "adm_BackupSettings", last_full_set)
    return Snapshot(datetime.now(timezone.utc), {}, SqlFacts(reachable=True, backups=state))


PROOF = {"before_set_id": 6, "set_id": 7, "flag_set_by_sp_ForceFullBackup": True,
         "databases": {"SSODB": {"server": "SQL1"}, "BizTalkMgmtDb": {"server": "SQL1"}}}


def test_gate_accepts_the_database_of_the_proven_set_while_history_keeps_it():
    assert gate.full_backup_complete(_snapshot(7), "SSODB", PROOF) is None
    assert gate.force_flag_consumed(_snapshot(7), PROOF) is None


def test_gate_refuses_a_proof_whose_set_is_gone_from_the_history():
    finding = gate.full_backup_complete(_snapshot(6), "SSODB", PROOF)
    assert finding is not None and "full set 7 no longer complete in adm_BackupHistory" in str(finding)


def test_gate_refuses_a_set_that_is_not_newer_than_the_one_before():
    finding = gate.full_backup_complete(_snapshot(7), "SSODB", {**PROOF, "before_set_id": 7})
    assert finding is not None and "full set 7, not newer than set 7" in str(finding)


def test_gate_names_a_database_the_set_lacks_and_where_to_add_it():
    finding = gate.full_backup_complete(_snapshot(7, listed=False), "BAMPrimaryImport", PROOF)
    assert finding is not None
    assert "no row in the forced full set 7 (not in admv_BackupDatabases)" in str(finding)
    assert "adm_OtherBackupDatabases" in str(finding)


def test_gate_without_a_proof_says_none_was_recorded_for_this_change():
    assert "no forced full set recorded for this change" in str(gate.full_backup_complete(_snapshot(7), "SSODB", None))
    assert "no record that sp_ForceFullBackup set it" in str(gate.force_flag_consumed(_snapshot(7), None))


def test_proof_is_the_last_successful_backup_steps_evidence():
    records = [{"kind": "result", "step": backup.FORCE_FULL_STEP, "outcome": "ok", "evidence": {"set_id": 3}},
               {"kind": "result", "step": backup.FORCE_FULL_STEP, "outcome": "failed", "evidence": {"set_id": 9}},
               {"kind": "result", "step": "disable job", "outcome": "ok", "evidence": {"set_id": 8}},
               {"kind": "result", "step": backup.FORCE_FULL_STEP, "outcome": "unchanged", "evidence": {"set_id": 5}}]
    assert backup.recorded_proof(records) == {"set_id": 5}
    assert backup.recorded_proof(records[1:3]) is None


def _jobs_snapshot(agent: str | None = "Running", error: str | None = None) -> Snapshot:
    from entsso.domain.sqlagent import Job

    refcount = Job("MessageBox_Message_ManageRefCountLog_BizTalkMsgBoxDb", True, True, True, None, None, None)
    monitor = Job("Monitor BizTalk Server (BizTalkMgmtDb)", True, True, True, None, None, None)
    return Snapshot(datetime.now(timezone.utc), {}, SqlFacts(reachable=True, agent=agent, agent_error=error,
                                                             jobs={j.name: j for j in (refcount, monitor)}))


def test_gate_expects_the_continuously_running_jobs_to_run_and_no_other():
    from entsso.inventory import DEFAULT_CONTINUOUS_JOBS

    s = _jobs_snapshot()
    assert gate.job_idle(s, "MessageBox_Message_ManageRefCountLog_BizTalkMsgBoxDb", DEFAULT_CONTINUOUS_JOBS) is None
    finding = gate.job_idle(s, "Monitor BizTalk Server (BizTalkMgmtDb)", DEFAULT_CONTINUOUS_JOBS)
    assert finding is not None and "running now" in str(finding) and "wait for this run to end" in str(finding)


def test_gate_names_sql_agent_stopped_and_how_to_fix_it():
    finding = gate.sql_agent_running(_jobs_snapshot("Stopped"))
    assert str(finding).startswith("SQL Server Agent: found state Stopped; expected Running: start the SQL Server "
                                   "Agent service")
    assert gate.sql_agent_running(_jobs_snapshot("Running")) is None
    unreadable = gate.sql_agent_running(_jobs_snapshot(None, "(300) VIEW SERVER STATE permission was denied"))
    assert "state unreadable" in str(unreadable) and "VIEW SERVER STATE" in str(unreadable)


def test_gate_lets_a_backup_run_going_finish_and_refuses_another_job_running():
    """A Backup BizTalk Server run from its schedule is routine (every 15 minutes): phases 1 and 2 wait for it,
    so the gate does not refuse it; any other job running is still named (issue 27)."""
    s = _jobs_snapshot()
    monitor = "Monitor BizTalk Server (BizTalkMgmtDb)"
    assert gate.job_idle(s, monitor, (), let_finish=monitor) is None
    assert gate.job_idle(s, monitor, (), let_finish="Backup BizTalk Server (BizTalkMgmtDb)") is not None
