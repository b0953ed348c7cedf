"""Prepared: what phases 1–2 leave (BizTalk silenced, master secret and databases backed up).
Read-only without --apply; `pytest tests_pre --apply --change-ticket ID` does the preparation first."""
import pytest

from entsso.estate import checks as gate
from entsso.domain.biztalk import RULE_ENGINE
from entsso.domain.sso import ENTSSO

pytestmark = pytest.mark.prepared


def test_host_instance_stopped(silenced, host_instance, judge):
    server, name = host_instance
    judge(gate.host_instance_stopped(silenced, server, name),
          [i for i in silenced.hosts[server].host_instances if i.host_name == name])


def test_rule_engine_update_service_stopped(silenced, biztalk_server, judge):
    judge(gate.service_stopped(silenced, biztalk_server, RULE_ENGINE),
          silenced.hosts[biztalk_server].service(RULE_ENGINE))


def test_entsso_stopped_on_biztalk_server(silenced, biztalk_server, judge):
    judge(gate.service_stopped(silenced, biztalk_server, ENTSSO), silenced.hosts[biztalk_server].service(ENTSSO))


def test_biztalk_job_disabled(silenced, job, judge):
    judge(gate.job_disabled(silenced, job), silenced.sql.jobs.get(job))


def test_master_secret_backed_up_in_this_change(secret_backed_up, run, judge):
    mss = run.primary_node()
    judge(gate.secret_backed_up(secret_backed_up, mss, run.change_started, run.clock_skews),
          {"node": mss, "file": secret_backed_up.hosts[mss].secret_backup,
           "change_started": run.change_started})


def test_full_backup_in_this_changes_forced_set(full_backup_done, full_backup_proof, database, judge):
    judge(gate.full_backup_complete(full_backup_done, database, full_backup_proof),
          {"proof": full_backup_proof, "backups": full_backup_done.sql.backups})


def test_ssodb_in_this_changes_forced_set(full_backup_done, full_backup_proof, run, judge):
    """Required whether or not the Backup BizTalk Server job lists it (adm_OtherBackupDatabases)."""
    judge(gate.full_backup_complete(full_backup_done, run.inventory.sql.databases.ssodb, full_backup_proof),
          {"proof": full_backup_proof, "backups": full_backup_done.sql.backups})


def test_management_database_in_this_changes_forced_set(full_backup_done, full_backup_proof, run, judge):
    judge(gate.full_backup_complete(full_backup_done, run.inventory.sql.databases.management, full_backup_proof),
          {"proof": full_backup_proof, "backups": full_backup_done.sql.backups})


def test_force_full_flag_set_then_consumed(full_backup_done, full_backup_proof, judge):
    judge(gate.force_flag_consumed(full_backup_done, full_backup_proof),
          {"proof": full_backup_proof, "backups": full_backup_done.sql.backups})
