"""The inventory: one YAML file that describes an estate (docs/inventory.md), loaded and checked.

`load_inventory(path)` parses the file, validates it with pydantic models and the estate's own rules,
and reads the secrets from the environment variables the file names (or a prompt on a terminal).
Every mistake becomes one `InventoryError` whose message names the file, the field and the fix, so a
bad inventory is reported before anything connects.
"""
from __future__ import annotations

import argparse
import difflib
import getpass
import hashlib
import ipaddress
import os
import re
import string
import sys
import types
import typing
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (BaseModel, ConfigDict, Field, PrivateAttr, SecretStr, ValidationError, field_validator,
                      model_validator)
from pydantic_core import PydanticCustomError

__all__ = ["InventoryError", "Inventory", "check_inventory", "load_inventory", "needed_variables", "outline"]

DEFAULT_JOBS = [
    "Backup BizTalk Server (BizTalkMgmtDb)",
    "CleanupBTFExpiredEntriesJob_BizTalkMgmtDb",
    "DTA Purge and Archive (BizTalkDTADb)",
    "MessageBox_DeadProcesses_Cleanup_BizTalkMsgBoxDb",
    "MessageBox_Message_Cleanup_BizTalkMsgBoxDb",
    "MessageBox_Message_ManageRefCountLog_BizTalkMsgBoxDb",
    "MessageBox_Parts_Cleanup_BizTalkMsgBoxDb",
    "MessageBox_UpdateStats_BizTalkMsgBoxDb",
    "Monitor BizTalk Server (BizTalkMgmtDb)",
    "Operations_OperateOnInstances_OnMaster_BizTalkMsgBoxDb",
    "PurgeSubscriptionsJob_BizTalkMsgBoxDb",
    "Rules_Database_Cleanup_BizTalkRuleEngineDb",
    "TrackedMessages_Copy_BizTalkMsgBoxDb",
]
# BizTalk's jobs SQL Agent keeps running on its own: ManageRefCountLog "runs continuously by default" and
# starts Message_Cleanup about every 10 s (Learn, "Monitoring SQL Server Agent Jobs")
DEFAULT_CONTINUOUS_JOBS = [
    "MessageBox_Message_ManageRefCountLog_BizTalkMsgBoxDb",
    "MessageBox_Message_Cleanup_BizTalkMsgBoxDb",
]
DEFAULT_REMINDER = "ENTSSO master secret backup for change {ticket} (run {run})"
DRIVERS = ("ODBC Driver 18 for SQL Server", "ODBC Driver 17 for SQL Server", "FreeTDS")

# A NetBIOS name (at most 15 characters) or a DNS name (labels of at most 63 characters).
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_DNS_NAME = re.compile(rf"^{_LABEL}(?:\.{_LABEL})*$")
_VERSION = re.compile(r"^\d+\.\d+\.\d+\.\d+$")
_WINDOWS_ABSOLUTE = re.compile(r"^(?:[A-Za-z]:\\|\\\\[^\\/:*?\"<>|]+\\[^\\/:*?\"<>|]+)")
# MSSQLSvc/<fqdn>, MSSQLSvc/<fqdn>:<port>, MSSQLSvc/<fqdn>:<instance> (Learn, "Register a Service Principal
# Name for Kerberos Connections")
_SPN = re.compile(rf"^MSSQLSvc/{_LABEL}(?:\.{_LABEL})*(?::(?:\d{{1,5}}|[A-Za-z_][A-Za-z0-9_$#@]{{0,15}}))?$")
_DATABASE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Keys that would hold a secret written into the file (password_env, which names a variable, is fine).
_SECRET_KEY = re.compile(r"(?i)^(?:.*password|passwd|pwd|secret|.*_secret|credential|credentials)$")


class InventoryError(ValueError):
    """The inventory cannot be used; str() is the one message the operator needs."""


# --- field checks (raised as PydanticCustomError so the message is ours, word for word) -------------
def _fail(message: str, **values: Any) -> PydanticCustomError:
    # formatted here: pydantic's own templates know {name} but not {name!r}
    return PydanticCustomError("inventory", message.format(**values))


def check_host_name(value: str) -> str:
    if not _DNS_NAME.match(value) or len(value) > 253 or value.replace(".", "").isdigit():
        raise _fail("{name!r} is not a host name (a NetBIOS name such as NODE1 or a DNS name such as "
                    "node1.corp.example: letters, digits and hyphens, no spaces or backslashes)", name=value)
    if "." not in value and len(value) > 15:
        raise _fail("{name!r} is longer than a NetBIOS name may be (15 characters); give the DNS name "
                    "(node.corp.example) or the computer's real short name", name=value)
    return value


def check_address(value: str) -> str:
    try:
        ipaddress.ip_address(value)
        return value
    except ValueError:
        return check_host_name(value)


def check_windows_absolute(value: str) -> str:
    if not _WINDOWS_ABSOLUTE.match(value):
        raise _fail("{path!r} is not an absolute Windows path; write a drive path such as 'C:\\SSOBackup' or a "
                    "share such as '\\\\server\\share\\SSOBackup' (in single quotes in YAML)", path=value)
    return value


def check_env_name(value: str) -> str:
    if not _ENV_NAME.match(value):
        # the value is not echoed: when it is not a variable name it may well be the password itself
        raise _fail("is not an environment variable name (letters, digits and _; the value is not shown in case "
                    "it is the secret itself); write the variable's name, such as ENTSSO_WINRM_PASSWORD, and "
                    "export the secret under that name")
    return value


