"""The master secret backup off its node and read back: the copy this admin box keeps (mode 0600, beside the
reports folder, never in a run folder) and the proof that the backup can be restored — SSO reads its password
reminder from the file and the node's SHA-256 equals the copy's ("If the password is unknown and you must
restore the master secret, unconfiguring and reconfiguring BizTalk is the only option")."""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from entsso.change.run import Run
from entsso.domain import files, sso


def copy_off_node(run: Run, host: str, path: str) -> dict[str, Any]:
    """A file on a node (the master secret backup) copied to this admin box, mode 0600: path, size, SHA-256
    (of the copy as written here, read back from this disk)."""
    data = files.read_file(run.hosts[host], path)
    folder = Path(run.inventory.secret_backup.copy_folder or (run.dir.parent.parent / "secret-backups" / run.id))
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / Path(path.replace("\\", "/")).name
    target.write_bytes(data)
    target.chmod(0o600)
    return {"copy": str(target), "size": len(data), "sha256": hashlib.sha256(target.read_bytes()).hexdigest()}


def expected_reminder(run: Run, run_id: str | None = None) -> str:
    """The password reminder this change writes into its backup (the inventory's secret_backup.reminder), as
    the run `run_id` (this one by default) writes it."""
    return run.inventory.secret_backup.reminder.format(ticket=run.options.change_ticket or "", run=run_id or run.id)


def read_back(run: Run, host: str, path: str, copy_sha256: str | None, reminder: str | None = None) -> dict[str, Any]:
    """The backup read back on its node (Read-SecretBackup) and judged: `unrestorable` says why it would not
    restore, None when its reminder is the one this change wrote (by whichever of its runs wrote it: a resumed
    change finds its earlier run's backup) and its hash the copy's."""
    back = sso.read_back_backup(run.hosts[host], path)
    if reminder is not None:
        wants = [reminder]
    else:
        runs = [run.id]
        if run.options.change_ticket and run._snapshot is not None:
            runs += [r for r in run.history().runs if r != run.id]
        wants = [expected_reminder(run, r) for r in runs]
    found = next((w for w in wants if w == back.reminder), wants[0])
    return {"reminder": back.reminder, "sha256_on_node": back.sha256, "size_on_node": back.size,
            "unrestorable": sso.backup_unrestorable(back, found, copy_sha256)}
