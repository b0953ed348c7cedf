"""The inventory's rules that span fields: who is a node, what contradicts what.

Each rule is one function that yields its problems. `estate_rules` runs them in the order of RULES, which
is the order of the messages an operator reads: keep it when adding one.
"""
from __future__ import annotations

import sys
from collections.abc import Callable, Iterator

from entsso.inventory.schema import Inventory, Sql, SqlInstance, UpgradeOverride

Rule = Callable[[Inventory], Iterator[str]]


def _node_names(inv: Inventory) -> list[str]:
    return [n.name for n in inv.cluster.nodes]


def _folded_node_names(inv: Inventory) -> list[str]:
    return [n.casefold() for n in _node_names(inv)]


# --- the cluster and the other SSO servers ---------------------------------------------------------------
def nodes_are_listed_once(inv: Inventory) -> Iterator[str]:
    folded = _folded_node_names(inv)
    for i, name in enumerate(_node_names(inv)):
        if folded.index(name.casefold()) != i:
            yield f"cluster.nodes[{i}]: {name!r} is listed twice; list each node once"


def network_name_is_not_a_node(inv: Inventory) -> Iterator[str]:
    c = inv.cluster
    if c.network_name.casefold() in _folded_node_names(inv):
        yield (f"cluster.network_name: {c.network_name!r} is also a node's name; the network name is the "
               "cluster's client access point (the MSS name), not a node")


def primary_is_a_node(inv: Inventory) -> Iterator[str]:
    c = inv.cluster
    if c.primary is not None and c.primary.casefold() not in _folded_node_names(inv):
        yield (f"cluster.primary: {c.primary!r} is not one of the cluster's nodes "
               f"({', '.join(_node_names(inv))}); set it to one of them or remove it")


def biztalk_servers_are_listed_once_and_not_as_nodes(inv: Inventory) -> Iterator[str]:
    # one pass, so each server's problem comes in the order the servers are listed
    folded = _folded_node_names(inv)
    seen: list[str] = []
    for i, b in enumerate(inv.biztalk_servers):
        if b.name.casefold() in folded:
            yield (f"biztalk_servers[{i}]: {b.name!r} is also a cluster node; list a host once: under "
                   "cluster.nodes if it is a node, under biztalk_servers if it is not")
        elif b.name.casefold() in seen:
            yield f"biztalk_servers[{i}]: {b.name!r} is listed twice; list each server once"
        seen.append(b.name.casefold())


# --- SQL Server: the login and the TLS and Kerberos names ------------------------------------------------
def sql_login_is_named_for_auth_sql(inv: Inventory) -> Iterator[str]:
    s = inv.sql
    if s.auth != "sql":
        return
    if s.username is None:
        yield ("sql.username: missing; `auth: sql` logs in with a SQL login, so name it "
               "(or use `auth: kerberos` for the operator's Windows account)")
    if s.password_env is None:
        yield ("sql.password_env: missing; `auth: sql` needs the variable that holds the login's "
               "password, e.g. `password_env: ENTSSO_SQL_PASSWORD`")


def no_sql_login_for_auth_kerberos(inv: Inventory) -> Iterator[str]:
    s = inv.sql
    if s.auth == "sql":
        return
    if s.password_env is not None:
        yield (f"sql.password_env: set to {s.password_env!r} but `auth: kerberos` uses the operator's "
               "Windows logon and no password; remove password_env, or set `auth: sql`")
    if s.username is not None:
        yield (f"sql.username: set to {s.username!r} but `auth: kerberos` uses the operator's Windows "
               "logon; remove username, or set `auth: sql`")


def certificate_name_is_used(inv: Inventory) -> Iterator[str]:
    s = inv.sql
    if s.host_name_in_certificate is None:
        return
    if s.driver != "ODBC Driver 18 for SQL Server":
        yield (f"sql.host_name_in_certificate: {s.driver} has no HostnameInCertificate (ODBC Driver 18 "
               "and later only); set `driver: ODBC Driver 18 for SQL Server`, or remove it and set "
               "sql.server to the name the certificate carries")
    elif s.trust_server_certificate:
        yield ("sql.host_name_in_certificate: has no effect with `trust_server_certificate: true` (the "
               "certificate is not checked at all); remove one of them — keep the name to have the "
               "certificate checked")


