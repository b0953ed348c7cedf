"""Enterprise SSO: what each SSO server reports (version, the SSO server its tools use, the secret server
it sees, whether it holds the master secret) and the secret server recorded in SSODB. The SSO tools' text
(`ssomanage -displaydb`) comes back raw from the host and is parsed here (selftest/transcripts/ssomanage)."""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from entsso.remote.winrm import WindowsHost

from entsso.remote import tsql
from entsso.domain.poll import Poller, WaitTimedOut
from entsso.remote.sqlestate import Executes
from entsso.domain.names import same_name
from entsso.domain.errors import DomainError
from entsso.domain.outcome import Outcome

ENTSSO = "ENTSSO"


class UnknownToolOutput(DomainError, ValueError):
    """A tool printed text no parser here recognises: the message names the tool and shows the text."""

    def __init__(self, tool: str, text: str, exit_code: int | None, why: str) -> None:
        shown = text if len(text) <= 600 else text[:600] + "..."
        super().__init__(f"{tool} printed text this suite does not recognise ({why}; exit code {exit_code}): "
                         f"{shown!r}. Run `{tool}` on the host by hand; if Windows prints it so, add the text "
                         f"as a case under selftest/transcripts and teach entsso/domain/sso.py its form")
        self.tool, self.text, self.exit_code = tool, text, exit_code


@dataclass(frozen=True)
class DisplayDb:
    """What `ssomanage -displaydb` said: the SSO database settings, or the error it printed instead."""

    sso_server: str | None  # "Using SSO server : X"; None when it says "on this computer" or says nothing
    on_this_computer: bool  # "Using SSO server on this computer"
    sql_server: str | None
    sso_database: str | None
    secret_server: str | None
    settings: tuple[tuple[str, str], ...]  # every "label : value" line, as printed
    error_code: str | None  # "0xC0002A0F" from "ERROR: 0xC0002A0F : ..."
    error: str | None  # the error's text (a wrapped message joined into one line)

    @property
    def failed(self) -> bool:
        return self.error_code is not None

    def error_line(self) -> str | None:
        return f"ERROR: {self.error_code} : {self.error}" if self.error_code else None


# The labels Microsoft publishes for the rows -displaydb prints (lower case, blanks collapsed):
# "SSO secret server name" / "SSO database" in the BizTalk CPR team's transcript (2008), "Single Sign-On
# Secret Server name" / "Single Sign-On database" in Learn's "How to Display the SSO Database Information".
_SECRET_SERVER_LABELS = {"sso secret server name", "single sign-on secret server name"}
_DATABASE_LABELS = {"sso database", "single sign-on database", "sql server database"}
_SQL_SERVER_LABELS = {"sql server"}
_USING_LOCAL = re.compile(r"^Using SSO server on this computer\.?$", re.I)
_USING_REMOTE = re.compile(r"^Using SSO server\s*:\s*(?P<name>\S+)$", re.I)
_ERROR = re.compile(r"^ERROR:\s*(?P<code>0x[0-9A-Fa-f]{8})\s*:\s*(?P<text>.*)$")
_SETTING = re.compile(r"^(?P<label>[A-Za-z][^:]*?)\s*:\s*(?P<value>.*?)$")
# -displaydb's whole output (CPR 2008) also prints section headers ("Global flags -", "Password Sync -") above
# their settings, and ends with a rule of dashes: printed structure, not settings
_SECTION = re.compile(r"^(?P<name>[A-Za-z][A-Za-z ]*?)\s+-$")
_RULE = re.compile(r"^-{5,}$")


