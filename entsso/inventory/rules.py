"""The inventory's rules that span fields: who is a node, what contradicts what."""
from __future__ import annotations

from entsso.inventory.schema import Inventory, UpgradeOverride


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
