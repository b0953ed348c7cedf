"""A foreign client on a hand-started lab (issue 18): FreeTDS's own `tsql`, in another process, with a
freetds.conf written here as an operator would write one (none of the suite's code), connects to the lab's
SQL Server with TLS validated against the lab's CA and reads SSODB's secret server. So the lab's SQL
endpoint is TDS that a client we did not write accepts, not a protocol of our own."""
from __future__ import annotations

import shutil
import subprocess

import pytest
import yaml

pytestmark = pytest.mark.skipif(shutil.which("tsql") is None, reason="FreeTDS's tsql (freetds-bin) is not installed")


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
