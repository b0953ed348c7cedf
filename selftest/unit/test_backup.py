"""The Backup BizTalk Server job's facts and operation where no lab schema reaches: a BizTalkMgmtDb that
has neither force-full table (the lab models only real BizTalk schemas, which have one or the other)."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import pytest

from entsso import backup, gate, tsql
from entsso.estate import SqlFacts, Snapshot
from entsso.poll import Poller
from entsso.sql import Result


class _Answers:
    """A SqlServer that answers each statement of entsso/tsql.py with fixed rows and records what ran."""

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
