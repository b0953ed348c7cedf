"""What an ODBC driver's failure means: `classify` reads SQLSTATE and the driver's text (FreeTDS, Microsoft's
ODBC Driver 17/18: the texts under selftest/transcripts/odbc18) into one named kind of entsso.remote.errors,
each with what to do."""
from __future__ import annotations

import re
from typing import TypedDict

from entsso.remote.errors import (SqlCancelled, SqlCertificateNameMismatch, SqlCertificateUntrusted, SqlError,
                                  SqlKerberosFailed, SqlLoginFailed, SqlPermissionDenied, SqlStrictRefused, SqlTimeout,
                                  SqlUnknownObject, SqlUnreachable)


class _Codes(TypedDict):
    """What every classified SqlError carries besides its message (SqlError's keyword arguments)."""

    number: int | None
    sqlstate: str | None


# Texts the drivers print (docs/domain-notes.md, "SQL failures by kind", cites each): ODBC Driver 17/18's
# "SSL Provider: [error:…certificate verify failed:self signed certificate]" and, on Windows, "The
# certificate chain was issued by an authority that is not trusted"; "SSPI Provider: No Kerberos
# credentials available", "Server not found in Kerberos database", "Cannot generate SSPI context"; GSSAPI
# texts from FreeTDS and other clients.
_CERTIFICATE = re.compile(r"(?i)SSL Provider|certificate verify failed|self[- ]signed certificate|"
                          r"certificate chain was issued by an authority that is not trusted|"
                          r"unable to get local issuer certificate|certificate.*(?:not trusted|name.*mismatch)")
# the name check's texts: ODBC Driver 18 on Linux (OpenSSL 3, selftest/transcripts/odbc18/name-mismatch.txt);
# on Windows (Schannel) "The target principal name is incorrect" after "SSL Provider:" (UNCONFIRMED here)
_NAME_MISMATCH = re.compile(r"(?i)subject name does not match host name|hostname mismatch|"
                            r"SSL Provider:.*target principal name is incorrect")
# Encrypt=strict against a server without TDS 8.0: it takes the ClientHello for a broken PRELOGIN and resets
# the connection (selftest/transcripts/odbc18/strict-refused.txt)
_RESET = re.compile(r"TCP Provider: Error code 0x2746|\(10054\)")
_KERBEROS = re.compile(r"(?i)SSPI|GSSAPI|Kerberos|krb5|target principal name is incorrect")
_DENIED = re.compile(r"The (\w+) permission was denied on the object '([^']+)', database '([^']+)', "
                     r"schema '([^']+)'")
# FreeTDS 1.3's ODBC_SAFE_ERROR (src/odbc/odbc.c): a failed call with no diagnostic of its own, as when the
# connection is reset under a statement (its "08S01" comes only on the next call)
_FREETDS_LOST = re.compile(r"\[FreeTDS\].*Unknown error \(0\)")
_NUMBER = re.compile(r"\((-?\d+)\) \(SQL")
PERMISSION_NUMBERS = (229, 230, 262, 297, 300)


