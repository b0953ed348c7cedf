"""A foreign client on a hand-started lab (issue 18): FreeTDS's own `tsql`, in another process, with a
freetds.conf written here as an operator would write one (none of the suite's code), connects to the lab's
SQL Server with TLS validated against the lab's CA and reads SSODB's secret server. So the lab's SQL
endpoint is TDS that a client we did not write accepts, not a protocol of our own. Microsoft's JavaScript
driver tedious and python-tds make issue 27's checks the same way (TLS, SELECT, RPC with parameters, errors,
return status, info numbers, cancel, the engine's T-SQL)."""
from __future__ import annotations

import json
import shutil
import subprocess

import pytest
import yaml

needs_tsql = pytest.mark.skipif(shutil.which("tsql") is None, reason="FreeTDS's tsql (freetds-bin) is not installed")


def _conf(tmp_path, inv, ca_file):  # type: ignore[no-untyped-def]
    lab = inv["lab"]
    path = tmp_path / "freetds.conf"
    path.write_text("[lab]\n"
                    f"\thost = {lab['sql_address']}\n\tport = {lab['sql_port']}\n\ttds version = 7.4\n"
                    f"\tencryption = require\n\tca file = {ca_file}\n", encoding="utf-8")
    return path


def _tsql(conf, password, sql):  # type: ignore[no-untyped-def]
    return subprocess.run(["tsql", "-S", "lab", "-U", "entsso", "-P", password, "-D", "SSODB"],
                          input=f"{sql}\ngo\nexit\n", capture_output=True, text=True, timeout=30,
                          env={"FREETDSCONF": str(conf), "PATH": "/usr/bin:/bin"})


@needs_tsql
def test_tsql_reads_the_secret_server_from_a_hand_started_lab(start_lab, tmp_path):
    lab = start_lab("fast")
    inv = yaml.safe_load(lab.inventory_path.read_text())
    password = lab.env["ENTSSO_SQL_PASSWORD"]
    proc = _tsql(_conf(tmp_path, inv, inv["sql"]["ca_file"]), password,
                 "SELECT gi_SecretServer FROM SSODB.dbo.SSOX_GlobalInfo")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SSOCLUSTER" in proc.stdout, proc.stdout + proc.stderr
    assert password not in proc.stdout + proc.stderr

    # the same client against a CA that did not issue the lab's certificate: the TLS handshake fails
    from entsso.lab.pki import LabCA

    other = LabCA("someone else's CA")
    try:
        refused = _tsql(_conf(tmp_path, inv, other.ca_path), password, "SELECT 1")
    finally:
        other.cleanup()
    assert "SSOCLUSTER" not in refused.stdout and refused.returncode != 0, refused.stdout + refused.stderr
    assert "Adaptive Server connection failed" in refused.stdout + refused.stderr  # FreeTDS's 20002


# ------------------------------------------------------------------------------------------ tedious, python-tds
# Issue 27 item 6: Microsoft's JavaScript TDS driver and python-tds on a hand-started lab, every check of the
# issue answered as SQL Server answers it (the lab's SQL Server named in its inventory, as an operator would
# point a client at it).

JOB = "Monitor BizTalk Server (BizTalkMgmtDb)"
# (statement, SQL Server's error number, or None and the rows it returns)
STATEMENTS = [
    ("SELECT name FROM msdb.dbo.sysjobs WHERE enabled = 'yes'", 245, None),
    ("SELECT name, COUNT(*) AS n FROM msdb.dbo.sysjobs", 8120, None),
    (f"EXEC msdb.dbo.sp_update_job @job_name = N'{JOB}', @enabledd = 1", 8145, None),
    # the login neither owns the job (sa does) nor is sysadmin; SQLAgentOperatorRole may change @enabled only
    (f"EXEC msdb.dbo.sp_update_job @job_name = N'{JOB}', @description = N'changed'", 14525, None),
    ("INSERT INTO msdb.dbo.sysjobs (name) VALUES ('x')", 229, None),
    ("IF DB_NAME() = N'SSODB' SELECT 'here' AS a ELSE SELECT 'elsewhere' AS a", None, [["here"]]),
    ("SELECT LEFT(@@VERSION, 34) AS v", None, [["Microsoft SQL Server 2022 (RTM) - "]]),
]


def _server(lab):  # type: ignore[no-untyped-def]
    from selftest.foreign.clients import Server

    inv = yaml.safe_load(lab.inventory_path.read_text())
    return Server(inv["lab"]["sql_address"], int(inv["lab"]["sql_port"]), inv["sql"]["server"],
                  inv["sql"]["username"], lab.env["ENTSSO_SQL_PASSWORD"], inv["sql"]["ca_file"])


