"""What the SSO tools print, as the lab prints it: the published forms kept in selftest/transcripts
(selftest/lab/test_texts.py renders each template with a transcript's values and compares the bytes).
Windows console tools end lines with CRLF; the lab does too."""
from __future__ import annotations

CRLF = "\r\n"
# selftest/transcripts/ssomanage/displaydb-local-cpr-2008.txt and displaydb-remote-*.txt
USING_LOCAL = "Using SSO server on this computer"
USING_REMOTE = "Using SSO server : {server}"
# the whole published form (CPR 2008), every line after the server line: the settings the suite reads, then
# the administrators' groups, the audit sizes, the timeouts, the "Global flags -" and "Password Sync -"
# sections and the closing rule, with the published sample's values
DISPLAYDB = CRLF.join([
    "SQL Server : {sql_server}",
    "SSO database : {database}",
    "SSO secret server name : {secret_server}",
    "SSO Admin account : SSO Administrators",
    "SSO Affiliate Admin account : SSO Affiliate Administrators",
    "Size of audit table for deleted ... : 1000",
    "Size of audit table for deleted ... : 1000",
    "Size of audit table for external... : 1000",
    "Ticket timeout (in minutes) : 2",
    "Credential cache timeout (in min... : 60",
    "Global flags -",
    "SSO enabled : Yes",
    "Tickets allowed : No",
    "Allow host initiated SSO : No",
    "Password Sync -",
    "From Windows to adapters : No",
    "From adapters to SSO database (p... : No",
    "From adapters to Windows (full) : No",
    "-" * 70,
]) + CRLF
ERROR = "ERROR: {code} : {message}\r\n"
# displaydb-remote-rpc-unavailable.txt: no ENTSSO answers as the server the tools use
COULD_NOT_CONTACT = ("0xC0002A0F", "Could not contact the SSO server '{server}'. Check that SSO is configured and "
                     "that the SSO service is running on that server. (RPC: 0x800706BA: The RPC server is "
                     "unavailable.)")
# The second hop: a tool whose SSO server is another machine calls it over RPC as the WinRM logon, which over
# NTLM has no credentials to present there: the remote SSO service sees an anonymous caller and refuses it.
# Composed (UNCONFIRMED, docs/domain-notes.md): the published "Could not contact" form with the RPC status of
# a refused caller, E_ACCESSDENIED's Windows text.
SECOND_HOP = ("0xC0002A0F", "Could not contact the SSO server '{server}'. Check that SSO is configured and "
              "that the SSO service is running on that server. (RPC: 0x80070005: Access is denied.)")
# displaydb-sql-unavailable.txt (composed, UNCONFIRMED: see docs/domain-notes.md)
SSODB_LOST = ("0x80131904", "Lost contact with the SSO database. Check that the SSO database is available.")


def using(server: str | None, computer: str) -> str:
    """The first line ssomanage prints: which SSO server it asks."""
    if not server or server.upper() == computer.upper():
        return USING_LOCAL + CRLF
    return USING_REMOTE.format(server=server) + CRLF


def displaydb(server: str | None, computer: str, *, sql_server: str, database: str, secret_server: str,
              template: str | None = None) -> str:
    """`ssomanage -displaydb` answered. `template` (scenario sso.displaydb_output) replaces the published
    form, for tests that need the lab to print something else."""
    values = {"server": server or computer, "sql_server": sql_server, "database": database,
              "secret_server": secret_server}
    if template is not None:
        return template.format(**values)
    return using(server, computer) + DISPLAYDB.format(**values)


def tool_error(server: str | None, computer: str, error: tuple[str, str]) -> str:
    """An SSO tool's failure: the server line, then `ERROR: 0x… : text`."""
    code, message = error
    return using(server, computer) + ERROR.format(code=code, message=message.format(server=server or computer))


# msiexec's verbose log (/l*v), its first line as the package starts and its last lines as it ends. COMPOSED,
# UNCONFIRMED as a whole: the forms of the "=== Verbose logging started/stopped" lines and of
# "MainEngineThread is returning N" are those of Windows Installer's logs (docs/domain-notes.md); the lab
# writes no line in between. entsso.domain.lostinstall reads only the "returning" line.
def msi_log_started(when: str) -> str:
    return (f"=== Verbose logging started: {when}  Build type: SHIP UNICODE 5.00.10011.00  Calling process: "
            f"C:\\Windows\\system32\\msiexec.exe ==={CRLF}")


def msi_log_ended(when: str, clock: str, code: int) -> str:
    return (f"MSI (c) (2C:30) [{clock}]: MainEngineThread is returning {code}{CRLF}"
            f"=== Verbose logging stopped: {when} ==={CRLF}")
