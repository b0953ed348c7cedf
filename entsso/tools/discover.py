"""python -m entsso.discover: read a live estate (read-only) and write a draft inventory, with comments
on what it cannot know, and a twin lab scenario shaped like the estate for a rehearsal.

What it reads, with the suite's own remote layer (entsso.remote.winrm) and SQL client (entsso.remote.sql):
- from a cluster node (the cluster name, which DNS points at the node owning it): the cluster, its nodes
  and its Generic Service resources (Get-ClusterSsoRoles), of which the one running ENTSSO is the MSS
  resource, and the group that holds it;
- from SQL Server: the group's BizTalk servers (BizTalkMgmtDb's adm_Server: Microsoft publishes no
  schema for it, docs/domain-notes.md), the SQL Agent jobs (msdb.dbo.sysjobs) and SSODB's secret server;
- from every node and BizTalk server, one Get-HostFacts each: the SSO version and tools server, whether
  it holds the master secret, ENTSSO and Rule Engine Update, the host instances and their states.

It changes nothing (every call is a read: Get-ClusterSsoRoles, Get-HostFacts, SELECTs).

What it cannot know, and says so in the inventory's comments: the update's target version and how it is
installed (manual Setup or a package, its path), the secret backup folder (it proposes the default and
the gate checks it), the passwords (only the variables' names), the timeouts, and which of the jobs it
found the change must silence (every job that names a BizTalk database; check them).
"""
from __future__ import annotations

import argparse
import getpass
import os
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from entsso.estate import snapshot as estate
from entsso.domain import sso
from entsso.remote import tsql
from entsso.remote.sql import DRIVERS, SqlError, SqlServer, SqlSettings
from entsso.remote.winrm import RemoteError, WindowsHost, WinRMSettings

ENTSSO = "ENTSSO"
BIZTALK_DATABASES = ("BizTalkMgmtDb", "BizTalkMsgBoxDb", "BizTalkDTADb", "BizTalkRuleEngineDb", "BAMPrimaryImport",
                     "BAMArchive", "BAMAlertsApplication", "SSODB")


class DiscoveryError(RuntimeError):
    """Discovery could not read what it needs: the message says what and what to check."""


@dataclass
class Host:
    name: str
    role: str  # node | biztalk
    address: str | None = None
    reachable: bool = True
    error: str | None = None
    version: str | None = None
    tools_server: str | None = None
    holds_secret: bool | None = None
    entsso: str | None = None
    rule_engine: str | None = None
    node_state: str | None = None
    package_present: bool = False  # the --package-path file is on this node
    host_instances: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Estate:
    cluster_name: str
    group: str
    resource: str
    owner: str | None
    group_state: str | None
    hosts: list[Host]
    sql_server: str
    sql_instance: str | None
    jobs: dict[str, bool]
    secret_server: str | None
    notes: list[str] = field(default_factory=list)
    adapter_handlers: list[dict[str, str]] = field(default_factory=list)  # kind, adapter, host (BizTalkMgmtDb)

    @property
    def nodes(self) -> list[Host]:
        return [h for h in self.hosts if h.role == "node"]

    @property
    def biztalk_servers(self) -> list[Host]:
        return [h for h in self.hosts if h.role == "biztalk"]

    def biztalk_jobs(self) -> dict[str, bool]:
        """The jobs BizTalk's configuration created: those that name one of its databases."""
        return {j: e for j, e in self.jobs.items() if any(db.lower() in j.lower() for db in BIZTALK_DATABASES)}


# --- reading ---------------------------------------------------------------------------------------------
class Network:
    """Where a name is: DNS by default; a lab's written inventory for a lab (its names are in no DNS)."""

    def __init__(self, lab_inventory: str | None = None) -> None:
        self.addresses: dict[str, str] = {}
        self.doc: dict[str, Any] = {}
        if lab_inventory:
            self.doc = yaml.safe_load(Path(lab_inventory).read_text(encoding="utf-8")) or {}
            c = self.doc.get("cluster") or {}
            for h in [*(c.get("nodes") or []), *(self.doc.get("biztalk_servers") or [])]:
                if h.get("address"):
                    self.addresses[h["name"].upper()] = h["address"]
            owner = c.get("primary") or ((c.get("nodes") or [{}])[0].get("name"))
            if c.get("network_name") and owner and owner.upper() in self.addresses:
                self.addresses[c["network_name"].upper()] = self.addresses[owner.upper()]

    def address(self, name: str) -> str | None:
        return self.addresses.get(name.upper())

    @property
    def lab(self) -> dict[str, Any] | None:
        return self.doc.get("lab")


