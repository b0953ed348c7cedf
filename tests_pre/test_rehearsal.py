"""The rehearsal: each host ran every operation the change will run on it, and SQL Server every statement,
in a form that changed nothing (what cannot be rehearsed is listed in the report and summary.json)."""
import pytest

from entsso.estate.checks import Finding

pytestmark = pytest.mark.rehearsal


def _first_failure(items, where):  # type: ignore[no-untyped-def]
    bad = [r for r in items if not r.ok]
    return Finding("rehearsal", f"{bad[0].operation} on {where}", bad[0].detail,
                   "the operation to run and find the estate already so") if bad else None


def test_host_rehearsed_every_operation_of_the_change(rehearsed, sso_host, judge):
    mine = [r for r in rehearsed if r.host == sso_host]
    judge(_first_failure(mine, sso_host), [str(r) for r in mine])


def test_sql_server_rehearsed_every_statement_of_the_change(rehearsed, judge):
    mine = [r for r in rehearsed if r.host is None]
    judge(_first_failure(mine, "SQL Server"), [str(r) for r in mine])