def check_version(value: str) -> str:
    if not _VERSION.match(value):
        raise _fail("{version!r} is not a dotted version; write four numbers such as 10.0.2000.0 (the "
                    "Enterprise SSO file version the update brings)", version=value)
    return value


HostName = Annotated[str, Field(min_length=1)]
WindowsPath = Annotated[str, Field(min_length=1)]
Seconds = Annotated[float, Field(gt=0)]


class _Model(BaseModel):
    # strict: "5986" is not a port and "yes" is not a bool; extra keys are mistakes, not comments
    model_config = ConfigDict(extra="forbid", strict=True, validate_default=True)


# --- the estate ---------------------------------------------------------------------------------------
class Host(_Model):
    """A Windows host: its name (as the estate knows it) and how to reach it."""

    name: HostName = Field(description="the computer name (NetBIOS or DNS)")
    address: str | None = Field(None, description="where to connect (DNS name or IP address); the name if not given")

    @model_validator(mode="before")
    @classmethod
    def _from_name(cls, data: Any) -> Any:
        return {"name": data} if isinstance(data, str) else data

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        return check_host_name(value)

    @field_validator("address")
    @classmethod
    def _address(cls, value: str | None) -> str | None:
        return None if value is None else check_address(value)

    @model_validator(mode="after")
    def _default_address(self) -> "Host":
        if self.address is None:
            self.address = self.name
        return self


class Cluster(_Model):
    network_name: HostName = Field(description="the cluster's network name: the MSS name while clustered")
    group: str = Field("SSO", min_length=1, description="the cluster group that holds the ENTSSO resource")
    resource: str = Field("ENTSSO", min_length=1, description="the ENTSSO generic-service resource")
    nodes: list[Host] = Field(min_length=2, description="the cluster nodes (each an SSO server)")
    primary: str | None = Field(None, description="the node that is MSS while unclustered, and owns the group at "
                                                  "the end; if not given, the group's owner at the change start")

    @field_validator("network_name")
    @classmethod
    def _check_network_name(cls, value: str) -> str:
        return check_host_name(value)


def check_database_name(value: str) -> str:
    # written into T-SQL's three-part names (a name cannot be a ? parameter): regular identifiers only
    if not _DATABASE_NAME.match(value):
        raise _fail("{name!r} is not a database name the suite accepts; write the name as sys.databases shows it "
                    "(letters, digits and _, starting with a letter or _), such as BizTalkMgmtDb_PRD", name=value)
    return value


class Databases(_Model):
    ssodb: str = Field("SSODB", min_length=1, description="the SSO database")
    management: str = Field("BizTalkMgmtDb", min_length=1, description="the BizTalk management database")
    msdb: str = Field("msdb", min_length=1, description="SQL Server Agent's database")

    @field_validator("ssodb", "management", "msdb")
    @classmethod
    def _name(cls, value: str) -> str:
        return check_database_name(value)


class SqlInstance(_Model):
    """Another SQL Server instance that holds some of BizTalk's databases (and their jobs)."""

    server: HostName = Field(description="the SQL Server host (or listener/alias name) of this instance")
    instance: str | None = Field(None, min_length=1, description="the named instance, if not the default one")
    port: int | None = Field(None, ge=1, le=65535, description="the TCP port (overrides the instance lookup)")
    databases: list[str] = Field(min_length=1, description="the databases this instance holds, as the Backup BizTalk "
                                                           "Server job's view (admv_BackupDatabases) names them")
    jobs: list[str] = Field(default_factory=list,
                            description="jobs of sql.jobs in this instance's msdb whose name does not end with "
                                        "one of its databases")

    @field_validator("server")
    @classmethod
    def _server(cls, value: str) -> str:
        return check_address(value)

    @field_validator("databases")
    @classmethod
    def _databases(cls, value: list[str]) -> list[str]:
        return [check_database_name(v) for v in value]

    def label(self) -> str:
        return self.server + (f"\\{self.instance}" if self.instance else "") + (f",{self.port}" if self.port else "")


