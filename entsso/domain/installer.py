"""The SSO update package and what its exit code means: one table of Windows Installer's codes (Microsoft
Learn's names and descriptions, with the suite's short words for each), the parse of an installer's answer,
and the decision the upgrade phase takes on it (`next_action`): go on, restart, wait for the installer's own
restart, or stop with the way out (`installer_failure`)."""
from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from enum import Enum

from entsso.domain import lostinstall
from entsso.domain.outcome import Outcome
from entsso.domain.sso import UnknownToolOutput
from entsso.remote.winrm import HostNotResolved, HostUnreachable, WindowsHost


def install_update(host: WindowsHost, path: str, arguments: str, log_path: str, timeout: float,
                   since: datetime | None = None) -> Outcome:
    """Run a silent SSO update package; the exit code comes back as data (`meaning` and `next_action` say
    what it means), and a code other than 0 is the journal's word for the step. A connection lost while it
    runs is never answered by running it again blindly: the node is asked what became of it
    (entsso.domain.lostinstall; `since`: the node's clock just before, to tell this install's log from an
    earlier one's), and the package is started again only if it never started."""
    started = time.monotonic()
    asked: list[str] = []
    for attempt in (1, 2):
        try:
            doc = host.invoke("Install-SsoUpdate", {"path": path, "arguments": arguments, "log_path": log_path,
                                                    "timeout_sec": int(timeout)}, timeout=timeout + 120)
        except HostUnreachable as lost:
            if isinstance(lost, HostNotResolved):
                raise
            verdict, seen = lostinstall.ask_again(host, path, log_path, since, started + timeout + 120, lost)
            asked += [f"after the lost connection of attempt {attempt}: {s}" for s in seen]
            if verdict.state == "not-started" and attempt == 1:
                continue  # it never ran: starting it now runs it once
            if verdict.state == "not-started":
                raise lostinstall.InstallStateUnknown(
                    f"{host.name}: the connection to {host.name} was lost twice as the update package {path} was "
                    "started, and it never started; check the network to the node, then resume") from None
            doc = {"exit_code": verdict.exit_code, "log_path": log_path, "version_after": verdict.version,
                   "connection_lost": True, "asked_again": asked}
        break
    if asked and "asked_again" not in doc:
        doc = {**doc, "asked_again": asked}
    code = doc.get("exit_code")
    return Outcome(True, doc, word=f"exit code {code}" if isinstance(code, int) and code != 0 else None)


# Windows Installer's exit codes as Microsoft Learn tables them ("MsiExec.exe and InstMsi.exe Error Messages",
# learn.microsoft.com/windows/win32/msi/error-codes): name and description verbatim. "The error codes
# ERROR_SUCCESS, ERROR_SUCCESS_REBOOT_INITIATED, and ERROR_SUCCESS_REBOOT_REQUIRED are indicative of success."
INSTALLER_CODES: dict[int, tuple[str, str]] = {  # code -> (name, description), verbatim
    0: ("ERROR_SUCCESS", "The action completed successfully."),
    1603: ("ERROR_INSTALL_FAILURE", "A fatal error occurred during installation."),
    1605: ("ERROR_UNKNOWN_PRODUCT", "This action is only valid for products that are currently installed."),
    1618: ("ERROR_INSTALL_ALREADY_RUNNING", "Another installation is already in progress. Complete that installation "
           "before proceeding with this install."),
    1619: ("ERROR_INSTALL_PACKAGE_OPEN_FAILED", "This installation package could not be opened. Verify that the "
           "package exists and is accessible, or contact the application vendor to verify that this is a valid Windows "
           "Installer package."),
    1638: ("ERROR_PRODUCT_VERSION", "Another version of this product is already installed. Installation of this "
           "version cannot continue. To configure or remove the existing version of this product, use Add/Remove "
           "Programs in Control Panel."),
    1641: ("ERROR_SUCCESS_REBOOT_INITIATED", "The installer has initiated a restart. This message is indicative of a "
           "success."),
    1642: ("ERROR_PATCH_TARGET_NOT_FOUND", "The installer cannot install the upgrade patch because the program being "
           "upgraded may be missing or the upgrade patch updates a different version of the program. Verify that the "
           "program to be upgraded exists on your computer and that you have the correct upgrade patch."),
    3010: ("ERROR_SUCCESS_REBOOT_REQUIRED", "A restart is required to complete the install. This message is indicative "
           "of a success. This does not include installs where the ForceReboot action is run."),
}


