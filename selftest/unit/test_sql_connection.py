"""The ODBC connection string the suite builds from the inventory, and the inventory's certificate and
Kerberos options: `sql.host_name_in_certificate` (ODBC Driver 18's HostnameInCertificate) and
`sql.server_spn` (ODBC's ServerSPN), each refused with one message naming the field and the fix, before
anything connects (keywords: Learn, "DSN and connection string keywords and attributes")."""
from __future__ import annotations

from pathlib import Path

import pytest

from entsso.inventory import InventoryError, load_inventory
from entsso.change.run import Options, build_run
from entsso.remote.sql import SqlSettings
from selftest.unit.test_inventory import doc_with, refused, write, DELETE  # noqa: F401 (fixture below)
from selftest.unit.test_inventory import secrets_env  # noqa: F401 - the inventory's variables set


def keywords(conn: str) -> dict[str, str]:
    return dict(part.split("=", 1) for part in conn.split(";"))


def test_default_connection_string_encrypts_validates_and_names_no_certificate_or_spn():
    k = keywords(SqlSettings(server="sql1.corp.example").connection_string("SSODB"))
    assert k["DRIVER"] == "{ODBC Driver 18 for SQL Server}" and k["SERVER"] == "sql1.corp.example"
    assert k["Encrypt"] == "yes" and k["TrustServerCertificate"] == "no" and k["Trusted_Connection"] == "yes"
    assert k["DATABASE"] == "SSODB"
    assert "HostnameInCertificate" not in k and "ServerSPN" not in k and "PWD" not in k


def test_certificate_name_and_spn_go_into_the_connection_string():
    s = SqlSettings(server="10.0.0.30", port=1433, host_name_in_certificate="sql1.corp.example",
                    server_spn="MSSQLSvc/sql1.corp.example:1433")
    k = keywords(s.connection_string())
    assert k["SERVER"] == "tcp:10.0.0.30,1433"
    assert k["HostnameInCertificate"] == "sql1.corp.example"
    assert k["ServerSPN"] == "MSSQLSvc/sql1.corp.example:1433"


def test_connection_string_refuses_what_the_driver_does_not_have():
    with pytest.raises(ValueError, match="ODBC Driver 18"):
        SqlSettings(server="s", driver="ODBC Driver 17 for SQL Server",
                    host_name_in_certificate="s.corp.example").connection_string()
    with pytest.raises(ValueError, match="FreeTDS"):
        SqlSettings(server="s", driver="FreeTDS", server_spn="MSSQLSvc/s.corp.example:1433").connection_string()
    with pytest.raises(ValueError, match="Kerberos"):
        SqlSettings(server="s", auth="sql", username="u", server_spn="MSSQLSvc/s:1433").connection_string()


def test_inventory_options_reach_the_runs_connection_string(tmp_path: Path):
    inv = load_inventory(write(tmp_path, doc_with(**{
        "sql.auth": "kerberos", "sql.username": DELETE, "sql.password_env": DELETE,
        "sql.server": "sqlalias.corp.example", "sql.host_name_in_certificate": "sql1.corp.example",
        "sql.server_spn": "MSSQLSvc/sql1.corp.example:1433"})))
    run = build_run("r1", tmp_path / "run", Options(), inv)
    try:
        k = keywords(run.sql.settings.connection_string("BizTalkMgmtDb"))
    finally:
        run.sql.close()
    assert k["SERVER"] == "sqlalias.corp.example"
    assert k["HostnameInCertificate"] == "sql1.corp.example" and k["ServerSPN"] == "MSSQLSvc/sql1.corp.example:1433"


@pytest.mark.parametrize("value", ["sql1.corp.example:1433", "*.corp.example", "SQL1\\SSO", "10.0.0.30", "a b"])
def test_a_certificate_name_that_is_not_a_host_name_is_refused(tmp_path: Path, value: str):
    message = refused(tmp_path, doc_with(**{"sql.host_name_in_certificate": value}))
    assert f"sql.host_name_in_certificate: {value!r} is not a host name" in message
    assert "the DNS name the certificate is issued to" in message


def test_a_certificate_name_needs_driver_18_and_a_checked_certificate(tmp_path: Path):
    message = refused(tmp_path, doc_with(**{"sql.host_name_in_certificate": "sql1.corp.example",
                                             "sql.driver": "ODBC Driver 17 for SQL Server"}))
    assert "sql.host_name_in_certificate: ODBC Driver 17 for SQL Server has no HostnameInCertificate" in message
    message = refused(tmp_path, doc_with(**{"sql.host_name_in_certificate": "sql1.corp.example",
                                             "sql.trust_server_certificate": True}))
    assert "sql.host_name_in_certificate: has no effect with `trust_server_certificate: true`" in message


@pytest.mark.parametrize("value", ["sql1.corp.example", "HTTP/sql1.corp.example", "MSSQLSvc/sql1:1433;PWD=x",
                                   "MSSQLSvc/"])
def test_an_spn_that_is_not_a_sql_server_spn_is_refused(tmp_path: Path, value: str):
    message = refused(tmp_path, doc_with(**{"sql.auth": "kerberos", "sql.username": DELETE,
                                             "sql.password_env": DELETE, "sql.server_spn": value}))
    assert f"sql.server_spn: {value!r} is not a SQL Server SPN; write MSSQLSvc/<fully qualified name>:<port>" in message


def test_an_spn_with_a_sql_login_or_freetds_is_refused(tmp_path: Path):
    message = refused(tmp_path, doc_with(**{"sql.server_spn": "MSSQLSvc/sql1.corp.example:1433"}))
    assert "sql.server_spn: is for Kerberos only" in message
    message = refused(tmp_path, doc_with(**{"sql.auth": "kerberos", "sql.username": DELETE, "sql.password_env": DELETE,
                                             "sql.driver": "FreeTDS", "sql.server_spn": "MSSQLSvc/sql1.corp.example"}))
    assert "sql.server_spn: FreeTDS has no ServerSPN" in message


def test_every_bad_option_is_one_message_before_anything_connects(tmp_path: Path):
    with pytest.raises(InventoryError) as info:
        load_inventory(write(tmp_path, doc_with(**{"sql.host_name_in_certificate": "bad name",
                                                   "sql.server_spn": "nope"})))
    message = str(info.value)
    assert "2 problems" in message
    assert "sql.host_name_in_certificate" in message and "sql.server_spn" in message