def _lines(stdout: str, stderr: str) -> list[str]:
    text = (stdout or "") + ("\n" + stderr if stderr else "")
    return [line.rstrip() for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n")]


def parse_displaydb(stdout: str, stderr: str = "", exit_code: int | None = 0) -> DisplayDb:
    """Parse `ssomanage -displaydb` as Windows prints it (CRLF, any padding around ' : '). An ERROR line
    makes the result an error whatever the exit code (ssomanage's exit code on failure is unconfirmed).
    Raises UnknownToolOutput for text in no published form, or settings without the secret server row."""
    tool = "ssomanage -displaydb"
    raw = (stdout or "") + (stderr or "")
    sso_server, local = None, False
    settings: list[tuple[str, str]] = []
    error_code: str | None = None
    error_parts: list[str] = []
    for line in _lines(stdout, stderr):
        text = line.strip()
        if error_code is not None:
            if text:  # a wrapped error message continues on the next lines
                error_parts.append(text)
            continue
        if not text:
            continue
        if _USING_LOCAL.match(text):
            local = True
            continue
        if m := _USING_REMOTE.match(text):
            sso_server = m.group("name")
            continue
        if m := _ERROR.match(text):
            error_code = m.group("code")[:2].lower() + m.group("code")[2:].upper()
            error_parts.append(m.group("text").strip())
            continue
        if m := _SETTING.match(text):
            settings.append((" ".join(m.group("label").split()), m.group("value").strip()))
            continue
        if _SECTION.match(text) or _RULE.match(text):
            continue
        raise UnknownToolOutput(tool, raw, exit_code, f"the line {text!r} is in no known form")

    def value(labels: set[str]) -> str | None:
        return next((v for k, v in settings if k.lower() in labels and v), None)

    if error_code is not None:
        return DisplayDb(sso_server, local, None, None, None, tuple(settings), error_code,
                         " ".join(p for p in error_parts if p))
    secret = value(_SECRET_SERVER_LABELS)
    if secret is None:
        why = "no secret server row" if settings else "no settings and no ERROR line"
        raise UnknownToolOutput(tool, raw, exit_code, why)
    if exit_code not in (0, None):
        raise UnknownToolOutput(tool, raw, exit_code, "settings printed but the exit code is not 0")
    return DisplayDb(sso_server, local, value(_SQL_SERVER_LABELS), value(_DATABASE_LABELS), secret,
                     tuple(settings), None, None)


@dataclass(frozen=True)
class ToolAnswer:
    """What an SSO tool that changes something said (`ssomanage -updatedb`, `ssoconfig -backupsecret` /
    `-restoresecret`): the SSO server it used, its ERROR line if any, whether it printed Learn's
    "The operation completed successfully", and its other lines as printed. Only the ERROR form and that
    message are published, so other lines are kept, not judged: the caller proves the change itself
    (ensure_secret_server reads SSODB back)."""

    sso_server: str | None
    on_this_computer: bool
    error_code: str | None
    error: str | None
    completed: bool
    messages: tuple[str, ...]

    @property
    def failed(self) -> bool:
        return self.error_code is not None

    def error_line(self) -> str | None:
        return f"ERROR: {self.error_code} : {self.error}" if self.error_code else None


_COMPLETED = re.compile(r"^The operation completed successfully\.?$", re.I)


def parse_tool_answer(stdout: str, stderr: str = "", exit_code: int | None = 0) -> ToolAnswer:
    """Parse an SSO tool's answer as Windows prints it: `Using SSO server …`, then either an
    `ERROR: 0x… : text` (a console-wrapped message joined into one line) or lines of its own."""
    sso_server, local, completed = None, False, False
    error_code: str | None = None
    parts: list[str] = []
    messages: list[str] = []
    for line in _lines(stdout, stderr):
        text = line.strip()
        if not text:
            continue
        if error_code is not None:
            parts.append(text)
        elif _USING_LOCAL.match(text):
            local = True
        elif m := _USING_REMOTE.match(text):
            sso_server = m.group("name")
        elif m := _ERROR.match(text):
            error_code = m.group("code")[:2].lower() + m.group("code")[2:].upper()
            parts.append(m.group("text").strip())
        elif _COMPLETED.match(text):
            completed = True
        else:
            messages.append(text)
    return ToolAnswer(sso_server, local, error_code, " ".join(parts) if error_code else None,
                      completed and error_code is None, tuple(messages))


@dataclass(frozen=True)
class SsoServer:
    host: str
    installed: bool
    version: str | None
    tools_server: str | None  # the SSO server ssomanage says it uses ("Using SSO server …"); None: unknown
    secret_server: str | None  # what `ssomanage -displaydb` shows through that SSO server
    displaydb_error: str | None  # its ERROR line, why it could not run, or the text no parser knows
    holds_secret: bool  # HKLM\SOFTWARE\Microsoft\ENTSSO\SSOSS\{GUID} exists


def tools_server_of(db: DisplayDb | ToolAnswer, computer: str) -> str | None:
    """The SSO server an SSO tool says it asks, from the line it prints first (published:
    "Using SSO server on this computer" / "Using SSO server : X", docs/domain-notes.md): `computer`
    for the first, X for the second, None when it printed neither. This is the server every ssomanage
    command of the WinRM account uses: the all-users setting `-serverall` writes, unless that account
    has its own (`ssomanage -server`)."""
    if db.on_this_computer:
        return computer
    return db.sso_server


def read_displaydb(raw: dict[str, Any] | None) -> tuple[DisplayDb | None, str | None]:
    """(parsed, error) from a raw `ssomanage -displaydb` {exit_code, stdout, stderr, run_error}: error is
    why it was not run, could not run, or printed text no parser knows (then parsed is None)."""
    if not raw:
        return None, "ssomanage -displaydb was not run (Enterprise SSO not installed)"
    if raw.get("run_error"):
        return None, f"ssomanage -displaydb could not run: {raw['run_error']}"
    try:
        return parse_displaydb(raw.get("stdout") or "", raw.get("stderr") or "", raw.get("exit_code")), None
    except UnknownToolOutput as exc:
        return None, str(exc)


def displaydb_facts(raw: dict[str, Any] | None) -> tuple[str | None, str | None]:
    """(secret server, error) from Get-HostFacts' raw `sso.displaydb` {exit_code, stdout, stderr, run_error}."""
    db, error = read_displaydb(raw)
    if db is None:
        return None, error
    if db.failed:
        return None, db.error_line()
    return db.secret_server, None


def parse_sso(host: str, doc: dict[str, Any]) -> SsoServer:
    s = doc.get("sso") or {}
    installed = bool(s.get("installed"))
    secret, error, tools = None, None, None
    if installed:
        db, _ = read_displaydb(s.get("displaydb"))
        secret, error = displaydb_facts(s.get("displaydb"))
        tools = tools_server_of(db, doc.get("computer_name") or host) if db else None
    return SsoServer(host, installed, s.get("version"), tools, secret, error, bool(s.get("holds_secret")))


def version_tuple(version: str | None) -> tuple[int, ...]:
    """'10.0.1000.0' -> (10, 0, 1000, 0); None or junk -> ()."""
    try:
        return tuple(int(p) for p in (version or "").split("."))
    except ValueError:
        return ()


def secret_server(sql: Executes) -> str | None:
    """The master secret server recorded in SSODB (SSOX_GlobalInfo.gi_SecretServer)."""
    return sql.execute(tsql.SECRET_SERVER, database="SSODB").scalar()


def admin_group(sql: Executes) -> str | None:
    """The SSO Administrators group SSODB names (SSOX_GlobalInfo.gi_SSOAdminGroup): ENTSSO checks at start
    that its service account belongs to it, and does not start otherwise."""
    return sql.execute(tsql.SSO_ADMIN_GROUP, database="SSODB").scalar()


def group_sso_server(sql: Executes) -> str | None:
    """The BizTalk group's SSO server name (adm_Group.SSOServerName, what MSBTS_GroupSetting shows)."""
    return sql.execute(tsql.GROUP_SSO_SERVER, database="BizTalkMgmtDb").scalar()


def registered_servers(sql: Executes) -> list[str]:
    """The SSO servers registered in SSODB (SSOX_Servers, unexpired), as they registered (lower case)."""
    return [str(r["server_name"]) for r in sql.execute(tsql.SSO_SERVERS, database="SSODB").rows]


def unlisted_servers(registered: list[str], known: list[str]) -> list[str]:
    """The registered SSO servers that are none of `known` (the inventory's hosts and the cluster name),
    compared by their first DNS label, case-insensitively: NODE1 is node1.contoso.local."""
    names = {k.split(".")[0].lower() for k in known if k}
    return [r for r in registered if r.split(".")[0].lower() not in names]


def backup_secret(host: WindowsHost, file: str, password: Any, reminder: str) -> Outcome:
    """Back up the master secret on the MSS through the SSO admin object model (Backup-MasterSecret).
    The password travels over stdin inside the envelope, never on a command line."""
    return Outcome(True, host.invoke("Backup-MasterSecret", {"file": file, "password": password,
                                                            "reminder": reminder}, timeout=300))


@dataclass(frozen=True)
class BackupReadBack:
    """A master secret backup as read back on its node (Read-SecretBackup): what SSO says its password
    reminder is, and the file's size and SHA-256 there."""
    file: str
    size: int
    sha256: str  # lower case
    reminder: str | None
    reminder_error: str | None  # SSO's refusal to read the file ("0x…: message"), None when it read it


def read_back_backup(host: WindowsHost, file: str) -> BackupReadBack:
    """Read a backup file back on its node (no password: GetFilePasswordReminder reads the file itself)."""
    doc = host.invoke("Read-SecretBackup", {"file": file})
    err = doc.get("reminder_error")
    said = f"{err.get('hresult')}: {err.get('message')}" if isinstance(err, dict) else (str(err) if err else None)
    reminder = doc.get("reminder")
    return BackupReadBack(str(doc.get("file") or file), int(doc.get("size") or 0), str(doc.get("sha256") or "").lower(),
                          None if reminder is None else str(reminder), said)


def backup_unrestorable(back: BackupReadBack, reminder: str, sha256: str | None) -> str | None:
    """Why a backup read back is not the one this change wrote, or cannot be restored ("If the password is
    unknown and you must restore the master secret, unconfiguring and reconfiguring BizTalk is the only
    option": a backup is proved by reading it back, not by its existence); None when it holds."""
    if back.reminder_error:
        return (f"SSO cannot read the backup {back.file} back ({back.reminder_error}): a restore from it would fail "
                "the same way")
    if back.reminder != reminder:
        return (f"the backup {back.file} answers the password reminder {back.reminder!r}, not the {reminder!r} this "
                "change wrote: it is not this change's backup")
    if sha256 is not None and back.sha256 != sha256.lower():
        return (f"the backup {back.file} on the node (SHA-256 {back.sha256}) differs from its copy off the node "
                f"(SHA-256 {sha256.lower()})")
    return None


def restore_secret(host: WindowsHost, file: str, password: Any) -> Outcome:
    """Restore the master secret on a node (Restore-MasterSecret, password over stdin); `changed` is whether
    the node held no secret before (RestoreSecret writes the same secret again otherwise)."""
    doc = host.invoke("Restore-MasterSecret", {"file": file, "password": password}, timeout=300)
    held = bool(doc.get("held_before"))
    return Outcome(not held, {**doc, "changed": not held},
                   "the node held the secret already (RestoreSecret wrote the same secret again)" if held else None)



def ensure_secret_server(host: WindowsHost, sql: Executes, name: str, *, timeout: float = 120,
                         poller: Poller | None = None) -> Outcome:
    """Move the master secret server: `ssomanage -updatedb` with <secretServer>name</secretServer>,
    run on `host` (its SSO tools must reach a running SSO server). SSODB is read first: when it already
    names `name` nothing runs (a resumed run may find no SSO server answering the old name). The tool's
    ERROR line is a failure; otherwise SSODB is polled until it names `name`."""
    before = secret_server(sql)
    if same_name(before, name):
        return Outcome(False, {"secret_server_before": before, "secret_server": before},
                       f"SSODB already names {before}")
    doc = host.invoke("Update-SsoDatabase", {"secret_server": name}, timeout=300)
    answer = parse_tool_answer(doc.get("stdout") or "", doc.get("stderr") or "", doc.get("exit_code"))
    server = answer.sso_server or host.name
    if answer.failed:
        raise SecretServerNotSet(f"ssomanage -updatedb on {host.name} failed: {answer.error_line()} The secret server "
                           f"is still {before!r}. Check that ENTSSO runs on {server}, the SSO server "
                           f"{host.name}'s tools use, and that the WinRM account is an SSO administrator and a "
                           f"local administrator there, then re-run")
    try:
        after = (poller or Poller()).until(
            lambda: (lambda v: v if same_name(v, name) else None)(secret_server(sql)),
            timeout, what=f"SSODB to name {name} as the secret server", describe=lambda: secret_server(sql))
    except WaitTimedOut as exc:
        printed = " / ".join(answer.messages) or "nothing after its server line"
        raise SecretServerNotSet(f"ssomanage -updatedb on {host.name} printed no error ({printed}, exit code "
                           f"{doc.get('exit_code')}) but SSODB names {exc.last!r}, not {name!r}, after "
                           f"{timeout:.0f} s; check the SSO event log on {server}") from None
    return Outcome(True, {"secret_server_before": before, "secret_server": after, "sso_server": server,
                          "output": list(answer.messages)})


class SecretServerNotSet(DomainError, RuntimeError):
    """ssomanage -updatedb did not make SSODB name the server asked for."""


class ToolsServerNotSet(DomainError, RuntimeError):
    """`ssomanage -serverall` ran, but ssomanage does not use the wanted server afterwards."""


def ensure_tools_server(host: WindowsHost, server: str) -> Outcome:
    """Point this machine's SSO tools at `server` for all users (`ssomanage -serverall`, "How to Set the SSO
    Server") and prove it by the server ssomanage then says it uses (`-displaydb`'s first line, read before
    and after by Set-SsoServer: that line is printed even when the SSO server does not answer). Writing the
    setting it already has changes nothing, so `changed` is whether the server before differed."""
    doc = host.invoke("Set-SsoServer", {"server": server}, timeout=120)
    computer = doc.get("computer_name") or host.name

    def used(raw: dict[str, Any] | None, when: str) -> str | None:
        db, error = read_displaydb(raw)
        if db is None:
            raise ToolsServerNotSet(f"{host.name}: cannot tell which SSO server its tools use {when} "
                                    f"`ssomanage -serverall {server}`: {error}")
        return tools_server_of(db, computer)

    before = used(doc.get("before"), "before")
    ran = doc.get("serverall") or {}
    answer = parse_tool_answer(ran.get("stdout") or "", ran.get("stderr") or "", ran.get("exit_code"))
    if answer.failed:
        raise ToolsServerNotSet(f"ssomanage -serverall {server} on {host.name} failed: {answer.error_line()} Its "
                                f"SSO tools still use {before!r}. Run it as a local administrator of {host.name}, "
                                "then continue")
    after = used(doc.get("after"), "after")
    if not same_name(after, server):
        raise ToolsServerNotSet(
            f"ssomanage -serverall {server} on {host.name} printed no error, but ssomanage then says it uses "
            f"{after!r}, not {server!r}. A per-user setting of the WinRM account (`ssomanage -server`) overrides "
            f"the all-users one: on {host.name}, as that account, run `ssomanage -server {server}` (or remove its "
            "own setting), then continue")
    changed = not same_name(before, server)
    return Outcome(changed, {"tools_server_before": before, "tools_server": after, "output": list(answer.messages)},
                   None if changed else f"its tools already used {server}")


def rehearse_secret_server(host: WindowsHost, sql: Executes) -> Outcome:
    """`ssomanage -updatedb` with the secret server SSODB already names, run on `host` as phases 3 and 5 run it:
    the tool, its SSO server and the account's rights answer as they will in the window; SSODB is read back
    unchanged."""
    before = secret_server(sql)
    if not before:
        raise SecretServerNotSet("SSODB names no master secret server (SSOX_GlobalInfo.gi_SecretServer is empty)")
    doc = host.invoke("Update-SsoDatabase", {"secret_server": before}, timeout=300)
    answer = parse_tool_answer(doc.get("stdout") or "", doc.get("stderr") or "", doc.get("exit_code"))
    if answer.failed:
        raise SecretServerNotSet(f"ssomanage -updatedb on {host.name} failed: {answer.error_line()} Phases 3 and 5 "
                                 f"run it there to move the master secret server; check that ENTSSO runs on "
                                 f"{answer.sso_server or host.name} and that the WinRM account is an SSO administrator "
                                 "and a local administrator there")
    after = secret_server(sql)
    if not same_name(after, before):
        raise SecretServerNotSet(f"SSODB named {before!r} and names {after!r} after -updatedb set it again")
    return Outcome(False, {"secret_server": after}, "set to the value it had")


def versions_seen(reported: list[str | None]) -> str:
    """What a node reported while its upgrade was awaited, in words: 'it reported 10.0.1000.0 the whole time'."""
    words = [v or "no answer" for v in reported]
    if not words or words == ["no answer"]:
        return "it did not answer WinRM the whole time"
    if len(words) == 1:
        return f"it reported {words[0]} the whole time"
    return f"it reported {', then '.join(words)} (the last)"