def _host_facts_params(role: str, cluster: tuple[str, str, str] | None, package: str | None = None) -> dict[str, Any]:
    node = role == "node"
    return {"cluster": {"network_name": cluster[0], "group": cluster[1], "resource": cluster[2]} if node and cluster
            else None, "services": [ENTSSO] + ([] if node else ["RuleEngineUpdateService"]), "biztalk": not node,
            "package": {"path": package} if node and package else None, "backup_folder": None,
            "secret_backup_file": None}


def _ca_trust_path(args: argparse.Namespace, net: Network) -> str | None:
    """The CA file that validates the hosts' WinRM certificates: --ca-trust-path, else the network file's."""
    return args.ca_trust_path or (net.doc.get("winrm") or {}).get("ca_trust_path")


def _sql_tls(args: argparse.Namespace, net: Network) -> tuple[str, str | None]:
    """The ODBC driver and the CA file for SQL Server's certificate: the flags, else the network file's."""
    s = net.doc.get("sql") or {}
    return (args.sql_driver or s.get("driver") or DRIVERS[0]), (args.sql_ca_file or s.get("ca_file"))


def discover(args: argparse.Namespace, winrm_password: str, sql_password: str | None) -> Estate:
    net = Network(args.network)
    w = net.doc.get("winrm") or {}
    settings = WinRMSettings(transport=args.winrm_transport or w.get("transport") or "ntlm",
                             https=not args.http if args.http else bool(w.get("https", True)),
                             port=args.winrm_port or w.get("port"), cert_validation=not args.no_verify,
                             ca_trust_path=_ca_trust_path(args, net))
    user = args.winrm_user

    def windows(name: str) -> WindowsHost:
        return WindowsHost(name, net.address(name) or name, user, winrm_password, settings)

    # the cluster, from the node that owns its name
    try:
        roles = windows(args.cluster).invoke("Get-ClusterSsoRoles", {})
    except RemoteError as exc:
        raise DiscoveryError(f"the cluster name {args.cluster} did not answer over WinRM: {exc}") from None
    if roles.get("error"):
        raise DiscoveryError(f"{args.cluster} is not a failover cluster node, or its cluster cannot be read: "
                             f"{roles['error']}")
    sso_resources = [r for r in roles.get("resources") or [] if (r.get("service_name") or "").upper() == ENTSSO]
    if len(sso_resources) != 1:
        raise DiscoveryError(f"the cluster {roles.get('cluster_name')} has {len(sso_resources)} Generic Service "
                             "resources running ENTSSO; expected exactly one (the clustered master secret server)")
    res = sso_resources[0]
    cluster_name = args.cluster
    nodes = [n["name"] for n in roles.get("nodes") or []]
    node_states = {n["name"]: n.get("state") for n in roles.get("nodes") or []}

    # SQL Server: the group's servers, its jobs, SSODB's secret server
    lab = net.lab or {}
    driver, ca_file = _sql_tls(args, net)
    sql = SqlServer(SqlSettings(server=args.sql, instance=args.sql_instance, auth=args.sql_auth, username=args.sql_user,
                                driver=driver, ca_file=ca_file,
                                lab_address=lab.get("sql_address"), lab_port=lab.get("sql_port")), sql_password)
    try:
        servers = [r["Name"] for r in sql.execute(tsql.BIZTALK_SERVERS).rows]
        jobs = {r["name"]: bool(r["enabled"]) for r in sql.execute(tsql.ALL_JOBS).rows}
        secret_server = sso.secret_server(sql)
        handlers = [{"kind": str(r["kind"]), "adapter": str(r["adapter"]), "host": str(r["host_name"])}
                    for r in sql.execute(tsql.ADAPTER_HANDLERS).rows]
    except SqlError as exc:
        raise DiscoveryError(f"SQL Server {args.sql}: {exc}") from None
    finally:
        sql.close()

    names = [(n, "node") for n in nodes] + [(b, "biztalk") for b in servers
                                             if b.upper() not in {n.upper() for n in nodes}]
    hosts: list[Host] = []
    cluster = (cluster_name, res["group"], res["name"])

    def one(item: tuple[str, str]) -> Host:
        name, role = item
        h = Host(name, role, net.address(name), node_state=node_states.get(name))
        try:
            doc = windows(name).invoke("Get-HostFacts", _host_facts_params(role, cluster, args.package_path))
        except RemoteError as exc:
            h.reachable, h.error = False, str(exc)
            return h
        f = estate.parse_host(name, role, doc)
        if f.sso is not None:
            h.version, h.tools_server, h.holds_secret = f.sso.version, f.sso.tools_server, f.sso.holds_secret
        h.entsso = f.service(ENTSSO).status
        h.rule_engine = f.service("RuleEngineUpdateService").status if role == "biztalk" else None
        h.package_present = bool(f.package and f.package.get("exists"))
        h.host_instances = [{"host": i.host_name, "type": i.host_type, "state": i.state, "disabled": i.disabled}
                            for i in f.host_instances]
        return h

    hosts = estate.on_hosts(names, one)
    return Estate(cluster_name, res["group"], res["name"], res.get("owner_node"), res.get("state"), hosts,
                  args.sql, args.sql_instance, jobs, secret_server, adapter_handlers=handlers)