@dataclass(frozen=True)
class InstallerExit:
    """What an update package's exit code says, by Windows Installer's table: its name (None for a code the
    table here does not hold), whether it is a success, and the restart it implies (none, required, initiated)."""

    code: int
    name: str | None
    succeeded: bool
    restart: str


def parse_installer_exit(stdout: str, stderr: str = "", exit_code: int | None = None) -> InstallerExit:
    """Install-SsoUpdate runs the package quietly (`/quiet`: msiexec prints nothing), so its answer is the exit
    code alone. Raises UnknownToolOutput when there is none."""
    if not isinstance(exit_code, int):
        raise UnknownToolOutput("the update package", (stdout or "") + (stderr or ""), exit_code, "no exit code")
    name = INSTALLER_CODES.get(exit_code, (None, ""))[0]
    restart = {3010: "required", 1641: "initiated"}.get(exit_code, "none")
    return InstallerExit(exit_code, name, exit_code in (0, 3010, 1641), restart)


def installer_failure(node: str, code: int, log_path: str, version_after: str | None, package: str | None) -> str:
    """The stop message for an update package that did not succeed: what Windows Installer did (its side
    effects by exit code, docs/domain-notes.md) and what the operator does before continuing."""
    what = meaning(code)
    kept = f"{node} still reports Enterprise SSO {version_after}" if version_after else f"{node}'s version is unchanged"
    head = f"{node}: the update package returned exit code {code} ({what})"
    if code == 1618:
        return (f"{head}. Windows Installer did not start it and changed nothing ({kept}; ENTSSO left as it was). "
                f"Another installation holds the installer on {node}: find it (Get-Process msiexec on {node}; the "
                "Application log's MsiInstaller events name the product), let it finish or end it, then continue.")
    if code == 1619:
        return (f"{head}. Windows Installer could not open {package or 'the package'} and changed nothing ({kept}; "
                f"ENTSSO left as it was). Check that the file on {node} is complete and a valid package for this "
                "update (compare its size and hash with the download; the account must be able to read it), then "
                "continue.")
    if code == 1638:
        return (f"{head}. Windows Installer refused it and changed nothing ({kept}; ENTSSO left as it was). "
                f"{node} already has another version of the product installed: check Programs and Features on "
                f"{node} (which Enterprise SSO version is there) against the inventory's package and target "
                "version, correct whichever is wrong, then continue.")
    if code == 1603:
        return (f"{head}. Windows Installer rolled the installation back ({kept}; the services it stopped are "
                f"started again). Read the installer log {log_path} on {node} (the first 'Return value 3' names "
                "the failing action), fix the cause, then continue.")
    return (f"{head}; {kept}. Read the installer log {log_path} on {node}, fix the cause, then continue.")


# the suite's short words for each code of INSTALLER_CODES, as the stop messages and the report say them
SHORT_WORDS: dict[int, str] = {
    0: "success",
    3010: "success, reboot required",
    1641: "success, the installer started a reboot",
    1603: "fatal error during installation",
    1618: "another installation is already in progress",
    1619: "the installation package could not be opened",
    1638: "another version of this product is already installed",
    1605: "the product to update is not installed",
    1642: "the update's target is missing or another version",
}


def meaning(code: int) -> str:
    """A code in the suite's words with Learn's name: 'fatal error during installation (ERROR_INSTALL_FAILURE)'."""
    if code in SHORT_WORDS:
        return f"{SHORT_WORDS[code]} ({INSTALLER_CODES[code][0]})"
    return "not a Windows Installer success code"


class Next(Enum):
    """What the upgrade phase does after the package returned."""

    DONE = "done"  # installed; nothing owed
    RESTART = "restart"  # installed; the node needs a restart, which the run may ask for (--allow-reboot)
    AWAIT_RESTART = "await-restart"  # installed; the installer itself is restarting the node: wait for it
    STOP_REBOOT_REQUIRED = "stop: reboot required"  # 3010 without --allow-reboot: the operator reboots
    STOP_RESTARTING = "stop: restarting"  # 1641 without --allow-reboot: the operator waits for the node
    FAILED = "failed"  # not installed: installer_failure says what happened and the way out


def next_action(exit: InstallerExit, allow_reboot: bool) -> Next:
    if not exit.succeeded:
        return Next.FAILED
    if exit.restart == "initiated":
        return Next.AWAIT_RESTART if allow_reboot else Next.STOP_RESTARTING
    if exit.restart == "required":
        return Next.RESTART if allow_reboot else Next.STOP_REBOOT_REQUIRED
    return Next.DONE
