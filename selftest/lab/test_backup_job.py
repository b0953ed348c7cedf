"""The Backup BizTalk Server job as the lab runs it (issue 27 item 4): a history row per step, a partial
failure (the full set made, the log step failed), its own schedule, and a scheduled run colliding with the
suite's sp_start_job (22022); and the suite's answers (entsso.domain.backup, sqlagent) to each, through the
real client against the lab's SQL endpoint."""
from __future__ import annotations

import time

import pytest

from entsso.domain import backup, sqlagent
from entsso.lab.backupjob import BACKUP_STEPS
from entsso.remote import tsql
from entsso.remote.sql import SqlError
from selftest.lab import test_sqlengine as base
from selftest.lab.test_sqlengine import BACKUP_JOB, REQUIRED, fast_poller, jobs, wait_finished

# the SQL engine's fixtures (an engine, its TDS endpoint, the suite's client against it)
lab_ca, serve, make_engine, lab_sql = base.lab_ca, base.serve, base.make_engine, base.lab_sql

LOG_FAILED = ("Executed as user: NT SERVICE\\SQLSERVERAGENT. BACKUP LOG is terminating abnormally. "
              "[SQLSTATE 42000] (Error 3013).  The step failed.")


def steps_of_last_run(sql, before: int | None, after: int | None) -> list[sqlagent.JobStep]:
    return sqlagent.run_steps(sql, BACKUP_JOB, before, after)


def test_a_forced_run_writes_a_success_row_per_step_then_a_full_and_a_log_set(lab_sql):
    engine, sql = lab_sql()
    before = jobs(sql)[BACKUP_JOB]["last_instance_id"]
    full_before = backup.last_full_set(sql)
    newest = sql.execute("SELECT MAX(BackupSetId) AS n FROM BizTalkMgmtDb.dbo.adm_BackupHistory",
                         database="BizTalkMgmtDb").scalar()
    sql.execute(tsql.FORCE_FULL_BACKUP, database="BizTalkMgmtDb")
    sql.execute(tsql.START_JOB, (BACKUP_JOB,), database="msdb")
    done = wait_finished(sql, BACKUP_JOB, before)
    steps = steps_of_last_run(sql, before, done["last_instance_id"])
    assert [(s.step_id, s.name, s.outcome) for s in steps] == [
        (i, name, "Succeeded") for i, name in enumerate(BACKUP_STEPS, start=1)]
    assert backup.full_sets_after(sql, full_before) and backup.force_full_flag(sql).set is False
    logs = sql.execute("SELECT COUNT(*) AS n FROM BizTalkMgmtDb.dbo.adm_BackupHistory WHERE BackupType = 'lg' "
                       "AND SetComplete = 1 AND BackupSetId > ?", (newest,), database="BizTalkMgmtDb").scalar()
    assert logs == len(engine._backup_databases())  # MarkAndBackupLog ran after the full set, every database


def test_a_log_step_failure_after_the_full_set_is_a_partial_failure(lab_sql):
    engine, sql = lab_sql()
    engine.fail_job(BACKUP_JOB, LOG_FAILED, step="MarkAndBackupLog")
    before = jobs(sql)[BACKUP_JOB]["last_instance_id"]
    full_before = backup.last_full_set(sql)
    sql.execute(tsql.FORCE_FULL_BACKUP, database="BizTalkMgmtDb")
    sql.execute(tsql.START_JOB, (BACKUP_JOB,), database="msdb")
    done = wait_finished(sql, BACKUP_JOB, before)
    assert done["last_run_status"] == 0
    assert "The last step to run was step 3 (MarkAndBackupLog)." in done["last_message"]
    steps = steps_of_last_run(sql, before, done["last_instance_id"])
    assert [(s.name, s.outcome) for s in steps] == [("Set Compression Option", "Succeeded"),
                                                    ("BackupFull", "Succeeded"), ("MarkAndBackupLog", "Failed")]
    assert steps[-1].message == LOG_FAILED
    assert backup.full_sets_after(sql, full_before)  # the full set is complete and the flag consumed
    assert backup.force_full_flag(sql).set is False
    job = sqlagent.jobs(sql, [BACKUP_JOB])[BACKUP_JOB]
    assert sqlagent.job_health(job) == (f"its last run ({job.last_run}, msdb's local time) Failed; the failing "
                                        f"step 'MarkAndBackupLog': {LOG_FAILED}")


def test_a_seeded_partial_failure_has_the_steps_before_it_succeeded(lab_sql):
    _, sql = lab_sql(failed_jobs={BACKUP_JOB: {"step": "MarkAndBackupLog", "message": LOG_FAILED}})
    job = sqlagent.jobs(sql, [BACKUP_JOB])[BACKUP_JOB]
    assert job.last_outcome == "Failed" and job.failed_step == "MarkAndBackupLog"
    steps = sqlagent.run_steps(sql, BACKUP_JOB, None, job.last_instance_id)
    assert [(s.name, s.outcome) for s in steps][-3:] == [
        ("Set Compression Option", "Succeeded"), ("BackupFull", "Succeeded"), ("MarkAndBackupLog", "Failed")]


