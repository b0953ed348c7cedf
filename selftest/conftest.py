"""The selftests' ODBC drivers: the project's own odbcinst.ini when scripts/bootstrap.sh wrote one.

Where no `ODBC Driver 18 for SQL Server` is installed, bootstrap registers the one of the mssql-python-odbc
wheel in <venv>/etc/odbcinst.ini (with a copy of the system's drivers), never in the system's. unixODBC
reads the directory ODBCSYSINI names instead of the system's: set here, at the selftests' start, so this
process, its xdist workers and every suite run it starts (selftest/e2e/suite.py passes its environment on)
see both FreeTDS and Driver 18. An ODBCSYSINI the caller set is kept.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

PROJECT_ODBCINST = Path(sys.prefix) / "etc" / "odbcinst.ini"

if PROJECT_ODBCINST.is_file():
    os.environ.setdefault("ODBCSYSINI", str(PROJECT_ODBCINST.parent))
