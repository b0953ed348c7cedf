"""The inventory document that points the suite at a running lab (written by `Lab.write_inventory`).

It says what an operator's inventory would say about the scenario's estate — the cluster, the BizTalk
servers, SQL Server, WinRM, the update — plus a `lab:` section with where the lab's SQL and control
endpoints listen. Secrets stay out of it: the launcher exports them under the variable names below.
"""
from __future__ import annotations

from typing import Any

WINRM_PASSWORD_ENV = "ENTSSO_WINRM_PASSWORD"
SQL_PASSWORD_ENV = "ENTSSO_SQL_PASSWORD"
SECRET_PASSWORD_ENV = "ENTSSO_SECRET_PASSWORD"

# Estate seconds are divided by the lab's speed, so these are generous for the lab yet still short
# enough that a hung step fails a selftest in minutes rather than hours.
LAB_TIMEOUTS = {"service_start": 120, "service_stop": 120, "group_move": 180, "backup_job": 600,
                "upgrade": 900, "reboot": 600}
BACKUP_JOB_PREFIX = "Backup BizTalk Server"


def lab_inventory(lab: Any, ca_trust_path: str | None = None, sql_ca_file: str | None = None) -> dict[str, Any]:
    """The inventory (a plain dict, to be dumped as YAML) for `lab` (entsso.lab.server.Lab); WinRM over
    HTTPS validated against `ca_trust_path` (the lab CA's certificate), or over http without one."""
    sc: dict[str, Any] = lab.scenario
    cluster = sc.get("cluster") or {}
    sso = sc.get("sso") or {}
    sql = sc.get("sql") or {}
    winrm = sc.get("winrm") or {}
    upgrade = sc.get("upgrade") or {}
    package = upgrade.get("package") or {}
    node_names = [n["name"] if isinstance(n, dict) else str(n) for n in cluster.get("nodes") or []]
    bts_names = [b["name"] for b in (sc.get("biztalk") or {}).get("servers") or []]
    jobs = list(sql.get("jobs") or {})  # the scenario maps job name -> enabled before the change
    backup_job = next((j for j in jobs if j.startswith(BACKUP_JOB_PREFIX)), "Backup BizTalk Server (BizTalkMgmtDb)")

    def host(name: str) -> dict[str, str]:
        return {"name": name, "address": lab.addresses[name]}

    overrides: dict[str, dict[str, Any]] = {}
    for node, over in (upgrade.get("nodes") or {}).items():
        # only the keys the inventory knows: exit_code and the like are the lab's own behaviour
        entry = {key: over[key] for key in ("mode", "target_version") if key in over}
        if "path" in over or "package_path" in over:
            entry["package_path"] = over.get("package_path", over.get("path"))
        if "arguments" in over:
            entry["arguments"] = over["arguments"]
        if entry:
            overrides[node] = entry

    upgrade_doc: dict[str, Any] = {"target_version": str(upgrade.get("target_version", "10.0.2000.0")),
                                   "mode": upgrade.get("mode", "manual")}
    if package.get("path"):
        upgrade_doc["package_path"] = package["path"]
    if package.get("arguments") is not None:
        upgrade_doc["arguments"] = package["arguments"]
    upgrade_doc["nodes"] = overrides

    sql_doc: dict[str, Any] = {
        "server": sql.get("server", "SQL1"),
        "instance": sql.get("instance"),
        # reached as an estate's: pyodbc and FreeTDS (or the scenario's sql.driver: Microsoft's ODBC Driver
        # 18, with sql.encrypt: strict for TDS 8.0), TLS validated against the lab's CA
        "driver": sql.get("driver", "FreeTDS"),
        "encrypt": sql.get("encrypt", True),
        "ca_file": sql_ca_file or str(lab.ca_path),
        "auth": "sql",
        "username": lab.sql_username,
        "password_env": SQL_PASSWORD_ENV,
        "jobs": jobs,
        "backup_job": backup_job,
    }
    names = sql.get("database_names") or {}
    if names:
        # the estate's names of SSODB and the management database, as the lab's engines serve them
        sql_doc["databases"] = {key: names[key] for key in ("ssodb", "management") if key in names}
    lab_doc: dict[str, Any] = {"sql_address": lab.sql_address, "sql_port": lab.sql_endpoint.port,
                               "control_url": lab.control_url}
    second = sql.get("second_instance")
    if second:
        # what an operator writes for an estate whose SSODB (or MessageBox) is on another instance: that
        # instance and the databases it holds; its jobs follow from their names
        # a database the scenario names by its default name, as the estate names it
        estate_name = {"ssodb": names.get("ssodb", "SSODB"), "biztalkmgmtdb": names.get("management", "BizTalkMgmtDb")}
        other = {"server": second.get("server", "SQL2"),
                 "databases": [estate_name.get(str(d).lower(), str(d)) for d in second.get("databases") or ["SSODB"]]}
        if second.get("instance"):
            other["instance"] = second["instance"]
        sql_doc["instances"] = [other]
        lab_doc["instances"] = [{"sql_address": lab.sql_addresses[1], "sql_port": lab.sql_endpoints[1].port}]
    transport = winrm.get("transport", "ntlm")
    winrm_doc: dict[str, Any] = {
        "transport": transport,
        "https": ca_trust_path is not None,  # as every real inventory: https, certificates validated
        "port": lab.winrm_port,
        "username": lab.username,
        "password_env": WINRM_PASSWORD_ENV,
        "connect_timeout": 5,
        "read_timeout": 30,
        "operation_timeout": 10,
        # real seconds on top of an operation's own timeout_sec; a scenario may shorten it (hang faults)
        "call_timeout": winrm.get("call_timeout", 60),
        # real seconds within which a call safe to repeat is tried again after a lost connection: short, as
        # the lab's estate runs fast (a host cut for good costs each such call this long before it stops)
        "retry_window": winrm.get("retry_window", 3),
    }
    if ca_trust_path is not None:
        winrm_doc["server_cert_validation"] = "validate"
        winrm_doc["ca_trust_path"] = ca_trust_path
    elif transport == "basic":
        winrm_doc["allow_insecure"] = True  # loopback only; the report flags it
    return {
        "environment": str(sc.get("environment") or f"LAB ({sc.get('name', 'default')})"),
        "cluster": {
            "network_name": cluster.get("name", "SSOCLUSTER"),
            "group": cluster.get("group", "SSO"),
            "resource": cluster.get("resource", "ENTSSO"),
            "nodes": [host(n) for n in node_names],
            "primary": cluster.get("owner"),
        },
        "biztalk_servers": [host(b) for b in bts_names],
        "sql": sql_doc,
        "winrm": winrm_doc,
        "secret_backup": {
            "folder": sso.get("backup_folder", "C:\\SSOBackup"),
            "password_env": SECRET_PASSWORD_ENV,
        },
        "upgrade": upgrade_doc,
        "timeouts": {**LAB_TIMEOUTS, **(sc.get("timeouts") or {})},  # a scenario may shorten them
        "lab": lab_doc,
    }
