"""Every SQL failure named for what it is: entsso.remote.sql.classify on the (SQLSTATE, text) pairs pyodbc gives
for real driver and server errors (each case's source is in docs/domain-notes.md, "SQL failures by kind"),
and the operator's message: the server, the kind, the fix."""
from __future__ import annotations

import pytest

from entsso.remote import sql
from entsso.remote.sql import classify

D18 = "[Microsoft][ODBC Driver 18 for SQL Server]"
D17 = "[Microsoft][ODBC Driver 17 for SQL Server]"

# (case, sqlstate, pyodbc's text, connecting, expected class, words the message must carry)
CASES = [
    ("login-failed-18456", "28000",
     f"[28000] {D17}[SQL Server]Login failed for user 'JDNET\\\\APC0321'. (18456) (SQLDriverConnect)", True,
     sql.SqlLoginFailed, ["login failed", "password environment variable", "18456"]),
    ("permission-select-sysjobs-229", "42000",
     f"[42000] {D18}[SQL Server]The SELECT permission was denied on the object 'sysjobs', database 'msdb', "
     "schema 'dbo'. (229) (SQLExecDirectW)", False,
     sql.SqlPermissionDenied, ["permission denied", "GRANT SELECT ON msdb.dbo.sysjobs TO [entsso]",
                               "docs/inventory.md"]),
    ("permission-execute-sp_update_job-229", "42000",
     f"[42000] {D18}[SQL Server]The EXECUTE permission was denied on the object 'sp_update_job', database "
     "'msdb', schema 'dbo'. (229) (SQLExecDirectW)", False,
     sql.SqlPermissionDenied, ["GRANT EXECUTE ON msdb.dbo.sp_update_job TO [entsso]"]),
    ("permission-denied-while-connecting-is-not-unreachable", "42000",
     f"[42000] {D18}[SQL Server]The SELECT permission was denied on the object 'SSOX_GlobalInfo', database "
     "'SSODB', schema 'dbo'. (229) (SQLExecDirectW)", True,
     sql.SqlPermissionDenied, ["GRANT SELECT ON SSODB.dbo.SSOX_GlobalInfo"]),
    ("unknown-object-208", "42S02",
     f"[42S02] {D18}[SQL Server]Invalid object name 'BizTalkMgmtDb.dbo.adm_ForceFullBackup'. (208) "
     "(SQLExecDirectW)", False,
     sql.SqlUnknownObject, ["unknown object", "database names", "adm_ForceFullBackup"]),
    ("query-timeout-HYT00", "HYT00", f"[HYT00] {D17}Query timeout expired (0) (SQLExecDirectW)", False,
     sql.SqlTimeout, ["timeout", "blocking_session_id"]),
    ("login-timeout-HYT00-dead-port", "HYT00", f"[HYT00] {D18}Login timeout expired (0) (SQLDriverConnect)", True,
     sql.SqlUnreachable, ["unreachable", "firewall"]),
    ("tcp-08001", "08001",
     f"[08001] {D17}TCP Provider: Error code 0x2746 (10054) (SQLDriverConnect)", True,
     sql.SqlUnreachable, ["unreachable"]),
    ("freetds-08S01", "08S01",
     "[08S01] [FreeTDS][SQL Server]Unable to connect: Adaptive Server is unavailable or does not exist "
     "(20009) (SQLDriverConnect)", True, sql.SqlUnreachable, ["unreachable"]),
    ("certificate-self-signed-driver18-openssl1", "08001",
     f"[08001] {D18}SSL Provider: [error:1416F086:SSL routines:tls_process_server_certificate:certificate "
     "verify failed:self signed certificate] (-1) (SQLDriverConnect)", True,
     sql.SqlCertificateUntrusted, ["certificate not trusted", "sql.host_name_in_certificate", "HostnameInCertificate",
                                   "TrustServerCertificate"]),
    ("certificate-self-signed-driver18-openssl3", "08001",
     f"[08001] {D18}SSL Provider: [error:0A000086:SSL routines::certificate verify failed:self-signed "
     "certificate] (-1) (SQLDriverConnect)", True, sql.SqlCertificateUntrusted, ["HostnameInCertificate"]),
    ("certificate-private-ca", "08001",
     f"[08001] {D17}SSL Provider: [error:1416F086:SSL routines:tls_process_server_certificate:certificate "
     "verify failed:unable to get local issuer certificate] (-1) (SQLDriverConnect)", True,
     sql.SqlCertificateUntrusted, ["sql.ca_file", "Root store"]),
    ("certificate-chain-windows", "08001",
     f"[08001] {D18}SSL Provider: The certificate chain was issued by an authority that is not trusted.\r\n "
     "(-2146893019) (SQLDriverConnect)", True, sql.SqlCertificateUntrusted, ["TrustServerCertificate"]),
    # ODBC Driver 18's own texts, as captured against the lab (selftest/transcripts/odbc18/)
    ("driver18-name-mismatch", "08001",
     f"[08001] {D18}SSL Provider: [error:0A000086:SSL routines::certificate verify failed:subject name does not "
     "match host name] (-1) (SQLDriverConnect)", True, sql.SqlCertificateNameMismatch,
     ["certificate name mismatch", "sql.host_name_in_certificate", "Nothing was changed"]),
    ("driver18-untrusted-chain", "08001",
     f"[08001] {D18}SSL Provider: [error:0A000086:SSL routines::certificate verify failed:self-signed certificate "
     "in certificate chain] (-1) (SQLDriverConnect)", True, sql.SqlCertificateUntrusted, ["sql.ca_file"]),
    ("kerberos-no-ticket", "HY000",
     f"[HY000] {D17}SSPI Provider: No Kerberos credentials available (default cache: KEYRING:persistent:0) "
     "(851968) (SQLDriverConnect)", True, sql.SqlKerberosFailed, ["Kerberos", "klist", "kinit"]),
    ("kerberos-no-spn", "HY000",
     f"[HY000] {D17}SSPI Provider: Server not found in Kerberos database (851968) (SQLDriverConnect)", True,
     sql.SqlKerberosFailed, ["MSSQLSvc/", "setspn -L", "sql.server_spn"]),
    ("kerberos-cannot-generate-sspi-context", "HY000",
     f"[HY000] {D17}Cannot generate SSPI context (0) (SQLDriverConnect)", True, sql.SqlKerberosFailed, ["SPN"]),
    ("kerberos-gssapi-freetds", "08001",
     "[08001] [FreeTDS][SQL Server]GSSAPI operation failed with error - Unspecified GSS failure. Minor code may "
     "provide more information (Server not found in Kerberos database) (0) (SQLDriverConnect)", True,
     sql.SqlKerberosFailed, ["Kerberos"]),
]


