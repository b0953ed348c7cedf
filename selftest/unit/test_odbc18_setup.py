"""scripts/odbc18.sh (run by scripts/bootstrap.sh): Microsoft's ODBC Driver 18 of the mssql-python-odbc wheel
registered in the project's own odbcinst.ini — never in the system's — so that the selftests (ODBCSYSINI, set
by selftest/conftest.py) see it beside the system's drivers; an installed Driver 18 is left to the system."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from selftest.e2e.suite import ROOT

D18 = "ODBC Driver 18 for SQL Server"


def system_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("ODBCSYSINI", "ODBCINSTINI")}


def system_drivers() -> list[str]:
    out = subprocess.run(["odbcinst", "-q", "-d"], capture_output=True, text=True, env=system_env()).stdout
    return [line.strip("[]") for line in out.split() if line.startswith("[")]


def system_odbcinst() -> Path:
    out = subprocess.run(["odbcinst", "-j"], capture_output=True, text=True, env=system_env()).stdout
    return Path(next(line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("DRIVERS")))


def test_driver_18_is_registered_for_the_project_only_and_again_the_same(tmp_path):
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    (venv / "bin" / "python").chmod(0o755)
    system = system_odbcinst()
    before = system.read_bytes() if system.exists() else None

    def setup() -> str:
        done = subprocess.run(["sh", "scripts/odbc18.sh", str(venv)], cwd=ROOT, capture_output=True, text=True,
                              timeout=120, env=system_env())
        assert done.returncode == 0, done.stdout + done.stderr
        ini = venv / "etc" / "odbcinst.ini"
        return ini.read_text() if ini.exists() else ""

    first = setup()
    assert (system.read_bytes() if system.exists() else None) == before  # the system's file is never written
    if D18 in system_drivers():
        assert first == ""  # the machine's own Driver 18 is the one used
        return
    assert setup() == first  # a second run changes nothing
    driver = next(line.split("=", 1)[1] for line in first.splitlines()[first.splitlines().index(f"[{D18}]"):]
                  if line.startswith("Driver="))
    assert Path(driver).is_file() and Path(driver).name.startswith("libmsodbcsql-18")
    seen = subprocess.run([sys.executable, "-c", "import pyodbc; print('|'.join(pyodbc.drivers()))"],
                          capture_output=True, text=True, env={**system_env(), "ODBCSYSINI": str(venv / "etc")})
    assert set(seen.stdout.strip().split("|")) == {*system_drivers(), D18}, seen.stdout + seen.stderr