class Sql(_Model):
    server: HostName = Field(description="the SQL Server host (or the listener/alias name) of SSODB")
    instance: str | None = Field(None, min_length=1, description="the named instance, if not the default one")
    port: int | None = Field(None, ge=1, le=65535, description="the TCP port (overrides the instance lookup)")
    driver: Literal[DRIVERS] = Field(DRIVERS[0], description="the ODBC driver")  # type: ignore[valid-type]
    encrypt: bool = Field(True, description="Encrypt=yes")
    trust_server_certificate: bool = Field(False, description="TrustServerCertificate=yes (skips validation)")
    host_name_in_certificate: str | None = Field(
        None, description="the host name SQL Server's TLS certificate carries, when the suite connects by another "
                          "(ODBC Driver 18's HostnameInCertificate)")
    ca_file: str | None = Field(None, min_length=1,
                                description="the CA certificate (PEM) that issued SQL Server's certificate; FreeTDS "
                                            "validates the certificate only against a CA file (freetds.conf `ca file`)")
    auth: Literal["kerberos", "sql"] = Field("kerberos", description="kerberos (integrated) or sql (a SQL login)")
    server_spn: str | None = Field(
        None, description="the SPN of SQL Server's service account, MSSQLSvc/<fqdn>[:<port>|:<instance>], when it is "
                          "not the one the driver derives from sql.server (ODBC's ServerSPN; auth: kerberos)")
    username: str | None = Field(None, min_length=1, description="the SQL login (auth: sql)")
    password_env: str | None = Field(None, description="the variable holding the SQL login's password (auth: sql)")
    databases: Databases = Field(default_factory=Databases)
    instances: list[SqlInstance] = Field(
        default_factory=list, description="only where BizTalk's databases live on several SQL instances: each other "
                                          "instance with the databases it holds; sql.server holds the rest")
    jobs: list[str] = Field(default_factory=lambda: list(DEFAULT_JOBS), min_length=1,
                            description="the BizTalk SQL Agent jobs disabled for the change and re-enabled after")
    backup_job: str = Field("Backup BizTalk Server (BizTalkMgmtDb)", min_length=1,
                            description="the Backup BizTalk Server job (run by hand for a forced full backup)")
    continuous_jobs: list[str] = Field(
        default_factory=lambda: list(DEFAULT_CONTINUOUS_JOBS),
        description="jobs of sql.jobs that run continuously or are started by another job: expected to be "
                    "running before the change; phase 1 stops them after disabling them")

    @field_validator("server")
    @classmethod
    def _server(cls, value: str) -> str:
        return check_address(value)

    @field_validator("password_env")
    @classmethod
    def _env(cls, value: str | None) -> str | None:
        return None if value is None else check_env_name(value)

    @field_validator("host_name_in_certificate")
    @classmethod
    def _certificate_name(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not _DNS_NAME.match(value) or value.replace(".", "").isdigit():
            raise _fail("{name!r} is not a host name; write the DNS name the certificate is issued to (its subject "
                        "or a subject alternative name), such as sql1.corp.example — no port, instance, wildcard "
                        "or spaces", name=value)
        return value

    @field_validator("server_spn")
    @classmethod
    def _spn(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not _SPN.match(value):
            raise _fail("{spn!r} is not a SQL Server SPN; write MSSQLSvc/<fully qualified name>:<port> (or "
                        ":<instance name>), e.g. MSSQLSvc/sql1.corp.example:1433, as `setspn -L <service account>` "
                        "lists it", spn=value)
        return value

    @field_validator("jobs")
    @classmethod
    def _jobs(cls, value: list[str]) -> list[str]:
        for name in value:
            if not name.strip():
                raise _fail("a job name is empty; write each SQL Agent job's name as msdb.dbo.sysjobs shows it")
        dup = sorted({n for n in value if value.count(n) > 1})
        if dup:
            raise _fail("{jobs} listed more than once; list each job once", jobs=", ".join(repr(d) for d in dup))
        return value


class WinRM(_Model):
    transport: Literal["ntlm", "kerberos", "credssp", "basic"] = Field(
        "ntlm", description="how to authenticate: ntlm, kerberos, credssp or basic")
    https: bool = Field(True, description="WinRM over HTTPS (port 5986)")
    port: int | None = Field(None, ge=1, le=65535, description="default 5986 with https, 5985 without")
    server_cert_validation: Literal["validate", "ignore"] = Field(
        "validate", description="validate the hosts' HTTPS certificates, or ignore them (test estates only)")
    ca_trust_path: str | None = Field(None, min_length=1, description="a CA bundle (PEM) to validate against")
    connect_timeout: Seconds = Field(10.0, description="seconds to open a connection")
    read_timeout: Seconds = Field(60.0, description="seconds to wait for one HTTP answer (above operation_timeout)")
    operation_timeout: Seconds = Field(20.0, description="WS-Man OperationTimeout: seconds one Receive may wait")
    call_timeout: Seconds = Field(120.0, description="deadline of one remote call, added to the operation's own "
                                                      "wait (WinRM itself re-polls a slow command for ever)")
    username: str = Field(min_length=1, description="the account, DOMAIN\\user or user@domain")
    password_env: str | None = Field(None, description="the variable holding the account's password")
    allow_insecure: bool = Field(False, description="allow basic authentication over http (lab and test estates)")
    proxy: str | None = Field(None, min_length=1, description="an HTTP proxy for WinRM, http://host:port; default "
                                                             "none (HTTP(S)_PROXY in the environment is not used)")

    @field_validator("password_env")
    @classmethod
    def _env(cls, value: str | None) -> str | None:
        return None if value is None else check_env_name(value)

    @field_validator("proxy")
    @classmethod
    def _proxy(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urllib.parse.urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise _fail("{url!r} is not a proxy URL; write http://proxy.corp.example:8080 (or leave proxy out: "
                        "WinRM then goes straight to the hosts)", url=value)
        if parts.username or parts.password:
            # not echoed: it holds a password
            raise _fail("holds a user name or password; a secret may not sit in the inventory. Use a proxy "
                        "that authenticates this machine, or leave proxy out")
        return value

    @model_validator(mode="after")
    def _default_port(self) -> "WinRM":
        if self.port is None:
            self.port = 5986 if self.https else 5985
        return self


class SecretBackup(_Model):
    folder: WindowsPath = Field(description="the folder on the nodes where the master secret backup is written")
    reminder: str = Field(DEFAULT_REMINDER, min_length=1,
                          description="the backup's password reminder; {ticket} and {run} are filled in")
    copy_folder: str | None = Field(None, min_length=1,
                                    description="where the backup is copied on this machine; "
                                                "default reports-adjacent secret-backups/<run>")
    password_env: str = Field(description="the variable holding the master secret backup's password")

    @field_validator("folder")
    @classmethod
    def _check_folder(cls, value: str) -> str:
        return check_windows_absolute(value)
    @field_validator("password_env")
    @classmethod
    def _env(cls, value: str) -> str:
        return check_env_name(value)

    @field_validator("reminder")
    @classmethod
    def _reminder(cls, value: str) -> str:
        try:
            fields = {f for _, f, _, _ in string.Formatter().parse(value) if f is not None}
        except ValueError:
            fields = {"?"}
        unknown = fields - {"ticket", "run"}
        if unknown:
            raise _fail("{text!r} has placeholders other than {{ticket}} and {{run}}; write a literal brace as "
                        "{{{{ or }}}}", text=value)
        return value


class UpgradeOverride(_Model):
    """One node's differences from the default update settings."""

    mode: Literal["manual", "package"] | None = None
    package_path: WindowsPath | None = None
    arguments: str | None = None
    log_path: WindowsPath | None = None
    target_version: str | None = None

    @field_validator("package_path", "log_path")
    @classmethod
    def _paths(cls, value: str | None) -> str | None:
        return None if value is None else check_windows_absolute(value)

    @field_validator("target_version")
    @classmethod
    def _version(cls, value: str | None) -> str | None:
        return None if value is None else check_version(value)


class Upgrade(_Model):
    target_version: str = Field(description="the Enterprise SSO version every node must report after the update")
    mode: Literal["manual", "package"] = Field("manual", description="manual (an operator runs ESSO Setup) or "
                                                                     "package (a silent .msp/.exe the suite runs)")
    package_path: WindowsPath | None = Field(None, description="the update package on the node (mode: package)")
    arguments: str = Field("/quiet /norestart", description="the package's silent arguments")
    log_path: WindowsPath = Field(r"C:\Windows\Temp\entsso-update.log", description="the installer log on the node")
    nodes: dict[str, UpgradeOverride] = Field(default_factory=dict, description="per-node overrides")

    @field_validator("target_version")
    @classmethod
    def _version(cls, value: str) -> str:
        return check_version(value)

    @field_validator("package_path", "log_path")
    @classmethod
    def _paths(cls, value: str | None) -> str | None:
        return None if value is None else check_windows_absolute(value)


class NodeUpgrade(BaseModel):
    """The update settings in force for one node (the default merged with the node's overrides)."""

    model_config = ConfigDict(frozen=True)
    node: str
    target_version: str
    mode: str
    package_path: str | None
    arguments: str
    log_path: str


class Timeouts(_Model):
    service_start: Seconds = 180.0
    service_stop: Seconds = 180.0
    group_move: Seconds = 300.0
    backup_job: Seconds = 3600.0
    upgrade: Seconds = 3600.0
    reboot: Seconds = 900.0


class LabSql(_Model):
    sql_address: str
    sql_port: int = Field(ge=1, le=65535)


class Lab(_Model):
    """Written by the lab only: where its SQL endpoints and control endpoint listen."""

    sql_address: str
    sql_port: int = Field(ge=1, le=65535)
    control_url: str
    instances: list[LabSql] = Field(default_factory=list, description="the endpoint of each of sql.instances")


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


class Inventory(_Model):
    """The whole estate as the inventory file describes it."""

    environment: str = Field(min_length=1, description="the estate's name, shown in the report (PROD, TEST …)")
    cluster: Cluster = Field(description="the failover cluster that hosts the master secret server")
    biztalk_servers: list[Host] = Field(default_factory=list, description="the SSO servers that are not nodes")
    sql: Sql = Field(description="the SQL Server that holds SSODB and the BizTalk databases")
    winrm: WinRM = Field(description="how to reach the Windows hosts")
    secret_backup: SecretBackup = Field(description="where and how the master secret is backed up")
    upgrade: Upgrade = Field(description="the Enterprise SSO update: target version and how it is installed")
    timeouts: Timeouts = Field(default_factory=Timeouts, description="each step's deadline, in seconds")
    site_checks: str | None = Field(None, min_length=1, description="a folder of the site's own read-only checks "
                                    "(pytest files using testinfra's host fixture), relative to this file: run in the "
                                    "gate and again after the change (docs/site-checks.md)")
    lab: Lab | None = Field(None, description="written by the lab only")

    _path: Path = PrivateAttr(default=Path())
    _sha256: str = PrivateAttr(default="")
    _secrets: Secrets = PrivateAttr(default_factory=lambda: Secrets(None, None, None))

    @property
    def path(self) -> Path:
        return self._path

    @property
    def sha256(self) -> str:
        """SHA-256 of the file's bytes: the report records exactly which inventory a run used."""
        return self._sha256

    @property
    def secrets(self) -> Secrets:
        return self._secrets

    def hosts(self) -> list[Host]:
        """Every Windows host: the cluster nodes first, then the BizTalk servers."""
        return list(self.cluster.nodes) + list(self.biztalk_servers)

    def node(self, name: str) -> Host | None:
        return next((n for n in self.cluster.nodes if n.name.casefold() == name.casefold()), None)

    def upgrade_for(self, node: str) -> NodeUpgrade:
        """The update settings for `node`: the default with that node's overrides applied."""
        u = self.upgrade
        over = next((o for n, o in u.nodes.items() if n.casefold() == node.casefold()), UpgradeOverride())
        return NodeUpgrade(node=node, target_version=over.target_version or u.target_version,
                           mode=over.mode or u.mode, package_path=over.package_path or u.package_path,
                           arguments=over.arguments if over.arguments is not None else u.arguments,
                           log_path=over.log_path or u.log_path)

    def __str__(self) -> str:
        return (f"inventory {self.environment} ({self._path}): cluster {self.cluster.network_name} "
                f"[{', '.join(n.name for n in self.cluster.nodes)}], "
                f"BizTalk [{', '.join(b.name for b in self.biztalk_servers)}], SQL {self.sql.server}")


# --- loading ------------------------------------------------------------------------------------------
class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key written twice (PyYAML would silently keep the last one)."""


def _construct_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    seen: dict[Any, Any] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)  # type: ignore[no-untyped-call]
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"the key {key!r} is written twice in the same mapping; keep one", key_node.start_mark)
        seen[key] = True
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def check_inventory(path: str | os.PathLike[str] | None) -> Inventory:
    """Load and validate the inventory at `path` without reading any secret (python -m entsso.inventory).
    Each problem names its line in the file. Raises InventoryError."""
    if path is None or str(path) == "":
        raise InventoryError("no inventory given: pass --inventory FILE (see docs/inventory.md and "
                             "inventory/example.yml)")
    p = Path(path)
    where = str(path)
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        raise InventoryError(f"{where}: no such file; check the path given to --inventory "
                             f"(relative paths start at {Path.cwd()})") from None
    except IsADirectoryError:
        raise InventoryError(f"{where}: is a folder, not an inventory file; name the .yml file itself") from None
    except OSError as exc:
        raise InventoryError(f"{where}: cannot be read ({exc.strerror}); check its permissions") from None
    try:
        loader = _UniqueKeyLoader(data.decode("utf-8"))
        try:
            # composed first, constructed second (what yaml.load does): the nodes keep their line numbers
            root = loader.get_single_node()
            doc = loader.construct_document(root) if root is not None else None
        finally:
            loader.dispose()
    except UnicodeDecodeError:
        raise InventoryError(f"{where}: is not UTF-8 text; save it as UTF-8") from None
    except yaml.YAMLError as exc:
        raise InventoryError(f"{where}: is not valid YAML ({_yaml_problem(exc)}); check indentation and "
                             "quoting there (write Windows paths in single quotes: 'C:\\SSOBackup')") from None
    if not isinstance(doc, dict):
        kind = "empty" if doc is None else f"a {type(doc).__name__}"
        raise InventoryError(f"{where}: the top level is {kind}, not a mapping; start with keys such as "
                             "`environment:`, `cluster:`, `sql:` (see inventory/example.yml)")
    problems = _literal_secrets(doc, ())
    if problems:
        raise InventoryError(_join(where, problems, root))
    try:
        inventory = Inventory.model_validate(doc)
    except ValidationError as exc:
        raise InventoryError(_join(where, [_describe(e) for e in exc.errors(include_url=False)], root)) from None
    problems = _estate_rules(inventory)
    if problems:
        raise InventoryError(_join(where, problems, root))
    inventory._path = p
    inventory._sha256 = hashlib.sha256(data).hexdigest()
    return inventory


def load_inventory(path: str | os.PathLike[str] | None, prompt: bool = False) -> Inventory:
    """Load, validate and complete (secrets) the inventory at `path`. Raises InventoryError."""
    inventory = check_inventory(path)
    inventory._secrets = _read_secrets(inventory, str(path), prompt)
    return inventory


def _join(where: str, problems: list[str], root: yaml.Node | None = None) -> str:
    if root is not None:
        problems = [_with_line(root, p) for p in problems]
    if len(problems) == 1:
        return f"{where}: {problems[0]}"
    return f"{where}: {len(problems)} problems:\n" + "\n".join(f"  - {p}" for p in problems)


_PATH_PART = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def _with_line(root: yaml.Node, problem: str) -> str:
    """'line 12: cluster.primary: …': the line of the field a problem names (its nearest written parent when
    the field is missing), as yamllint and ansible-lint give it."""
    field = problem.split(": ", 1)[0]
    if " " in field or field == "(top level)":
        return problem
    parts: list[str | int] = [int(i) if i else k for k, i in _PATH_PART.findall(field)]
    line = _line_of(root, parts)
    return f"line {line}: {problem}" if line else problem


def _line_of(node: yaml.Node, parts: list[str | int]) -> int | None:
    """The 1-based line where the YAML node at `parts` (or the deepest part of it that exists) starts."""
    line: int | None = None
    for part in parts:
        if isinstance(node, yaml.MappingNode):
            match = next(((k, v) for k, v in node.value if isinstance(k, yaml.ScalarNode) and k.value == str(part)),
                         None)
            if match is None:
                return line or node.start_mark.line + 1
            line, node = match[0].start_mark.line + 1, match[1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            break
    return line


def _yaml_problem(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    if mark is not None:
        return f"line {mark.line + 1}, column {mark.column + 1}: {problem}"
    return problem


def _dotted(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif isinstance(part, str) and ("[" in part or part in ("str", "int", "dict", "list")):
            continue  # pydantic's union/validator tags, not a field
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


def _literal_secrets(doc: Any, loc: tuple[Any, ...]) -> list[str]:
    """Keys that carry a secret in the file itself; refused whatever their place."""
    found: list[str] = []
    if isinstance(doc, dict):
        for key, value in doc.items():
            here = loc + (key,)
            if isinstance(key, str) and _SECRET_KEY.match(key) and not key.lower().endswith("_env"):
                found.append(f"{_dotted(here)}: a secret written into the file is refused (inventories are copied, "
                             f"committed and attached to change records); remove it and name an environment "
                             f"variable instead, e.g. `password_env: ENTSSO_WINRM_PASSWORD`, then export that "
                             f"variable before the run")
            else:
                found += _literal_secrets(value, here)
    elif isinstance(doc, list):
        for i, item in enumerate(doc):
            found += _literal_secrets(item, loc + (i,))
    return found


def _unwrap(annotation: Any, part: Any) -> Any:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        models = [a for a in typing.get_args(annotation) if a is not type(None)]
        return _unwrap(models[0], part) if len(models) == 1 else annotation
    if origin is typing.Annotated:
        return _unwrap(typing.get_args(annotation)[0], part)
    return annotation


def _container_item(annotation: Any) -> Any:
    origin = typing.get_origin(annotation)
    if origin is list:
        return typing.get_args(annotation)[0]
    if origin is dict:
        return typing.get_args(annotation)[1]
    return annotation


def _fields_at(loc: tuple[Any, ...]) -> list[str]:
    current: Any = Inventory
    for part in loc:
        current = _unwrap(current, part)
        if isinstance(current, type) and issubclass(current, BaseModel):
            if not isinstance(part, str) or part not in current.model_fields:
                return []
            current = current.model_fields[part].annotation
        else:
            current = _unwrap(_container_item(current), part)
    current = _unwrap(current, None)
    current = _unwrap(_container_item(current), None) if not (
        isinstance(current, type) and issubclass(current, BaseModel)) else current
    if isinstance(current, type) and issubclass(current, BaseModel):
        return list(current.model_fields)
    return []


def _describe_field(loc: tuple[Any, ...]) -> str:
    parent, name = loc[:-1], loc[-1]
    current: Any = Inventory
    for part in parent:
        current = _unwrap(current, part)
        if isinstance(current, type) and issubclass(current, BaseModel):
            current = current.model_fields[part].annotation if part in current.model_fields else None
        else:
            current = _unwrap(_container_item(current), part)
    current = _unwrap(current, None)
    if isinstance(current, type) and issubclass(current, BaseModel) and name in current.model_fields:
        return current.model_fields[name].description or ""
    return ""


_TYPE_WORDS = {
    "int_type": "a whole number", "int_parsing": "a whole number", "int_from_float": "a whole number",
    "float_type": "a number of seconds", "float_parsing": "a number of seconds",
    "bool_type": "true or false", "bool_parsing": "true or false",
    "string_type": "text (put it in quotes)", "list_type": "a list", "dict_type": "a mapping",
    "model_type": "a mapping of keys", "model_attributes_type": "a mapping of keys",
}


def _describe(error: dict[str, Any]) -> str:
    loc = tuple(p for p in error["loc"] if not (isinstance(p, str) and "[" in p))
    field = _dotted(loc)
    kind = error["type"]
    given = error.get("input")
    shown = _shown(given)
    if kind == "missing":
        meaning = _describe_field(loc)
        return f"{field}: missing; add it" + (f" ({meaning})" if meaning else "")
    if kind == "extra_forbidden":
        key = str(loc[-1])
        known = _fields_at(loc[:-1])
        close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
        hint = f"did you mean `{close[0]}`?" if close else f"known keys here: {', '.join(known)}"
        return f"{field}: unknown key; {hint} (see docs/inventory.md)"
    if kind in _TYPE_WORDS:
        return f"{field}: {shown} is not {_TYPE_WORDS[kind]}; write {_TYPE_WORDS[kind]} here"
    if kind == "literal_error":
        expected = error.get("ctx", {}).get("expected", "")
        return f"{field}: {shown} is not one of {expected}; use one of them"
    if kind in ("greater_than", "greater_than_equal", "less_than_equal", "less_than"):
        ctx = error.get("ctx", {})
        bound = {"greater_than": f"greater than {ctx.get('gt')}", "greater_than_equal": f"at least {ctx.get('ge')}",
                 "less_than_equal": f"at most {ctx.get('le')}", "less_than": f"less than {ctx.get('lt')}"}[kind]
        what = "a positive number of seconds" if kind == "greater_than" and ctx.get("gt") == 0 else bound
        return f"{field}: {shown} is not allowed; it must be {what}"
    if kind in ("too_short", "string_too_short"):
        if isinstance(given, list):
            need = error.get("ctx", {}).get("min_length", 1)
            return f"{field}: the list is empty or too short; list at least {need}"
        return f"{field}: is empty; write a value"
    if kind == "inventory":
        return f"{field}: {error['msg']}"
    return f"{field}: {error['msg']} (given {shown})"


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _estate_rules(inv: Inventory) -> list[str]:
    """The rules that span fields: who is a node, what contradicts what."""
    problems: list[str] = []
    c = inv.cluster
    node_names = [n.name for n in c.nodes]
    folded = [n.casefold() for n in node_names]
    for i, name in enumerate(node_names):
        if folded.index(name.casefold()) != i:
            problems.append(f"cluster.nodes[{i}]: {name!r} is listed twice; list each node once")
    if c.network_name.casefold() in folded:
        problems.append(f"cluster.network_name: {c.network_name!r} is also a node's name; the network name is the "
                        "cluster's client access point (the MSS name), not a node")
    if c.primary is not None and c.primary.casefold() not in folded:
        problems.append(f"cluster.primary: {c.primary!r} is not one of the cluster's nodes "
                        f"({', '.join(node_names)}); set it to one of them or remove it")
    seen_bts: list[str] = []
    for i, b in enumerate(inv.biztalk_servers):
        if b.name.casefold() in folded:
            problems.append(f"biztalk_servers[{i}]: {b.name!r} is also a cluster node; list a host once: under "
                            "cluster.nodes if it is a node, under biztalk_servers if it is not")
        elif b.name.casefold() in seen_bts:
            problems.append(f"biztalk_servers[{i}]: {b.name!r} is listed twice; list each server once")
        seen_bts.append(b.name.casefold())
    s = inv.sql
    if s.auth == "sql":
        if s.username is None:
            problems.append("sql.username: missing; `auth: sql` logs in with a SQL login, so name it "
                            "(or use `auth: kerberos` for the operator's Windows account)")
        if s.password_env is None:
            problems.append("sql.password_env: missing; `auth: sql` needs the variable that holds the login's "
                            "password, e.g. `password_env: ENTSSO_SQL_PASSWORD`")
    else:
        if s.password_env is not None:
            problems.append(f"sql.password_env: set to {s.password_env!r} but `auth: kerberos` uses the operator's "
                            "Windows logon and no password; remove password_env, or set `auth: sql`")
        if s.username is not None:
            problems.append(f"sql.username: set to {s.username!r} but `auth: kerberos` uses the operator's Windows "
                            "logon; remove username, or set `auth: sql`")
    if s.host_name_in_certificate is not None:
        if s.driver != "ODBC Driver 18 for SQL Server":
            problems.append(f"sql.host_name_in_certificate: {s.driver} has no HostnameInCertificate (ODBC Driver 18 "
                            "and later only); set `driver: ODBC Driver 18 for SQL Server`, or remove it and set "
                            "sql.server to the name the certificate carries")
        elif s.trust_server_certificate:
            problems.append("sql.host_name_in_certificate: has no effect with `trust_server_certificate: true` (the "
                            "certificate is not checked at all); remove one of them — keep the name to have the "
                            "certificate checked")
    if s.server_spn is not None:
        if s.auth != "kerberos":
            problems.append("sql.server_spn: is for Kerberos only, and `auth: sql` logs in with a SQL login; remove "
                            "server_spn, or set `auth: kerberos`")
        elif s.driver == "FreeTDS":
            problems.append("sql.server_spn: FreeTDS has no ServerSPN; use `driver: ODBC Driver 18 for SQL Server` "
                            "(or 17), or remove server_spn and set sql.server to the name the SPN is registered for")
    if "continuous_jobs" in s.model_fields_set:
        for name in s.continuous_jobs:
            if name not in s.jobs:
                problems.append(f"sql.continuous_jobs: {name!r} is not in sql.jobs; list only jobs the change "
                                "disables (the gate expects those to be running)")
    seen_dbs = {s.databases.management.lower(): "sql.server"}
    seen_instances = {(s.server.lower(), (s.instance or "").lower(), s.port)}
    for i, other in enumerate(s.instances):
        where = f"sql.instances[{i}]"
        key = (other.server.lower(), (other.instance or "").lower(), other.port)
        if key in seen_instances:
            problems.append(f"{where}.server: {other.label()} is listed already (as sql.server or another instance); "
                            "list each SQL instance once, with all the databases it holds")
        seen_instances.add(key)
        for j, d in enumerate(other.databases):
            if d.lower() == s.databases.management.lower():
                problems.append(f"{where}.databases[{j}]: {d!r} is the management database, which is on sql.server "
                                "by definition (the Backup BizTalk Server job runs there); set sql.server to its "
                                "instance and list the other databases here")
            elif d.lower() == s.databases.msdb.lower():
                problems.append(f"{where}.databases[{j}]: every instance has its own msdb; list BizTalk's databases "
                                "here (and a job of another msdb under jobs)")
            elif d.lower() in seen_dbs:
                problems.append(f"{where}.databases[{j}]: {d!r} is already placed on {seen_dbs[d.lower()]}; a "
                                "database lives on one instance")
            else:
                seen_dbs[d.lower()] = where
        for j, job in enumerate(other.jobs):
            if job not in s.jobs:
                problems.append(f"{where}.jobs[{j}]: {job!r} is not in sql.jobs; list it there too")
    placed_jobs = [j.lower() for o in s.instances for j in o.jobs]
    for job in sorted({j for j in placed_jobs if placed_jobs.count(j) > 1}):
        problems.append(f"sql.instances: the job {job!r} is placed on more than one instance; a job is in one msdb")
    if inv.lab is not None and len(inv.lab.instances) != len(s.instances):
        problems.append(f"lab.instances: {len(inv.lab.instances)} endpoint(s) for {len(s.instances)} sql.instances; "
                        "the lab writes one per instance")
    if s.backup_job not in s.jobs:
        problems.append(f"sql.backup_job: {s.backup_job!r} is not in sql.jobs; list it there too (the change "
                        "disables it with the other jobs and runs it by hand for the forced full backup)")
    w = inv.winrm
    if w.transport == "basic" and not w.https and not w.allow_insecure:
        problems.append("winrm.transport: basic over http sends the password and every command in clear text; "
                        "use `https: true`, or ntlm/kerberos (which encrypt messages over http), or — for a lab or "
                        "test estate only — set `winrm.allow_insecure: true`")
    if w.password_env is None and w.transport != "kerberos":
        problems.append(f"winrm.password_env: missing; {w.transport} needs the password of {w.username!r}: "
                        "name the variable that holds it, e.g. `password_env: ENTSSO_WINRM_PASSWORD`")
    if w.read_timeout <= w.operation_timeout:
        problems.append(f"winrm.read_timeout: {w.read_timeout:g} must be greater than winrm.operation_timeout "
                        f"({w.operation_timeout:g}) or every long command fails; raise it")
    u = inv.upgrade
    for name in u.nodes:
        if name.casefold() not in folded:
            problems.append(f"upgrade.nodes.{name}: {name!r} is not one of the cluster's nodes "
                            f"({', '.join(node_names)}); only nodes are upgraded by this suite — fix the name or "
                            "remove the override")
    if u.mode == "package" and u.package_path is None and not all(
            (u.nodes.get(n) or UpgradeOverride()).package_path or (u.nodes.get(n) or UpgradeOverride()).mode == "manual"
            for n in node_names):
        problems.append("upgrade.package_path: missing; `mode: package` runs the update package on each node, so "
                        "give its path on the nodes (e.g. 'C:\\Updates\\SSO\\EntSSO-CU.msp') or use `mode: manual`")
    for name, over in u.nodes.items():
        merged_mode = over.mode or u.mode
        if merged_mode == "package" and over.mode == "package" and not (over.package_path or u.package_path):
            problems.append(f"upgrade.nodes.{name}.package_path: missing; {name} uses `mode: package`, so give "
                            "the update package's path on that node (or set upgrade.package_path for all)")
    return problems


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


def outline(inv: Inventory) -> str:
    """The plan the inventory describes, in the order the change goes: what a reviewer checks before a run."""
    c, s, t = inv.cluster, inv.sql, inv.timeouts
    lines = [f"Estate {inv.environment} ({inv.path}, SHA-256 {inv.sha256[:12]}…)",
             f"Cluster {c.network_name}: group {c.group!r} with resource {c.resource!r}; primary "
             f"{c.primary or '(the group’s owner when the change starts)'}",
             "Nodes, upgraded one at a time to Enterprise SSO:"]
    for n in c.nodes:
        u = inv.upgrade_for(n.name)
        how = ("by an operator running ESSO Setup (the suite waits for the version)" if u.mode == "manual"
               else f"by the update package {u.package_path} {u.arguments}".rstrip() + f" (log {u.log_path})")
        where = f" at {n.address}" if n.address != n.name else ""
        lines.append(f"  {n.name}{where}: {u.target_version}, {how}")
    lines.append("BizTalk servers (silenced, then put back): "
                 + (", ".join(b.name + (f" at {b.address}" if b.address != b.name else "")
                              for b in inv.biztalk_servers) or "none"))
    auth = f"SQL login {s.username}" if s.auth == "sql" else "the operator's Windows logon (Kerberos)"
    lines.append(f"SQL Server {s.server}{chr(92) + s.instance if s.instance else ''}"
                 f"{':' + str(s.port) if s.port else ''} as {auth}, driver {s.driver}; databases "
                 f"{s.databases.ssodb}, {s.databases.management}, {s.databases.msdb}")
    for other in s.instances:
        lines.append(f"  and SQL Server {other.label()}: databases {', '.join(other.databases)}"
                     + (f"; jobs {', '.join(other.jobs)}" if other.jobs else "")
                     + " (each job runs on the instance of the database its name ends with)")
    lines.append(f"SQL Agent jobs disabled for the change and enabled again after ({len(s.jobs)}):")
    for job in s.jobs:
        notes = [w for w, on in (("the forced full backup", job == s.backup_job),
                                 ("runs continuously: stopped after it is disabled", job in s.continuous_jobs)) if on]
        lines.append(f"  {job}" + (f" ({'; '.join(notes)})" if notes else ""))
    w = inv.winrm
    lines.append(f"WinRM: {w.transport} as {w.username} over {'https' if w.https else 'http'} port {w.port}"
                 + ("" if not w.https else f", certificates {'validated' if w.server_cert_validation == 'validate' else 'NOT validated'}"))
    lines.append(f"Master secret backup: written to {inv.secret_backup.folder} on the MSS node, copied to this "
                 f"machine ({inv.secret_backup.copy_folder or 'secret-backups/<run> beside reports/'})")
    lines.append(f"Timeouts: service start {t.service_start:g} s, service stop {t.service_stop:g} s, group move "
                 f"{t.group_move:g} s, backup job {t.backup_job:g} s, upgrade {t.upgrade:g} s per node, "
                 f"reboot {t.reboot:g} s")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m entsso.inventory",
        description="Check an inventory file without connecting to anything and without its secrets: list each "
                    "problem with its line, the environment variables a run will need (set or not, never their "
                    "values) and, when it is valid, the outline of the change it describes.")
    parser.add_argument("file", metavar="FILE", help="the inventory (YAML), e.g. inventory/example.yml")
    args = parser.parse_args(argv)
    try:
        inv = check_inventory(args.file)
    except InventoryError as exc:
        print(exc, file=sys.stderr)
        return 2
    print(outline(inv))
    needed = needed_variables(inv)
    print("Secrets a run reads from the environment (or asks for on a terminal):")
    for v in needed:
        print(f"  {v.variable}: {v.what} ({v.field}) — {'set' if v.is_set else 'NOT set'}")
    if inv.sql.auth == "kerberos" or inv.winrm.transport == "kerberos":
        print("  (Kerberos logons use the operator's ticket: check it with klist)")
    missing = [v.variable for v in needed if not v.is_set]
    print(f"{inv.path}: valid" + (f"; before a run, export {', '.join(missing)} (or run on a terminal to be asked)"
                                 if missing else ""))
    return 0


if __name__ == "__main__":  # python -m entsso.inventory FILE: check an inventory without running anything
    sys.exit(main())
