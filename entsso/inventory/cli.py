"""`python -m entsso.inventory FILE`: check an inventory without its secrets and print the change it describes."""
from __future__ import annotations

import argparse
import sys

from entsso.inventory.load import check_inventory
from entsso.inventory.schema import Inventory, InventoryError
from entsso.inventory.secrets import needed_variables


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
    checked = "validated" if w.server_cert_validation == "validate" else "NOT validated"
    lines.append(f"WinRM: {w.transport} as {w.username} over {'https' if w.https else 'http'} port {w.port}"
                 + (f", certificates {checked}" if w.https else ""))
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