def test_a_seeded_failure_at_a_step_the_job_does_not_have_is_refused(make_engine):
    with pytest.raises(ValueError, match="'Backup' is not a step of that job"):
        make_engine(failed_jobs={BACKUP_JOB: {"step": "Backup", "message": "x"}})


def test_the_jobs_own_schedule_starts_it_while_enabled_and_not_when_disabled(lab_sql):
    engine, sql = lab_sql(speed=2000, backup_schedule_minutes=2)
    before = jobs(sql)[BACKUP_JOB]["last_instance_id"]
    done = wait_finished(sql, BACKUP_JOB, before, timeout=10)
    assert "The Job was invoked by Schedule 1 (daily)." in done["last_message"]
    sql.execute(tsql.UPDATE_JOB, (BACKUP_JOB, 0), database="msdb")
    engine.wait_idle(5)
    last = jobs(sql)[BACKUP_JOB]["last_instance_id"]
    time.sleep(engine.clock.real(6 * 60))  # three periods
    assert jobs(sql)[BACKUP_JOB]["last_instance_id"] == last  # a disabled job's schedule does not fire


def test_sp_start_job_meeting_a_scheduled_run_is_22022_naming_the_schedule(lab_sql):
    engine, sql = lab_sql()
    engine.collide_on_start(BACKUP_JOB)
    with pytest.raises(SqlError) as err:
        sql.execute(tsql.START_JOB, (BACKUP_JOB,), database="msdb")
    assert err.value.number == 22022
    assert (f"Request to run job {BACKUP_JOB} (from User entsso) refused because the job is already running "
            "from a request by User (schedule).") in str(err.value)
    assert jobs(sql)[BACKUP_JOB]["running"] == 1
    assert engine.dump()["counters"]["changes"] == 0  # the refused start changed nothing


def test_the_forced_backup_waits_for_a_colliding_scheduled_run_and_proves_only_its_own(lab_sql):
    """The schedule starts the job an instant before the suite's sp_start_job, *after* sp_ForceFullBackup:
    that run takes the flag and makes a full set. The suite waits for it, forces again, runs its own, and its
    proof is the set its own run made."""
    engine, sql = lab_sql()
    engine.collide_on_start(BACKUP_JOB)
    done = backup.ensure_full_backup(sql, BACKUP_JOB, REQUIRED, 30, fast_poller())
    proof = done.evidence
    assert proof["start_collisions"] == 1 and len(proof["waited_for_runs_going"]) == 1
    sets = backup.full_sets_after(sql, None)
    scheduled, ours = sets[-2], sets[-1]  # the scheduled run's full set, then this change's
    assert proof["set_id"] == ours.set_id and proof["before_set_id"] == scheduled.set_id
    assert engine.dump()["counters"]["procedures"]["sp_ForceFullBackup"] == 2
    assert [s["outcome"] for s in proof["steps"]] == ["Succeeded"] * 4


def test_the_forced_backup_waits_for_a_run_already_going(lab_sql):
    engine, sql = lab_sql()
    engine.run_on_schedule(BACKUP_JOB)
    done = backup.ensure_full_backup(sql, BACKUP_JOB, REQUIRED, 30, fast_poller())
    assert done.evidence["start_collisions"] == 0 and done.evidence["waited_for_runs_going"][0]["seconds"] >= 0


def test_the_forced_backup_stops_on_a_partial_failure_naming_the_step_and_not_taking_its_full_set(lab_sql):
    engine, sql = lab_sql()
    engine.fail_job(BACKUP_JOB, LOG_FAILED, step="MarkAndBackupLog")
    with pytest.raises(backup.BackupFailed) as err:
        backup.ensure_full_backup(sql, BACKUP_JOB, REQUIRED, 30, fast_poller())
    made = backup.full_sets_after(sql, None)[-1].set_id
    assert str(err.value) == (
        f"the job {BACKUP_JOB!r} ended Failed: its step 3 (MarkAndBackupLog) Failed: {LOG_FAILED}. Its BackupFull "
        f"step made full set {made}, but without the marked log backup after it the BizTalk databases cannot be "
        "restored to one consistent point (\"Backing Up and Restoring BizTalk Server Databases\": log marks), so "
        "it is not taken as this change's backup. Read the step's history (msdb.dbo.sysjobhistory) and the backup "
        "path (free space, access), fix it, then re-run.")


def test_the_forced_backup_stops_on_a_full_step_failure_with_the_flag_still_set(lab_sql):
    engine, sql = lab_sql()
    engine.fail_job(BACKUP_JOB, "BACKUP DATABASE is terminating abnormally.", step="BackupFull")
    with pytest.raises(backup.BackupFailed) as err:
        backup.ensure_full_backup(sql, BACKUP_JOB, REQUIRED, 30, fast_poller())
    assert "its step 2 (BackupFull) Failed: BACKUP DATABASE is terminating abnormally." in str(err.value)
    assert "The force-full flag is still set" in str(err.value)
    assert backup.force_full_flag(sql).set is True