def strict_encryption_has_a_driver(inv: Inventory) -> Iterator[str]:
    s = inv.sql
    if s.encrypt != "strict":
        return
    if s.driver != "ODBC Driver 18 for SQL Server":
        yield (f"sql.encrypt: strict (TDS 8.0) needs ODBC Driver 18 for SQL Server; {s.driver} "
               + ("(1.3, as Debian 12 and EPEL ship it) has no TDS 8.0" if s.driver == "FreeTDS" else "has none")
               + ": set `driver: ODBC Driver 18 for SQL Server`, or `encrypt: true`")
    elif s.trust_server_certificate:
        yield ("sql.encrypt: strict always validates the certificate, so `trust_server_certificate: true` "
               "means nothing with it; remove trust_server_certificate (and name the CA: sql.ca_file)")


def ca_file_has_a_meaning(inv: Inventory) -> Iterator[str]:
    s = inv.sql
    if s.ca_file is None:
        return
    if s.trust_server_certificate:
        yield ("sql.ca_file: has no effect with `trust_server_certificate: true` (the certificate is not "
               "checked at all); remove one of them — keep ca_file to have the certificate checked")
    elif sys.platform == "win32" and s.driver != "FreeTDS":
        yield (f"sql.ca_file: {s.driver} on Windows validates against Windows' certificate store only; "
               "import the CA there (Import-Certificate -FilePath <ca.pem> -CertStoreLocation "
               "Cert:\\LocalMachine\\Root) and remove sql.ca_file")


def server_spn_is_used(inv: Inventory) -> Iterator[str]:
    s = inv.sql
    if s.server_spn is None:
        return
    if s.auth != "kerberos":
        yield ("sql.server_spn: is for Kerberos only, and `auth: sql` logs in with a SQL login; remove "
               "server_spn, or set `auth: kerberos`")
    elif s.driver == "FreeTDS":
        yield ("sql.server_spn: FreeTDS has no ServerSPN; use `driver: ODBC Driver 18 for SQL Server` "
               "(or 17), or remove server_spn and set sql.server to the name the SPN is registered for")


# --- SQL Server: the jobs and the other instances --------------------------------------------------------
def continuous_jobs_are_in_jobs(inv: Inventory) -> Iterator[str]:
    s = inv.sql
    if "continuous_jobs" not in s.model_fields_set:
        return
    for name in s.continuous_jobs:
        if name not in s.jobs:
            yield (f"sql.continuous_jobs: {name!r} is not in sql.jobs; list only jobs the change "
                   "disables (the gate expects those to be running)")


def _instance_key(sql: Sql | SqlInstance) -> tuple[str, str, int | None]:
    return sql.server.lower(), (sql.instance or "").lower(), sql.port


def sql_instances_are_listed_once_with_their_own_databases_and_jobs(inv: Inventory) -> Iterator[str]:
    # one pass, so each instance's problems come together, in the order the instances are listed
    s = inv.sql
    placed = {s.databases.management.lower(): "sql.server"}
    seen = {_instance_key(s)}
    for i, other in enumerate(s.instances):
        where = f"sql.instances[{i}]"
        key = _instance_key(other)
        if key in seen:
            yield (f"{where}.server: {other.label()} is listed already (as sql.server or another instance); "
                   "list each SQL instance once, with all the databases it holds")
        seen.add(key)
        yield from _databases_are_placed_once(s, where, other, placed)
        yield from _instance_jobs_are_in_jobs(s, where, other)


def _databases_are_placed_once(s: Sql, where: str, other: SqlInstance, placed: dict[str, str]) -> Iterator[str]:
    """The databases of instance `other` (at `where`); `placed` maps each database placed so far to its place."""
    for j, d in enumerate(other.databases):
        if d.lower() == s.databases.management.lower():
            yield (f"{where}.databases[{j}]: {d!r} is the management database, which is on sql.server "
                   "by definition (the Backup BizTalk Server job runs there); set sql.server to its "
                   "instance and list the other databases here")
        elif d.lower() == s.databases.msdb.lower():
            yield (f"{where}.databases[{j}]: every instance has its own msdb; list BizTalk's databases "
                   "here (and a job of another msdb under jobs)")
        elif d.lower() in placed:
            yield (f"{where}.databases[{j}]: {d!r} is already placed on {placed[d.lower()]}; a "
                   "database lives on one instance")
        else:
            placed[d.lower()] = where


def _instance_jobs_are_in_jobs(s: Sql, where: str, other: SqlInstance) -> Iterator[str]:
    for j, job in enumerate(other.jobs):
        if job not in s.jobs:
            yield f"{where}.jobs[{j}]: {job!r} is not in sql.jobs; list it there too"


def jobs_are_placed_on_one_instance(inv: Inventory) -> Iterator[str]:
    placed_jobs = [j.lower() for o in inv.sql.instances for j in o.jobs]
    for job in sorted({j for j in placed_jobs if placed_jobs.count(j) > 1}):
        yield f"sql.instances: the job {job!r} is placed on more than one instance; a job is in one msdb"


