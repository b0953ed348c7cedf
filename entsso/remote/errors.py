"""Everything an estate refuses or fails at, as the suite reports it: one root, `EstateError`, with a branch
per way of reaching the estate (`RemoteError`: a host over WinRM; `SqlError`: a SQL Server over ODBC).

An `EstateError` is the estate's answer, told to the operator; any other exception is a bug in the suite.
Each subclass names one kind of failure (`kind`); `advice` is the message: what failed, where, and what to do.
winrm.py and sql.py raise these (and re-export them); their `classify` functions pick the kind.
"""
from __future__ import annotations

from typing import ClassVar


class EstateError(Exception):
    """The estate refused or failed at something the suite asked. `kind` says how; `advice` (the message)
    says what failed and what to do."""

    kind: ClassVar[str] = "estate"

    def __init__(self, advice: str) -> None:
        super().__init__(advice)
        self.advice = advice


# --- a host over WinRM (entsso.remote.winrm) ------------------------------------------------------------
class RemoteError(EstateError):
    """A remote operation failed. `kind` says how; the message says what to do."""

    kind = "remote"

    def __init__(self, host: str, operation: str, message: str) -> None:
        super().__init__(f"{operation} on {host}: {message}")
        self.host = host
        self.operation = operation
        self.detail = message


class HostUnreachable(RemoteError):
    kind = "unreachable"


class HostNotResolved(HostUnreachable):
    """The host's name has no address (DNS): nothing was sent; the inventory or this machine's DNS is wrong."""

    kind = "dns"


class CredentialsRefused(RemoteError):
    kind = "credentials"


class OperationTimedOut(RemoteError):
    kind = "timeout"


class CertificateRejected(RemoteError):
    """The host's HTTPS certificate failed validation (another CA, another name, expired) or TLS itself
    failed: nothing was sent to the host. `cause` is untrusted, name_mismatch, expired, not_yet_valid,
    ca_file or tls."""

    kind = "certificate"

    def __init__(self, host: str, operation: str, message: str, cause: str) -> None:
        super().__init__(host, operation, message)
        self.cause = cause


class ScriptError(RemoteError):
    kind = "script"

    def __init__(self, host: str, operation: str, message: str, exit_code: int, error_text: str) -> None:
        super().__init__(host, operation, message)
        self.exit_code = exit_code
        self.error_text = error_text


class BadOutput(RemoteError):
    kind = "output"


# --- a SQL Server over ODBC (entsso.remote.sql) -----------------------------------------------------------
class SqlError(EstateError):
    """A statement or connection failed; the message names the server, the kind of failure and the fix."""

    kind = "error"

    def __init__(self, message: str, *, number: int | None = None, sqlstate: str | None = None) -> None:
        super().__init__(message)
        self.number = number
        self.sqlstate = sqlstate


class SqlUnreachable(SqlError):
    kind = "unreachable"


class SqlLoginFailed(SqlError):
    kind = "login failed"


class SqlPermissionDenied(SqlError):
    kind = "permission denied"


class SqlUnknownObject(SqlError):
    kind = "unknown object"


class SqlTimeout(SqlError):
    kind = "timeout"


class SqlCertificateUntrusted(SqlError):
    kind = "certificate not trusted"


class SqlCertificateNameMismatch(SqlCertificateUntrusted):
    """The certificate is from a trusted CA but names another host than the one connected to."""

    kind = "certificate name mismatch"


class SqlStrictRefused(SqlUnreachable):
    """Encrypt=strict (TDS 8.0: TLS before anything of TDS) and the server reset the connection at its TLS."""

    kind = "strict encryption refused"


class SqlKerberosFailed(SqlError):
    kind = "Kerberos"


class SqlCancelled(SqlError):
    kind = "cancelled"
