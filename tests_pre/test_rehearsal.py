"""The rehearsal: each host ran every operation the change will run on it, and SQL Server every statement,
in a form that changed nothing (what cannot be rehearsed is listed in the report and summary.json)."""
import pytest

from entsso.estate import checks as gate

pytestmark = pytest.mark.rehearsal


def test_host_rehearsed_every_operation_of_the_change(rehearsed, sso_host, judge):
    mine = [r for r in rehearsed if r.host == sso_host]
    judge(gate.rehearsed(mine, sso_host), [str(r) for r in mine])


def test_sql_server_rehearsed_every_statement_of_the_change(rehearsed, judge):
    mine = [r for r in rehearsed if r.host is None]
    judge(gate.rehearsed(mine, "SQL Server"), [str(r) for r in mine])