def lab_has_an_endpoint_per_instance(inv: Inventory) -> Iterator[str]:
    s = inv.sql
    if inv.lab is not None and len(inv.lab.instances) != len(s.instances):
        yield (f"lab.instances: {len(inv.lab.instances)} endpoint(s) for {len(s.instances)} sql.instances; "
               "the lab writes one per instance")


def backup_job_is_in_jobs(inv: Inventory) -> Iterator[str]:
    s = inv.sql
    if s.backup_job not in s.jobs:
        yield (f"sql.backup_job: {s.backup_job!r} is not in sql.jobs; list it there too (the change "
               "disables it with the other jobs and runs it by hand for the forced full backup)")


# --- WinRM --------------------------------------------------------------------------------------------------
def winrm_basic_is_not_in_clear_text(inv: Inventory) -> Iterator[str]:
    w = inv.winrm
    if w.transport == "basic" and not w.https and not w.allow_insecure:
        yield ("winrm.transport: basic over http sends the password and every command in clear text; "
               "use `https: true`, or ntlm/kerberos (which encrypt messages over http), or — for a lab or "
               "test estate only — set `winrm.allow_insecure: true`")


def winrm_password_is_named(inv: Inventory) -> Iterator[str]:
    w = inv.winrm
    if w.password_env is None and w.transport != "kerberos":
        yield (f"winrm.password_env: missing; {w.transport} needs the password of {w.username!r}: "
               "name the variable that holds it, e.g. `password_env: ENTSSO_WINRM_PASSWORD`")


def winrm_read_timeout_outlasts_operation_timeout(inv: Inventory) -> Iterator[str]:
    w = inv.winrm
    if w.read_timeout <= w.operation_timeout:
        yield (f"winrm.read_timeout: {w.read_timeout:g} must be greater than winrm.operation_timeout "
               f"({w.operation_timeout:g}) or every long command fails; raise it")


# --- the update -------------------------------------------------------------------------------------------
def upgrade_overrides_name_nodes(inv: Inventory) -> Iterator[str]:
    folded = _folded_node_names(inv)
    for name in inv.upgrade.nodes:
        if name.casefold() not in folded:
            yield (f"upgrade.nodes.{name}: {name!r} is not one of the cluster's nodes "
                   f"({', '.join(_node_names(inv))}); only nodes are upgraded by this suite — fix the name or "
                   "remove the override")


def package_mode_has_a_package(inv: Inventory) -> Iterator[str]:
    # needed unless every node has its own package or is updated by hand (overrides keyed as written)
    u = inv.upgrade
    if u.mode != "package" or u.package_path is not None:
        return
    overrides = [u.nodes.get(n) or UpgradeOverride() for n in _node_names(inv)]
    if not all(o.package_path or o.mode == "manual" for o in overrides):
        yield ("upgrade.package_path: missing; `mode: package` runs the update package on each node, so "
               "give its path on the nodes (e.g. 'C:\\Updates\\SSO\\EntSSO-CU.msp') or use `mode: manual`")


def node_package_mode_has_a_package(inv: Inventory) -> Iterator[str]:
    u = inv.upgrade
    for name, over in u.nodes.items():
        if over.mode == "package" and not (over.package_path or u.package_path):
            yield (f"upgrade.nodes.{name}.package_path: missing; {name} uses `mode: package`, so give "
                   "the update package's path on that node (or set upgrade.package_path for all)")


RULES: tuple[Rule, ...] = (
    nodes_are_listed_once,
    network_name_is_not_a_node,
    primary_is_a_node,
    biztalk_servers_are_listed_once_and_not_as_nodes,
    sql_login_is_named_for_auth_sql,
    no_sql_login_for_auth_kerberos,
    certificate_name_is_used,
    strict_encryption_has_a_driver,
    ca_file_has_a_meaning,
    server_spn_is_used,
    continuous_jobs_are_in_jobs,
    sql_instances_are_listed_once_with_their_own_databases_and_jobs,
    jobs_are_placed_on_one_instance,
    lab_has_an_endpoint_per_instance,
    backup_job_is_in_jobs,
    winrm_basic_is_not_in_clear_text,
    winrm_password_is_named,
    winrm_read_timeout_outlasts_operation_timeout,
    upgrade_overrides_name_nodes,
    package_mode_has_a_package,
    node_package_mode_has_a_package,
)


def estate_rules(inv: Inventory) -> list[str]:
    """The problems every rule finds in `inv`, rule by rule in the order of RULES."""
    return [problem for rule in RULES for problem in rule(inv)]