def test_tedious_on_a_hand_started_lab_sees_sql_server(start_lab):
    from entsso.lab.pki import LabCA
    from selftest.foreign.clients import tedious, tedious_missing

    if tedious_missing():
        pytest.skip(str(tedious_missing()))
    server = _server(start_lab("fast"))
    other = LabCA("someone else's CA")
    try:
        seen = tedious(server, ["login", "select", "rpc_params", "error_208", "error_207", "applock", "start_job",
                                "cancel", "statements", "bad_login", "other_ca"],
                       job=JOB, other_ca=str(other.ca_path), statements=[s for s, _n, _r in STATEMENTS])
    finally:
        other.cleanup()
    assert [(i["number"], i["class"]) for i in seen["login"]["infos"]] == [(5701, 0), (5703, 0)], seen["login"]
    assert seen["select"]["rows"] == [["SSOCLUSTER"]], seen["select"]
    assert seen["rpc_params"]["rows"] == [[42, "tedious"]], seen["rpc_params"]
    for key, number in (("error_208", 208), ("error_207", 207)):
        err = seen[key]["error"]
        assert (err["number"], err["state"], err["class"]) == (number, 1, 16), seen[key]
    lock = seen["applock"]
    assert (lock["first"]["returnStatuses"], lock["second"]["returnStatuses"]) == ([0], [-1]), lock
    assert [(i["number"], i["class"]) for i in seen["start_job"]["infos"]] == [(14243, 0)], seen["start_job"]
    cancel = seen["cancel"]
    assert cancel["error"]["code"] == "ECANCEL" and cancel["ms"] < 3000 and cancel["after"]["rows"] == [[1]], cancel
    for (sql, number, rows), got in zip(STATEMENTS, seen["statements"], strict=True):
        if number is None:
            assert got["error"] is None and got["rows"] == rows, (sql, got)
        else:
            assert got["error"] is not None and got["error"]["number"] == number, (sql, got)
    assert [(t["number"], t["state"], t["class"]) for t in seen["bad_login"]["tokens"]] == [(18456, 1, 14)]
    assert seen["bad_login"]["code"] == "ELOGIN"
    assert seen["other_ca"] is not None and seen["other_ca"]["code"] == "ESOCKET", seen["other_ca"]
    assert server.password not in json.dumps(seen)


def test_python_tds_on_a_hand_started_lab_sees_sql_server(start_lab):
    pytds = pytest.importorskip("pytds", reason="python-tds is not installed (pip install -e '.[test]')")
    from entsso.lab.pki import LabCA
    from selftest.foreign.clients import pytds_connect

    server = _server(start_lab("fast"))
    with pytds_connect(server) as one, pytds_connect(server, timeout=1) as two:
        cur = one.cursor()
        cur.execute("SELECT gi_SecretServer FROM SSODB.dbo.SSOX_GlobalInfo WHERE gi_SecretServer = %s", ("SSOCLUSTER",))
        assert cur.fetchall() == [("SSOCLUSTER",)]
        for sql, number in (("SELECT * FROM SSODB.dbo.NoSuchTable", 208),
                            ("SELECT no_such_column FROM SSODB.dbo.SSOX_GlobalInfo", 207)):
            with pytest.raises(pytds.Error) as err:
                cur.execute(sql)
            assert (err.value.msg_no, err.value.state, err.value.severity) == (number, 1, 16)
        lock = {"@Resource": "pytds-probe", "@LockMode": "Exclusive", "@LockOwner": "Session", "@LockTimeout": 0}
        cur.callproc("sp_getapplock", lock)
        assert cur.get_proc_return_status() == 0
        other = two.cursor()
        other.callproc("sp_getapplock", lock)
        assert other.get_proc_return_status() == -1
        cur.callproc("msdb.dbo.sp_start_job", {"@job_name": JOB})
        assert [(m.msg_no, m.severity) for _cls, m in cur.messages] == [(14243, 0)]
        for sql, number, rows in STATEMENTS:
            if number is None:
                cur.execute(sql)
                assert [list(r) for r in cur.fetchall()] == rows, sql
            else:
                with pytest.raises(pytds.Error) as err:
                    cur.execute(sql)
                assert err.value.msg_no == number, (sql, err.value)
        with pytest.raises(pytds.TimeoutError):  # the query timeout; the next request cancels it first
            other.execute("WAITFOR DELAY '01:00:00'")
        other.execute("SELECT 1 AS one")
        assert other.fetchall() == [(1,)]
    with pytest.raises(pytds.OperationalError) as err:
        pytds_connect(server, password="not-the-password")
    assert (err.value.msg_no, err.value.state, err.value.severity) == (18456, 1, 14)
    stranger = LabCA("someone else's CA")
    try:
        with pytest.raises(Exception) as refused:  # pyOpenSSL's certificate verify failed
            pytds_connect(server, ca_file=str(stranger.ca_path))
    finally:
        stranger.cleanup()
    assert "certificate verify failed" in repr(refused.value), repr(refused.value)