# --- writing ---------------------------------------------------------------------------------------------
def _dump(doc: Any) -> str:
    return yaml.safe_dump(doc, sort_keys=False, default_flow_style=False, allow_unicode=True, width=120)


def inventory_text(e: Estate, args: argparse.Namespace, network: Network) -> str:
    """The draft inventory: what was read, and a comment on each thing that could not be."""
    jobs = e.biztalk_jobs()
    backup_job = next((j for j in jobs if j.lower().startswith("backup biztalk server")), None)
    unreachable = [h.name for h in e.hosts if not h.reachable]
    versions = Counter(h.version for h in e.nodes if h.version)
    (driver, ca_file), ca_trust = _sql_tls(args, network), _ca_trust_path(args, network)
    doc: dict[str, Any] = {
        "environment": args.environment,
        "cluster": {"network_name": e.cluster_name, "group": e.group, "resource": e.resource,
                    "nodes": [{"name": h.name, **({"address": h.address} if h.address else {})} for h in e.nodes],
                    "primary": e.owner or e.nodes[0].name},
        "biztalk_servers": [{"name": h.name, **({"address": h.address} if h.address else {})}
                            for h in e.biztalk_servers],
        "sql": {"server": e.sql_server, "instance": e.sql_instance, "driver": driver,
                **({"ca_file": ca_file} if ca_file else {}),
                "auth": args.sql_auth,
                **({"username": args.sql_user, "password_env": args.sql_password_env}
                   if args.sql_auth == "sql" else {}),
                "jobs": list(jobs), "backup_job": backup_job},
        "winrm": {"transport": args.winrm_transport or (network.doc.get("winrm") or {}).get("transport") or "ntlm",
                  "https": not args.http if args.http else bool((network.doc.get("winrm") or {}).get("https", True)),
                  **({"port": args.winrm_port or (network.doc.get("winrm") or {}).get("port")}
                     if args.winrm_port or (network.doc.get("winrm") or {}).get("port") else {}),
                  **({"ca_trust_path": ca_trust} if ca_trust else {}),
                  "username": args.winrm_user, "password_env": args.winrm_password_env},
        "secret_backup": {"folder": args.backup_folder, "password_env": args.secret_password_env},
        "upgrade": {"target_version": args.target_version or "CHANGE-ME", "mode": "manual",
                    **({"package_path": args.package_path} if args.package_path else {})},
    }
    if args.site_checks:
        doc["site_checks"] = args.site_checks
    if network.lab:
        doc["lab"] = network.lab
    body = _dump(doc)
    head = [
        f"# Draft inventory written by python -m entsso.discover on {args.cluster} and {args.sql} (read-only).",
        "# Read, then check: python -m entsso.inventory THIS-FILE; then the gate: pytest tests_pre -m readiness",
        "#   --inventory=THIS-FILE. SSO versions found on the nodes: "
        + (", ".join(f"{v} ({n} node(s))" for v, n in versions.items()) or "none") + ".",
        f"# SSODB names {e.secret_server!r} as the master secret server; the group is {e.group_state} on {e.owner}.",
        "# What discovery cannot know, and you must check or fill in:",
        "# - upgrade.target_version" + (" (given with --target-version)" if args.target_version else
                                        ": the version of the update you install (CHANGE-ME is refused)") + ";",
        "#   upgrade.mode: manual (ESSO Setup on each node, the suite waits) or package (a silent update package),",
        "#   upgrade.package_path, per node in upgrade.nodes); discovery cannot see your media: the gate checks",
        "#   that the path (ESSO Setup, or the package) is on every node"
        + (" (given with --package-path)." if args.package_path else " — set upgrade.package_path."),
        f"# - secret_backup.folder: {args.backup_folder} is a proposal; it must exist on every node "
        "(the gate checks it).",
        "# - sql.jobs: every SQL Agent job that names a BizTalk database ("
        + str(len(jobs)) + f" of {len(e.jobs)} jobs);",
        "#   the change disables them and re-enables those that were enabled. Remove any it must not touch.",
        "# - the passwords: only the variables' names are here; export them before a run.",
        "# - timeouts: the defaults (docs/inventory.md); set them to your estate's.",
    ]
    if unreachable:
        head.append(f"# - NOT ANSWERING during discovery: {', '.join(unreachable)}: their facts are missing.")
    if network.lab:
        head.append("# - lab: copied from the lab's own inventory (how the suite reaches the lab's SQL Server).")
    return "\n".join(head) + "\n" + body


