"""The driver matrix (issue 29): the full change and its gate on the lab through Microsoft's ODBC Driver 18
for SQL Server — the inventory's default and every admin box's — as well as through FreeTDS (the shared
full run, selftest/e2e/conftest.py). Once with Encrypt=yes (TDS 7.x, TLS validated against sql.ca_file), once
with `encrypt: strict` (TDS 8.0); a certificate for another name and one from a CA the inventory does not
name are each refused before anything changes, named as such. The runs are `fast` (speed 200) labs: the
rest of the suite's e2e runs stay on FreeTDS (docs/inventory.md, "ODBC drivers")."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from selftest.e2e.suite import run_suite

D18 = "ODBC Driver 18 for SQL Server"


def scenario(tmp_path: Path, name: str, **sql: Any) -> str:
    """A scenario file: the fast default estate, its inventory on Driver 18, with these `sql` keys."""
    path = tmp_path / f"{name}.yml"
    path.write_text(yaml.safe_dump({"extends": "fast", "name": name, "sql": {"driver": D18, **sql}}))
    return str(path)


def inventory_sql(run: Any) -> dict[str, Any]:
    return yaml.safe_load((run.dir / "lab-inventory.yml").read_text())["sql"]


@pytest.mark.parametrize("encrypt, sessions", [(True, "tls"), ("strict", "tls_strict")], ids=["yes", "strict"])
def test_the_full_change_through_driver_18_completes(tmp_path, encrypt, sessions):
    password = f"Canary-Sql-{sessions}-7f3a91"  # the lab's SQL login takes it; it must show nowhere
    run = run_suite(tmp_path, "--lab=" + scenario(tmp_path, f"d18-{sessions}", encrypt=encrypt), "--apply",
                    "--change-ticket", f"CHG-D18-{sessions.upper()}", env={"ENTSSO_SQL_PASSWORD": password})
    assert run.returncode == 0, run.output[-4000:]
    assert run.summary["verdict"] == "completed" and "entsso: COMPLETED" in run.output
    assert set(run.outcomes.values()) == {"passed"}
    assert inventory_sql(run)["driver"] == D18 and inventory_sql(run)["encrypt"] == encrypt
    endpoint = run.lab_state["sql"]["endpoint"]
    # every session of the run came through Driver 18 the way asked: TDS 7.x in TLS, or TDS 8.0
    assert endpoint.get(sessions, 0) > 0 and endpoint.get("plain", 0) == 0, endpoint
    other = "tls" if sessions == "tls_strict" else "tls_strict"
    assert endpoint.get(other, 0) == 0, endpoint
    sso = run.lab_state["estate"]["hosts"]["NODE1"]["sso"]
    assert sso["version"] == "10.0.2000.0"
    assert run.lab_state["sql"]["counters"]["procedures"].get("sp_start_job", 0) >= 1
    assert password not in run.output
    leaked = [p.name for p in run.dir.rglob("*") if p.is_file() and password.encode() in p.read_bytes()]
    assert leaked == []


@pytest.mark.parametrize("sql, kind, fix", [
    ({"certificate_name": "SQL9"}, "certificate name mismatch", "sql.host_name_in_certificate"),
    ({"certificate_issuer": "other"}, "certificate not trusted", "sql.ca_file"),
], ids=["wrong-name", "untrusted-ca"])
def test_a_certificate_driver_18_refuses_stops_the_change_before_anything_changes(tmp_path, sql, kind, fix):
    run = run_suite(tmp_path, "--lab=" + scenario(tmp_path, kind.replace(" ", "-"), **sql), "--apply",
                    "--change-ticket", "CHG-D18-CERT")
    assert run.returncode != 0, run.output[-3000:]
    assert f"SQL Server SQL1 — {kind}: " in run.output, run.output[-3000:]
    assert fix in run.output
    if kind == "certificate not trusted":
        assert "certificate name mismatch" not in run.output
    assert run.summary["verdict"] == "refused", run.summary
    assert not [r for r in run.journal() if r["kind"] == "intent"]  # phase 1 never began
    assert run.lab_state["changes"] == 0
    assert run.lab_state["sql"]["counters"]["procedures"] == {} or \
        "sp_update_job" not in run.lab_state["sql"]["counters"]["procedures"]


def test_the_gate_through_driver_18_strict_passes_and_changes_nothing(tmp_path):
    lab = scenario(tmp_path, "d18-gate", encrypt="strict")
    run = run_suite(tmp_path, "tests_pre", "-m", "readiness", "--lab=" + lab)
    assert run.returncode == 0, run.output[-4000:]
    assert run.summary["verdict"] == "read-only"
    assert set(run.outcomes.values()) == {"passed"} and "test_sql_server_answers" in run.outcomes
    assert run.lab_state["changes"] == 0 and run.lab_state["sql"]["endpoint"].get("tls_strict", 0) > 0
