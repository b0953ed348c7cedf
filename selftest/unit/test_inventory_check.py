"""`python -m entsso.inventory FILE`: a file is checked without its secrets; each problem names its line;
a valid file prints the change's outline and which environment variables a run needs (never their values)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from entsso.inventory import InventoryError, check_inventory, load_inventory, needed_variables

ROOT = Path(__file__).resolve().parents[2]
CANARY = "canary-Inv3ntory-check-0815"
ENV = ("ENTSSO_WINRM_PASSWORD", "ENTSSO_SQL_PASSWORD", "ENTSSO_SECRET_PASSWORD")

VALID = """\
environment: TEST
cluster:
  network_name: SSOCLUSTER
  nodes:
    - NODE1
    - {name: NODE2, address: 10.0.0.12}
biztalk_servers: [BTS1, BTS2]
sql:
  server: SQL1
  auth: sql
  username: entsso
  password_env: ENTSSO_SQL_PASSWORD
  jobs: ['Backup BizTalk Server (BizTalkMgmtDb)', MessageBox_UpdateStats_BizTalkMsgBoxDb]
  continuous_jobs: []
winrm:
  username: 'CORP\\svc-entsso'
  password_env: ENTSSO_WINRM_PASSWORD
secret_backup:
  folder: 'C:\\SSOBackup'
  password_env: ENTSSO_SECRET_PASSWORD
upgrade:
  target_version: 10.0.2000.0
  nodes:
    NODE2: {mode: package, package_path: 'C:\\Updates\\EntSSO-CU.msp'}
timeouts:
  upgrade: 1800
"""


def cli(path: Path, *extra: str, env: dict[str, str | None] | None = None) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if k not in ENV}
    for k, v in (env or {}).items():
        if v is not None:
            environ[k] = v
    return subprocess.run([sys.executable, "-m", "entsso.inventory", *extra, str(path)], cwd=ROOT, env=environ,
                          capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)


@pytest.fixture
def no_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENV:
        monkeypatch.delenv(name, raising=False)


def test_check_inventory_validates_a_file_whose_secrets_are_not_set(tmp_path: Path, no_secrets: None) -> None:
    path = tmp_path / "prod.yml"
    path.write_text(VALID)
    inv = check_inventory(path)
    assert [n.name for n in inv.cluster.nodes] == ["NODE1", "NODE2"]
    assert inv.secrets.winrm_password is None
    with pytest.raises(InventoryError, match="ENTSSO_WINRM_PASSWORD, which is not set"):
        load_inventory(path)  # a run still needs them


def test_needed_variables_name_each_secret_and_whether_it_is_set(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "prod.yml"
    path.write_text(VALID)
    monkeypatch.delenv("ENTSSO_SQL_PASSWORD", raising=False)
    monkeypatch.setenv("ENTSSO_WINRM_PASSWORD", CANARY)
    monkeypatch.setenv("ENTSSO_SECRET_PASSWORD", CANARY)
    needed = {v.variable: (v.field, v.is_set) for v in needed_variables(check_inventory(path))}
    assert needed == {"ENTSSO_WINRM_PASSWORD": ("winrm.password_env", True),
                      "ENTSSO_SQL_PASSWORD": ("sql.password_env", False),
                      "ENTSSO_SECRET_PASSWORD": ("secret_backup.password_env", True)}


def test_each_problem_names_the_line_of_its_field(tmp_path: Path) -> None:
    text = VALID.replace("  network_name: SSOCLUSTER\n", "  netwrok_name: SSOCLUSTER\n") \
                .replace("    - NODE1\n", "    - 'NODE 1'\n").replace("  upgrade: 1800\n", "  upgrade: -5\n")
    path = tmp_path / "prod.yml"
    path.write_text(text)
    with pytest.raises(InventoryError) as info:
        check_inventory(path)
    message = str(info.value)
    assert "  - line 3: cluster.netwrok_name: unknown key; did you mean `network_name`?" in message
    assert "  - line 5: cluster.nodes[0].name: 'NODE 1' is not a host name" in message
    assert "  - line 26: timeouts.upgrade: -5 is not allowed" in message
    # a missing key has no line of its own: the mapping that lacks it is named
    assert "  - line 2: cluster.network_name: missing; add it" in message


def test_a_cross_field_rule_names_its_line_too(tmp_path: Path) -> None:
    path = tmp_path / "prod.yml"
    path.write_text(VALID.replace("  target_version: 10.0.2000.0\n", "  target_version: 10.0.2000.0\n"
                                  "  nodes:\n    NODE3: {mode: manual}\n", 1).replace(
        "  nodes:\n    NODE2: {mode: package, package_path: 'C:\\Updates\\EntSSO-CU.msp'}\n", ""))
    with pytest.raises(InventoryError) as info:
        check_inventory(path)
    assert "prod.yml: line 24: upgrade.nodes.NODE3: 'NODE3' is not one of the cluster's nodes" in str(info.value)


def test_cli_help_describes_the_check_and_exits_0() -> None:
    done = subprocess.run([sys.executable, "-m", "entsso.inventory", "--help"], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0
    assert "usage: python -m entsso.inventory [-h] FILE" in done.stdout
    assert "without its secrets" in " ".join(done.stdout.split())


def test_cli_prints_the_outline_and_the_variables_without_their_values(tmp_path: Path) -> None:
    path = tmp_path / "prod.yml"
    path.write_text(VALID)
    done = cli(path, env={"ENTSSO_WINRM_PASSWORD": CANARY, "ENTSSO_SECRET_PASSWORD": CANARY})
    out = done.stdout
    assert done.returncode == 0, done.stderr
    assert CANARY not in out + done.stderr
    assert "  NODE1: 10.0.2000.0, by an operator running ESSO Setup" in out
    assert "  NODE2 at 10.0.0.12: 10.0.2000.0, by the update package C:\\Updates\\EntSSO-CU.msp /quiet /norestart" in out
    assert "BizTalk servers (silenced, then put back): BTS1, BTS2" in out
    assert "SQL Agent jobs disabled for the change and enabled again after (2):" in out
    assert "  Backup BizTalk Server (BizTalkMgmtDb) (the forced full backup)" in out
    assert "upgrade 1800 s per node" in out and "group move 300 s" in out
    assert "  ENTSSO_WINRM_PASSWORD: the WinRM password of CORP\\svc-entsso (winrm.password_env) — set" in out
    assert "  ENTSSO_SQL_PASSWORD: the SQL login password of entsso (sql.password_env) — NOT set" in out
    assert out.rstrip().endswith("valid; before a run, export ENTSSO_SQL_PASSWORD (or run on a terminal to be asked)")


def test_cli_refuses_a_bad_file_with_lines_on_stderr(tmp_path: Path) -> None:
    path = tmp_path / "prod.yml"
    path.write_text(VALID.replace("  username: entsso\n", "  usernme: entsso\n"))
    done = cli(path)
    assert done.returncode == 2 and done.stdout == ""
    assert "line 11: sql.usernme: unknown key; did you mean `username`?" in done.stderr


def test_cli_checks_the_shipped_example_without_secrets() -> None:
    done = cli(ROOT / "inventory" / "example.yml")
    assert done.returncode == 0, done.stderr
    assert "NODE2 at node2.corp.example: 10.0.2000.0, by the update package" in done.stdout
    assert "ENTSSO_WINRM_PASSWORD: the WinRM password of" in done.stdout and "— NOT set" in done.stdout
