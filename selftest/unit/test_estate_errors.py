"""One root for everything an estate refuses (entsso.remote.errors.EstateError): a WinRM failure and a SQL
failure are both caught by it, each keeps its kind, its attributes and its message, and an exception of the
suite's own is not one."""
from __future__ import annotations

import pytest

from entsso.remote import errors, sql, winrm
from entsso.remote.errors import EstateError

REMOTE_KINDS = [errors.RemoteError, errors.HostUnreachable, errors.HostNotResolved, errors.CredentialsRefused,
                errors.OperationTimedOut, errors.CertificateRejected, errors.ScriptError, errors.BadOutput]
SQL_KINDS = [errors.SqlError, errors.SqlUnreachable, errors.SqlLoginFailed, errors.SqlPermissionDenied,
             errors.SqlUnknownObject, errors.SqlTimeout, errors.SqlCertificateUntrusted, errors.SqlKerberosFailed,
             errors.SqlCancelled, errors.SqlCertificateNameMismatch, errors.SqlStrictRefused]


@pytest.mark.parametrize("kind", REMOTE_KINDS + SQL_KINDS, ids=lambda k: k.__name__)
def test_every_remote_and_sql_error_is_an_estate_error_importable_where_it_was(kind):
    assert issubclass(kind, EstateError)
    home = winrm if kind in REMOTE_KINDS else sql
    assert getattr(home, kind.__name__) is kind  # callers' imports from winrm and sql keep working


def test_the_families_keep_their_own_relations_and_stay_apart():
    assert issubclass(errors.HostNotResolved, errors.HostUnreachable)
    assert all(issubclass(k, errors.RemoteError) for k in REMOTE_KINDS)
    assert all(issubclass(k, errors.SqlError) for k in SQL_KINDS)
    assert not any(issubclass(k, errors.SqlError) for k in REMOTE_KINDS)
    assert not any(issubclass(k, errors.RemoteError) for k in SQL_KINDS)


def test_a_winrm_failure_keeps_its_message_and_attributes_and_carries_its_advice():
    err = errors.ScriptError("NODE1", "Set-ServiceState", "the script failed (exit code 3): ENTSSO did not stop",
                             3, "ENTSSO did not stop")
    assert str(err) == "Set-ServiceState on NODE1: the script failed (exit code 3): ENTSSO did not stop"
    assert err.advice == str(err) and err.args == (str(err),)
    assert (err.host, err.operation, err.exit_code, err.error_text) == ("NODE1", "Set-ServiceState", 3,
                                                                        "ENTSSO did not stop")
    assert err.detail == "the script failed (exit code 3): ENTSSO did not stop" and err.kind == "script"
    cert = errors.CertificateRejected("NODE1", "Get-HostFacts", "expired", "expired")
    assert (cert.cause, cert.kind) == ("expired", "certificate")


def test_a_sql_failure_keeps_its_number_and_state_and_carries_its_advice():
    err = sql.classify("SQL01", "42S02", "[42S02] [FreeTDS][SQL Server]Invalid object name 'x'. (208) "
                       "(SQLExecDirectW)")
    assert isinstance(err, errors.SqlUnknownObject) and isinstance(err, EstateError)
    assert (err.number, err.sqlstate, err.kind) == (208, "42S02", "unknown object")
    assert err.advice == str(err) and str(err).startswith("SQL Server SQL01 — unknown object")


def test_one_except_tells_an_estate_failure_from_a_bug_of_the_suite():
    def caught(exc: Exception) -> bool:
        try:
            raise exc
        except EstateError:
            return True
        except Exception:  # noqa: BLE001 - what the suite would report as its own bug
            return False

    assert caught(errors.HostUnreachable("NODE1", "Get-HostFacts", "no answer"))
    assert caught(sql.classify("SQL01", "08001", "TCP Provider: Error code 0x2746 (10054)", connecting=True))
    assert not caught(KeyError("node"))
    assert not caught(RuntimeError("failed"))