def classify(server: str, sqlstate: str | None, text: str, *, connecting: bool = False,
             login: str | None = None, strict: bool = False) -> SqlError:
    """The SqlError of the right kind for a driver's (SQLSTATE, message), by SQLSTATE, the server's error
    number and, where the driver gives no number (TLS, Kerberos), its text. `text` has no secret in it;
    `strict`: the connection asked for Encrypt=strict (TDS 8.0)."""
    m = _NUMBER.search(text)
    number = int(m.group(1)) if m else None
    who = f"[{login}]" if login else "the run's login"
    kw = _Codes(number=number, sqlstate=sqlstate)
    head = f"SQL Server {server}"
    if _NAME_MISMATCH.search(text):
        return SqlCertificateNameMismatch(
            f"{head} — certificate name mismatch: SQL Server's certificate is from a trusted CA but carries another "
            f"name than the one the suite connects to ({text}). Set sql.host_name_in_certificate to the name the "
            "certificate carries (ODBC Driver 18's HostnameInCertificate; `openssl x509 -noout -subject -ext "
            "subjectAltName` on the certificate names it), or sql.server to that name, or have SQL Server's "
            "certificate reissued for the name the suite uses. Nothing was changed.", **kw)
    if _CERTIFICATE.search(text):
        return SqlCertificateUntrusted(
            f"{head} — certificate not trusted: the ODBC driver refused the server's TLS certificate ({text}). "
            "ODBC Driver 18 validates it whenever it encrypts. If the certificate is issued to another name than "
            "the one the suite connects to (an alias, a listener, an IP address), set sql.host_name_in_certificate "
            "to the name it carries (ODBC's HostnameInCertificate, Driver 18), or sql.server to that name; if it "
            "is self-signed or from a private CA, name that CA's PEM in sql.ca_file (this run then trusts it "
            "besides the machine's trust; on Windows import it into the machine's Root store instead). "
            "TrustServerCertificate=yes (sql.trust_server_certificate: true) skips the check: only on a network "
            "you trust.", **kw)
    if _KERBEROS.search(text):
        return SqlKerberosFailed(
            f"{head} — Kerberos: Trusted_Connection could not authenticate ({text}). Check this machine's "
            "ticket with klist (kinit if there is none or it has expired: a long change needs a ticket that "
            "outlives it), and that the SQL Server's service account has the SPN MSSQLSvc/<fully qualified "
            "name>:<port> for exactly the name the inventory uses (setspn -L <account>): a short name, an "
            "alias or an IP address has none — set sql.server to the fully qualified name, or name the SPN the "
            "account has in sql.server_spn (ODBC's ServerSPN). Or use a SQL login (sql.auth: sql).", **kw)
    if sqlstate == "28000" or number in (18456, 18452, 4060):
        hint = ("the database is missing or the login has no user in it: create the user (docs/inventory.md, "
                "minimum grants)" if number == 4060 else
                "check the SQL login's user name and its password environment variable, that the login is "
                "enabled and SQL Server accepts SQL logins (mixed mode), or the Kerberos ticket (klist) for "
                "Trusted_Connection; the server's error log names the reason (the state of error 18456)")
        return SqlLoginFailed(f"{head} — login failed: {text}. {hint}.", **kw)
    if number in PERMISSION_NUMBERS or "permission was denied" in text or "permission denied" in text.lower():
        d = _DENIED.search(text)
        fix = (f"GRANT {d.group(1)} ON {d.group(3)}.{d.group(4)}.{d.group(2)} TO {who}" if d else
               f"grant {who} the permission")
        return SqlPermissionDenied(
            f"{head} — permission denied: {text}. The login lacks a grant the run needs: {fix} (or add it to "
            "the role that carries it); docs/inventory.md lists the minimum grants.", **kw)
    if number == 208 or sqlstate == "42S02":
        return SqlUnknownObject(
            f"{head} — unknown object: {text}. The object does not exist in that database, or the login may "
            "not see it (SQL Server answers 208 for both): check the inventory's database names and the "
            "BizTalk version's schema.", **kw)
    if sqlstate in ("HYT00", "HYT01") and not connecting and "login timeout" not in text.lower():
        return SqlTimeout(
            f"{head} — timeout: a statement did not finish within the query timeout ({text}). Something "
            "blocks it (sys.dm_exec_requests' blocking_session_id names the session) or the server is "
            "overloaded; re-run once it answers.", **kw)
    if sqlstate == "HY008":
        return SqlCancelled(
            f"{head} — cancelled: the statement was cancelled before it finished ({text}); what it was doing "
            "may or may not have happened: the step's own check says which. Re-run the step.", **kw)
    if sqlstate == "HY000" and _FREETDS_LOST.search(text):
        return SqlUnreachable(
            f"{head} — unreachable: the connection broke during the statement ({text}: FreeTDS's text for a "
            "statement that failed without a server error, as when the server resets the connection). Check "
            "that SQL Server runs (a restart or failover ends every session) and the network; re-run once it "
            "answers.", **kw)
    if strict and connecting and _RESET.search(text):
        return SqlStrictRefused(
            f"{head} — strict encryption refused: with `encrypt: strict` (TDS 8.0: TLS before anything of TDS) "
            f"the server reset the connection at the driver's first TLS bytes ({text}). SQL Server before 2022 "
            "(and one whose port is not SQL Server's own) does not speak TDS 8.0: set `sql.encrypt: true` (TLS "
            "inside TDS, validated all the same by ODBC Driver 18), or upgrade SQL Server to 2022. If it is SQL "
            "Server 2022, check the port and that nothing between resets TLS. Nothing was changed.", **kw)
    if connecting or (sqlstate or "").startswith("08") or sqlstate in ("HYT00", "HYT01"):
        return SqlUnreachable(
            f"{head} — unreachable: could not be reached ({text}). Check the server name, instance or port, "
            "that SQL Server runs and listens on TCP, the firewall, and the ODBC driver in the inventory.", **kw)
    return SqlError(f"{head}: {text}", **kw)
