"""The inventory's secrets: read from the environment variables the file names (or a prompt on a terminal),
and the list of those variables."""
from __future__ import annotations

import getpass
import os
from dataclasses import dataclass

from pydantic import SecretStr

from entsso.inventory.load import _join, check_inventory
from entsso.inventory.schema import Inventory, InventoryError, Secrets


def load_inventory(path: str | os.PathLike[str] | None, prompt: bool = False) -> Inventory:
    """Load, validate and complete (secrets) the inventory at `path`. Raises InventoryError."""
    inventory = check_inventory(path)
    inventory._secrets = _read_secrets(inventory, str(path), prompt)
    return inventory


def _read_secrets(inv: Inventory, where: str, prompt: bool) -> Secrets:
    problems: list[str] = []

    def read(env: str | None, field: str, what: str) -> SecretStr | None:
        if env is None:
            return None
        value = os.environ.get(env)
        if value:
            return SecretStr(value)
        if prompt:
            value = getpass.getpass(f"{what} ({env} is not set): ")
            if value:
                return SecretStr(value)
            problems.append(f"{field}: names {env}, which is not set, and nothing was typed at the prompt; "
                            f"export {env} or type the {what}")
            return None
        problems.append(f"{field}: names the environment variable {env}, which is not set; set it before the run "
                        f"(e.g. `read -rs {env} && export {env}`), or run on a terminal to be asked for the {what}")
        return None

    w, s, b = inv.winrm, inv.sql, inv.secret_backup
    secrets = Secrets(
        winrm_password=read(w.password_env, "winrm.password_env", f"WinRM password for {w.username}"),
        sql_password=read(s.password_env, "sql.password_env", f"SQL login password for {s.username}")
        if s.auth == "sql" else None,
        secret_password=read(b.password_env, "secret_backup.password_env", "master secret backup password"),
    )
    if problems:
        raise InventoryError(_join(where, problems))
    return secrets


@dataclass(frozen=True)
class NeededVariable:
    """An environment variable the inventory names for a secret: which field names it and what it holds."""

    variable: str
    field: str
    what: str

    @property
    def is_set(self) -> bool:
        return bool(os.environ.get(self.variable))


def needed_variables(inv: Inventory) -> list[NeededVariable]:
    """The variables a run will read its secrets from (the same ones `_read_secrets` reads)."""
    w, s, b = inv.winrm, inv.sql, inv.secret_backup
    found = [NeededVariable(w.password_env, "winrm.password_env", f"the WinRM password of {w.username}")
             if w.password_env else None,
             NeededVariable(s.password_env, "sql.password_env", f"the SQL login password of {s.username}")
             if s.auth == "sql" and s.password_env else None,
             NeededVariable(b.password_env, "secret_backup.password_env", "the master secret backup's password")]
    return [v for v in found if v is not None]
