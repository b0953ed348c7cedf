"""entsso.change.capture: what SQL Server answered and the inventory the run read, kept beside the WinRM
documents so that a capture can shape a lab (entsso.lab.replay)."""
from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest

from entsso.change.capture import Capture
from entsso.inventory import load_inventory
from entsso.remote.sql import Result, StatementLog, StatementRecord

ROOT = Path(__file__).resolve().parents[2]


def _record(sql: str = "SELECT name, enabled FROM msdb.dbo.sysjobs", outcome: str = "ok") -> StatementRecord:
    return StatementRecord(sql=sql, database="msdb", started=1_765_000_000.0, seconds=0.01, rows=1, outcome=outcome)


def test_each_answered_statement_is_kept_with_its_rows_and_messages(tmp_path: Path) -> None:
    log = StatementLog()
    log.listeners.append(Capture(tmp_path).statement)
    answer = Result([[{"name": "Backup BizTalk Server (BizTalkMgmtDb)", "enabled": 1,
                       "run_at": datetime(2026, 12, 7, 22, 18, 24), "job_id": b"\x01\xab"}]], ["Job started."])
    log.add(_record(), answer, "SQL1")
    log.add(_record(outcome="error"), None, "SQL1")  # a statement that failed has no answer to keep
    kept = sorted((tmp_path / "sql").glob("*.json"))
    assert [p.name for p in kept] == ["0001-msdb.json"]
    doc = json.loads(kept[0].read_text())
    assert doc["server"] == "SQL1" and doc["database"] == "msdb"
    assert doc["statement"] == "SELECT name, enabled FROM msdb.dbo.sysjobs"
    assert doc["sets"] == [[{"name": "Backup BizTalk Server (BizTalkMgmtDb)", "enabled": 1,
                             "run_at": "2026-12-07T22:18:24", "job_id": "0x01AB"}]]
    assert doc["messages"] == ["Job started."]
    assert doc["source"].startswith("captured from SQL1 at ") and "(msdb)" in doc["source"]
    assert len(log.records) == 2  # the log itself still records both, without rows


def test_the_inventory_is_kept_without_its_secrets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secrets = {"ENTSSO_WINRM_PASSWORD": "Winrm-Canary-1f2e", "ENTSSO_SQL_PASSWORD": "Sql-Canary-9a8b",
               "ENTSSO_SECRET_PASSWORD": "Secret-Canary-77c1"}
    for name, value in secrets.items():
        monkeypatch.setenv(name, value)
    inventory = load_inventory(ROOT / "inventory" / "example.yml")
    Capture(tmp_path).inventory(inventory)
    text = (tmp_path / "inventory.json").read_text()
    doc = json.loads(text)
    assert [n["name"] for n in doc["cluster"]["nodes"]] == [n.name for n in inventory.cluster.nodes]
    assert "lab" not in doc
    assert not [v for v in secrets.values() if v in text]