def twin_text(e: Estate, args: argparse.Namespace) -> str:
    """A lab scenario shaped like the estate: the same names, states, versions and jobs, to rehearse on."""
    versions = Counter(h.version for h in e.hosts if h.version)
    common = versions.most_common(1)[0][0] if versions else None
    nodes = []
    for h in e.nodes:
        n: dict[str, Any] = {"name": h.name, "state": h.node_state or "Up"}
        if h.version and h.version != common:
            n["sso_version"] = h.version
        if h.tools_server:
            n["tools_server"] = h.tools_server
        nodes.append(n)
    servers = []
    for h in e.biztalk_servers:
        s: dict[str, Any] = {"name": h.name}
        if h.entsso in ("Running", "Stopped"):
            s["entsso"] = h.entsso
        if h.rule_engine in ("Running", "Stopped"):
            s["rule_engine"] = h.rule_engine
        s["host_instances"] = [{"host": i["host"], "type": i["type"], "state": i["state"] if i["state"] in (
            "Running", "Stopped") else "Stopped", **({"disabled": True} if i["disabled"] else {})}
            for i in h.host_instances]
        if h.version and h.version != common:
            s["sso_version"] = h.version
        if h.tools_server:
            s["tools_server"] = h.tools_server
        servers.append(s)
    doc: dict[str, Any] = {
        "name": f"twin-{e.cluster_name.lower()}",
        "environment": f"TWIN-{args.environment}",
        "cluster": {"name": e.cluster_name, "group": e.group, "resource": e.resource, "nodes": nodes,
                    "owner": e.owner, **({"group_state": e.group_state} if e.group_state in (
                        "Online", "Failed", "PartialOnline", "Offline") else {})},
        "sso": {**({"version": common} if common else {}), **({"secret_server": e.secret_server} if e.secret_server
                                                               else {}),
                "secret_on": [h.name for h in e.hosts if h.holds_secret], "backup_folder": args.backup_folder},
        "biztalk": {"servers": servers, **({"adapter_handlers": e.adapter_handlers} if e.adapter_handlers else {})},
        "sql": {"server": e.sql_server, "instance": e.sql_instance, "jobs": dict(e.jobs)},
    }
    if args.target_version or args.package_path:
        doc["upgrade"] = {**({"target_version": args.target_version} if args.target_version else {}), "mode": "manual",
                          **({"package": {"path": args.package_path,
                                          "present_on": [h.name for h in e.nodes if h.package_present]}}
                             if args.package_path else {})}
    head = [f"# A lab twin of {e.cluster_name} (python -m entsso.discover): the same nodes and their states, BizTalk",
            "# servers, host instances and their states, SQL Agent jobs, SSO versions, the group's owner and the",
            "# adapter handlers (their properties are the lab's own).",
            "# Rehearse the change, and its backout, on it the day before:",
            f"#   pytest --lab={args.twin or 'THIS-FILE'} --apply --change-ticket REHEARSAL",
            "# Not mirrored (the lab's defaults stand in): delays (the lab's own), the BizTalk",
            "# databases and their backups, the update package. docs/lab.md lists every key."]
    return "\n".join(head) + "\n" + _dump(doc)


