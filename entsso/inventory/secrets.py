"""The inventory's secrets: never in the file, read from the environment variables it names (or a prompt on a
terminal) when a run loads it; and the list of those variables, for a check that reads no secret."""
from __future__ import annotations

import getpass
import os
from dataclasses import dataclass
from typing import Protocol

from pydantic import SecretStr


# what the secrets are read by, of the inventory (entsso.inventory.schema.Inventory meets it; schema.py
# imports this module for Secrets, so it is not imported back)
class _Login(Protocol):
    @property
    def username(self) -> str | None: ...
    @property
    def password_env(self) -> str | None: ...


class _SqlLogin(_Login, Protocol):
    @property
    def auth(self) -> str: ...


class _SecretBackup(Protocol):
    @property
    def password_env(self) -> str: ...


class Inventory(Protocol):
    @property
    def winrm(self) -> _Login: ...
    @property
    def sql(self) -> _SqlLogin: ...
    @property
    def secret_backup(self) -> _SecretBackup: ...


class Secrets:
    """The secrets read from the environment (or a prompt). repr never shows them."""

    def __init__(self, winrm_password: SecretStr | None, sql_password: SecretStr | None,
                 secret_password: SecretStr | None) -> None:
        self.winrm_password = winrm_password
        self.sql_password = sql_password
        self.secret_password = secret_password

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}={'***' if v is not None else None}" for k, v in vars(self).items())
        return f"Secrets({shown})"

    def values(self) -> list[str]:
        """The plain values (for redaction)."""
        return [v.get_secret_value() for v in vars(self).values() if v is not None]


def read_secrets(inv: Inventory, prompt: bool) -> tuple[Secrets, list[str]]:
    """The secrets `inv` names, and a problem for each that is neither in the environment nor typed at the
    prompt (asked only when `prompt`)."""
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
    return secrets, problems


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
    """The variables a run will read its secrets from (the same ones `read_secrets` reads)."""
    w, s, b = inv.winrm, inv.sql, inv.secret_backup
    found = [NeededVariable(w.password_env, "winrm.password_env", f"the WinRM password of {w.username}")
             if w.password_env else None,
             NeededVariable(s.password_env, "sql.password_env", f"the SQL login password of {s.username}")
             if s.auth == "sql" and s.password_env else None,
             NeededVariable(b.password_env, "secret_backup.password_env", "the master secret backup's password")]
    return [v for v in found if v is not None]
