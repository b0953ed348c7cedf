"""Which remote operations a lost connection may repeat, which errors count as transient, and how long to
keep trying (docs/operations.md, "Retries").

A network blip shorter than the cluster's heartbeat threshold heals by itself (docs/domain-notes.md,
"Network loss and the cluster's heartbeat"); a call that met it should be asked again rather than stop the
change. Only operations that are safe to repeat are: pure reads, and operations idempotent by construction
(their script leaves an estate already in the asked state alone). The others are never repeated blindly:
a lost Install-SsoUpdate is asked about instead (entsso.domain.installer.install_update), and a lost
Backup-MasterSecret, Restore-MasterSecret, Restart-Node or cluster move stops the step, whose checks read
the estate again.
"""
from __future__ import annotations

from dataclasses import dataclass

from entsso.remote.errors import HostNotResolved, HostUnreachable, RemoteError

# operation -> why repeating it after a lost connection is safe
SAFE_TO_REPEAT: dict[str, str] = {
    "Get-HostFacts": "a read (its writable probe is a zero-byte file it creates and deletes again)",
    "Read-File": "a pure read",
    "Read-SecretBackup": "a pure read (the reminder, size and hash of a file)",
    "Get-ClusterSsoRoles": "a pure read",
    "Get-AdapterHandlers": "a pure read (run-time mode GetConfigInfo; values never returned)",
    "Set-ServiceState": "a service already in the asked state is left alone (changed false)",
    "Set-SsoServer": "writing the SSO server the machine already uses changes nothing",
    "Update-SsoDatabase": "naming the secret server SSODB already names changes nothing; the suite then "
                          "reads SSODB to see where it is",
    "Write-File": "a file that already holds exactly these bytes is left untouched",
}

# operation -> why a lost connection is never answered by running it again
NEVER_REPEATED: dict[str, str] = {
    "Install-SsoUpdate": "the package may be running or done on the host: the suite asks the host (its SSO "
                         "version, the installer's log) and decides, and never starts it twice",
    "Backup-MasterSecret": "the first may have written the backup: a repeat would meet that file and be "
                           "refused (the backup never overwrites a file); the step stops and the file is "
                           "judged by reading it back",
    "Restore-MasterSecret": "a restore changes the node's secret; repeated, its answer (held before) would "
                            "describe the first restore, not the estate",
    "Restart-Node": "a second restart would restart the node again",
    "Set-ClusterResourceState": "a repeat while the first is still Pending meets a resource in transition, "
                                "whose refusal is not documented; the step stops and the cluster is read again",
    "Move-ClusterGroup": "a repeat while the group is still moving meets a group in transition, whose refusal "
                         "is not documented; the step stops and the cluster is read again",
}


@dataclass(frozen=True)
class RetryPolicy:
    """How a call that met a transient error is repeated: after `delays` (real seconds, the last one
    repeated), for at most `window` seconds in all since the first attempt. `window` 0 repeats nothing."""

    window: float = 30.0
    delays: tuple[float, ...] = (1.0, 2.0, 4.0, 8.0)

    def delay(self, attempt: int) -> float:
        """The wait before attempt `attempt` (2, 3, …)."""
        return self.delays[min(attempt - 2, len(self.delays) - 1)]


def transient(error: RemoteError) -> bool:
    """An error a healed network answers: no answer from the host (connection refused, reset or timed out).
    A name without an address (DNS), a refused login or certificate, a script's own failure and a call past
    its deadline are not: repeating them changes nothing or repeats a command that ran."""
    return isinstance(error, HostUnreachable) and not isinstance(error, HostNotResolved)


def may_repeat(operation: str) -> bool:
    return operation in SAFE_TO_REPEAT