@pytest.mark.parametrize("case, sqlstate, text, connecting, kind, words", CASES, ids=[c[0] for c in CASES])
def test_sql_failure_is_named_for_what_it_is(case, sqlstate, text, connecting, kind, words):
    err = classify("SQL01", sqlstate, text, connecting=connecting, login="entsso")
    assert type(err) is kind
    message = str(err)
    assert message.startswith(f"SQL Server SQL01 — {kind.kind}")
    for word in words:
        assert word in message, f"{case}: {word!r} not in {message!r}"


def test_every_kind_has_its_own_name():
    kinds = [sql.SqlUnreachable, sql.SqlLoginFailed, sql.SqlPermissionDenied, sql.SqlUnknownObject,
             sql.SqlTimeout, sql.SqlCertificateUntrusted, sql.SqlKerberosFailed, sql.SqlCertificateNameMismatch,
             sql.SqlStrictRefused]
    assert len({k.kind for k in kinds}) == len(kinds)
    assert all(issubclass(k, sql.SqlError) for k in kinds)


def test_permission_denied_is_never_called_unreachable():
    err = classify("SQL01", "42000", f"[42000] {D18}[SQL Server]The EXECUTE permission was denied on the object "
                   "'sp_start_job', database 'msdb', schema 'dbo'. (229) (SQLExecDirectW)", connecting=True)
    assert not isinstance(err, sql.SqlUnreachable) and "could not be reached" not in str(err)
    assert err.number == 229 and "the run's login" in str(err)


def test_the_password_is_in_no_classified_message():
    class Secret:
        def get_secret_value(self) -> str:
            return "S3cret;pw"

    server = sql.SqlServer(sql.SqlSettings(server="SQL01", auth="sql", username="entsso"), Secret())
    exc = Exception("28000", f"[28000] {D18}[SQL Server]Login failed for user 'entsso' S3cret;pw. (18456) "
                             "(SQLDriverConnect)")
    err = server._classify(exc, connecting=True)
    assert isinstance(err, sql.SqlLoginFailed) and "S3cret;pw" not in str(err) and "***" in str(err)


def _snapshot(**sql_facts):  # type: ignore[no-untyped-def]
    from datetime import datetime

    from entsso.estate.snapshot import Snapshot, SqlFacts

    return Snapshot(taken_at=datetime(2026, 12, 2, 5, 0), hosts={}, sql=SqlFacts(**sql_facts))


def test_gate_shows_the_kind_of_sql_failure():
    from entsso.estate import checks as gate

    err = classify("SQL01", "42000", f"[42000] {D18}[SQL Server]The SELECT permission was denied on the object "
                   "'sysjobs', database 'msdb', schema 'dbo'. (229) (SQLExecDirectW)", login="entsso")
    finding = gate.sql_reachable(_snapshot(reachable=False, error=str(err), error_kind=err.kind))
    assert "SQL Server SQL01 — permission denied" in str(finding)
    assert "GRANT SELECT ON msdb.dbo.sysjobs TO [entsso]" in str(finding)


def test_gate_names_each_missing_grant_and_its_fix():
    from entsso.estate import checks as gate
    from entsso.domain.permissions import Grant

    lacking = [Grant("EXECUTE", "msdb.dbo.sp_update_job", False), Grant("SELECT", "msdb.dbo.syssessions", None)]
    finding = gate.sql_grants(_snapshot(reachable=True, missing_grants=lacking), "entsso")
    assert finding is not None and finding.subject == "SQL Server login entsso"
    assert finding.found == "no EXECUTE on msdb.dbo.sp_update_job, no SELECT on msdb.dbo.syssessions"
    assert "GRANT EXECUTE ON msdb.dbo.sp_update_job TO [entsso]; GRANT SELECT ON msdb.dbo.syssessions" \
        in finding.expected
    assert gate.sql_grants(_snapshot(reachable=True, missing_grants=[]), "entsso") is None


def test_a_reset_at_tls_is_strict_refused_only_for_a_strict_connection():
    text = f"[08001] {D18}TCP Provider: Error code 0x2746 (10054) (SQLDriverConnect)"
    strict = classify("SQL01", "08001", text, connecting=True, strict=True)
    assert type(strict) is sql.SqlStrictRefused and "sql.encrypt: true" in str(strict)
    assert type(classify("SQL01", "08001", text, connecting=True)) is sql.SqlUnreachable
