"""The inventory's schema: the pydantic models of an estate, their defaults and each field's own checks.

Each mistake in a field is a PydanticCustomError whose message is ours, word for word; the rules that span
fields are in rules.py, the file's loading in load.py.
"""
from __future__ import annotations

import ipaddress
import re
import string
import typing
import urllib.parse
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator
from pydantic_core import PydanticCustomError

from entsso.inventory.secrets import Secrets

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
Driver = Literal["ODBC Driver 18 for SQL Server", "ODBC Driver 17 for SQL Server", "FreeTDS"]
DRIVERS: tuple[Driver, ...] = typing.get_args(Driver)

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
    def _default_address(self) -> Host:
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
    # default= by keyword: mypy reads a pydantic model as a dataclass_transform and sees only a keyword
    # default, so Sql's default_factory=Databases type-checks as a call with no arguments
    ssodb: str = Field(default="SSODB", min_length=1, description="the SSO database")
    management: str = Field(default="BizTalkMgmtDb", min_length=1, description="the BizTalk management database")
    msdb: str = Field(default="msdb", min_length=1, description="SQL Server Agent's database")

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
    driver: Driver = Field(DRIVERS[0], description="the ODBC driver")
    encrypt: bool | Literal["strict"] = Field(
        True, description="true: Encrypt=yes (TLS inside TDS 7.x); strict: Encrypt=strict, TDS 8.0 (TLS before "
                          "anything of TDS, SQL Server 2022; ODBC Driver 18 only); false: Encrypt=no")
    trust_server_certificate: bool = Field(False, description="TrustServerCertificate=yes (skips validation)")
    host_name_in_certificate: str | None = Field(
        None, description="the host name SQL Server's TLS certificate carries, when the suite connects by another "
                          "(ODBC Driver 18's HostnameInCertificate)")
    ca_file: str | None = Field(None, min_length=1,
                                description="the CA certificate (PEM) that issued SQL Server's certificate, trusted by "
                                            "the run in addition to the machine's trust: FreeTDS through freetds.conf "
                                            "`ca file`, Microsoft's driver on Linux through OpenSSL's SSL_CERT_FILE; "
                                            "refused on Windows (import the CA into the machine's Root store)")
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
    retry_window: Seconds = Field(30.0, description="seconds within which a call safe to repeat that lost its "
                                                     "connection is tried again (docs/operations.md, Retries); 0: "
                                                     "never")
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
    def _default_port(self) -> WinRM:
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
