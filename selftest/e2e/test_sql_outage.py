"""SQL Server fails over mid-change (issue 27 item 4): it goes for 30 estate seconds as phase 4 installs the
update on NODE2, dropping every session, the estate lock's with it; the run takes the lock again once SQL
Server answers and the change completes (docs/operations.md, Retries: "SQL Server failing over mid-change")."""
from __future__ import annotations

from pathlib import Path

from selftest.e2e.suite import run_suite


def _scenario(tmp_path: Path, name: str, extra: str = "") -> str:
    path = tmp_path / f"{name}.yml"
    path.write_text(f"extends: package\nname: {name}\n{extra}", encoding="utf-8")
    return str(path)


def test_a_sql_failover_mid_change_loses_the_lock_which_is_taken_again_and_the_change_completes(start_lab, tmp_path):
    lab = start_lab(_scenario(tmp_path, "sql-failover", "faults:\n  - {kind: sql_unavailable, host: NODE2, "
                              "operation: Install-SsoUpdate, seconds: 30}\n"))
    run = run_suite(tmp_path / "reports", f"--inventory={lab.inventory_path}", "--apply", "--change-ticket",
                    "CHG-SQL-1", env=dict(lab.env))
    assert run.returncode == 0, run.output[-3000:]
    assert run.summary["verdict"] == "completed"
    state = lab.state()
    outages = state["faults"]["sql_outages"]
    assert [(o["seconds"], o["healed"]) for o in outages] == [(30, True)]
    journal = run.journal()
    kinds = [r["kind"] for r in journal]
    lost = [r for r in journal if r["kind"] == "estate_lock_lost"]
    retaken = [r for r in journal if r["kind"] == "estate_lock_retaken"]
    # lost with the outage in phase 4, found before phase 5, taken again there; nothing stopped
    assert [r["phase"] for r in lost] == ["recluster"] and "session ended" in lost[0]["reason"]
    assert [(r["phase"], r["held"], r["lost_before"]) for r in retaken] == [("recluster", True, True)]
    assert kinds.index("estate_lock_retaken") < next(i for i, r in enumerate(journal)
                                                     if r["kind"] == "phase_finished" and r["phase"] == "recluster")
    assert "phase_stopped" not in kinds
    # the change is whole: every node on the new version, SSODB naming the cluster again, the group Online
    target = state["estate"]["hosts"]["NODE1"]["sso"]["version"]
    assert state["estate"]["hosts"]["NODE2"]["sso"]["version"] == target
    assert state["sql"]["secret_server"] == "SSOCLUSTER"
    assert state["estate"]["cluster"]["resource"]["state"] == "Online"