# --- command line ----------------------------------------------------------------------------------------
def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m entsso.discover",
        description="Read a live SSO estate (read-only) and write a draft inventory, with comments on what "
                    "discovery cannot know, and a twin lab scenario to rehearse the change on.")
    p.add_argument("--cluster", required=True, metavar="NAME", help="the cluster's network name (the MSS name)")
    p.add_argument("--sql", required=True, metavar="SERVER", help="the SQL Server of SSODB and the BizTalk databases")
    p.add_argument("--sql-instance", metavar="NAME")
    p.add_argument("--sql-auth", choices=("kerberos", "sql"), default="kerberos")
    p.add_argument("--sql-user", metavar="LOGIN", help="with --sql-auth sql")
    p.add_argument("--sql-password-env", default="ENTSSO_SQL_PASSWORD", metavar="VAR")
    p.add_argument("--winrm-user", default=None, metavar="DOMAIN\\USER", help="default: this session's user")
    p.add_argument("--winrm-password-env", default="ENTSSO_WINRM_PASSWORD", metavar="VAR")
    p.add_argument("--winrm-transport", choices=("ntlm", "kerberos", "credssp", "basic"))
    p.add_argument("--winrm-port", type=int)
    p.add_argument("--http", action="store_true", help="WinRM over HTTP (default HTTPS)")
    p.add_argument("--no-verify", action="store_true", help="do not validate the WinRM certificate")
    p.add_argument("--ca-trust-path", metavar="PEM", help="the CA that issued the hosts' WinRM certificates "
                   "(default: the system's store)")
    p.add_argument("--sql-driver", choices=DRIVERS, help=f"the ODBC driver (default: {DRIVERS[0]})")
    p.add_argument("--sql-ca-file", metavar="PEM",
                   help="the CA that issued SQL Server's certificate (sql.ca_file, every driver)")
    p.add_argument("--secret-password-env", default="ENTSSO_SECRET_PASSWORD", metavar="VAR")
    p.add_argument("--backup-folder", default="C:\\SSOBackup", help="proposed secret backup folder on the nodes")
    p.add_argument("--target-version", metavar="X.Y.Z.W", help="the update's version (discovery cannot know it)")
    p.add_argument("--package-path", metavar="PATH", help="ESSO Setup (manual) or the update package on the nodes")
    p.add_argument("--site-checks", metavar="FOLDER", help="the site checks' folder to name in the inventory")
    p.add_argument("--environment", default="PROD", help="the estate's name in the report")
    p.add_argument("--network", metavar="LAB-INVENTORY",
                   help="for a lab: its written inventory, read only for where each name is (the lab's names "
                        "are in no DNS) and how to reach its SQL Server; every fact is still read from the estate")
    p.add_argument("--out", default="inventory/discovered.yml", help="the draft inventory to write")
    p.add_argument("--twin", default=None, help="the twin lab scenario to write (default: beside --out)")
    return p


def _secret(var: str, what: str) -> str | None:
    value = os.environ.get(var)
    if value is None and sys.stdin.isatty():
        value = getpass.getpass(f"{what} (${var}): ")
    return value


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    args.winrm_user = args.winrm_user or getpass.getuser()
    if args.sql_auth == "sql" and not args.sql_user:
        print("--sql-auth sql needs --sql-user", file=sys.stderr)
        return 2
    winrm_password = _secret(args.winrm_password_env, f"WinRM password of {args.winrm_user}")
    sql_password = (_secret(args.sql_password_env, f"SQL password of {args.sql_user}")
                    if args.sql_auth == "sql" else None)
    if winrm_password is None or (args.sql_auth == "sql" and sql_password is None):
        print(f"set {args.winrm_password_env}" + (f" and {args.sql_password_env}" if args.sql_auth == "sql" else "")
              + " (or run on a terminal to be asked)", file=sys.stderr)
        return 2
    out = Path(args.out)
    args.twin = args.twin or str(out.with_name(out.stem + "-twin.yml"))
    try:
        found = discover(args, winrm_password, sql_password)
    except DiscoveryError as exc:
        print(f"discovery stopped: {exc}", file=sys.stderr)
        return 1
    net = Network(args.network)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(inventory_text(found, args, net), encoding="utf-8")
    Path(args.twin).write_text(twin_text(found, args), encoding="utf-8")
    print(f"{len(found.nodes)} node(s) ({', '.join(h.name for h in found.nodes)}), "
          f"{len(found.biztalk_servers)} BizTalk server(s), {len(found.biztalk_jobs())} BizTalk job(s); "
          f"wrote {out} (check its comments) and the twin {args.twin}")
    missing = [h.name for h in found.hosts if not h.reachable]
    if missing:
        print(f"not answering: {', '.join(missing)} (their facts are missing from both files)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
