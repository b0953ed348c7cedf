"""The lower bound of each figure, from the scenario's own delays and the round trips the runbook
cannot do without (docs/performance.md explains every term).

A bound is `delay / speed + round_trips × latency`: `delay` is the estate seconds the runbook must
wait for whatever the suite does (a service stopping, a job running, a group moving, the operator),
summed along the runbook's order in entsso/change/runbook.py — concurrent across hosts (the slowest host
counts), sequential within a host as the estate's scripts act (one service after another) — and
`round_trips` is the longest chain of WinRM calls the phase needs if everything that can be asked at
once is asked in one call per host, all hosts at once, with one verifying snapshot per phase."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

PHASES = ["silence", "backup", "uncluster", "upgrade", "recluster", "failover", "resume"]


@dataclass(frozen=True)
class Bound:
    delay: float  # estate seconds
    round_trips: int
    why: str

    def seconds(self, speed: float, latency: float) -> float:
        return self.delay / speed + self.round_trips * latency


def _servers(sc: dict[str, Any]) -> list[dict[str, Any]]:
    return sc.get("biztalk", {}).get("servers") or []


def _running_in_process(server: dict[str, Any]) -> int:
    return sum(1 for h in server.get("host_instances") or []
               if h.get("type", "InProcess") == "InProcess" and h.get("state") == "Running" and not h.get("disabled"))


def gate() -> Bound:
    return Bound(0.0, 1, "every host's facts in one call, all hosts at once; SQL alongside")


def rehearsal(sc: dict[str, Any]) -> Bound:
    """Every operation of the change once, in its form that changes nothing (entsso.change.rehearsal): all
    hosts at once, each host's in turn; the group's owner has the most: ENTSSO to its state, the tools, the
    resource, the group, SSODB's secret server, the adapter handlers (when there are any), the secret backup,
    its copy, and a write/read round trip. Nothing waits for the estate: every target is already so."""
    handlers = 1 if (sc.get("biztalk", {}).get("adapter_handlers")) else 0
    return Bound(0.0, 9 + handlers, "the owner's operations in turn (every host at once, SQL alongside); "
                                    "no estate delay: every target is already so")


def full_run(sc: dict[str, Any]) -> dict[str, Bound]:
    bt, sso, cl, sql, up = (sc.get(k, {}) for k in ("biztalk", "sso", "cluster", "sql", "upgrade"))
    hi_stop, hi_start = float(bt.get("host_instance_stop_sec", 5)), float(bt.get("host_instance_start_sec", 10))
    svc_stop, svc_start = float(sso.get("service_stop_sec", 5)), float(sso.get("service_start_sec", 15))
    move, r_on, r_off = (float(cl.get("move_sec", 20)), float(cl.get("resource_online_sec", 10)),
                         float(cl.get("resource_offline_sec", 5)))
    nodes = len(cl.get("nodes") or [])
    servers = _servers(sc)

    def re_running(s: dict[str, Any]) -> bool:
        return s.get("rule_engine", "Running") == "Running"

    silence = max((_running_in_process(s) * hi_stop + (svc_stop if re_running(s) else 0) + svc_stop
                   for s in servers), default=0.0)
    # the forced run backs up every database twice: BackupFull, then MarkAndBackupLog (entsso/lab/backupjob.py)
    backup = 2 * float(sql.get("backup_sec_per_database", 4)) * len(sql.get("databases") or [])
    uncluster = r_off + svc_start + svc_start
    manual = sum(1 for n in cl.get("nodes") or []
                 if ((up.get("nodes") or {}).get(n["name"], {}) or {}).get("mode", up.get("mode", "manual")) == "manual")
    upgrade = manual * (float(up.get("operator_delay_sec", 60)) + float(up.get("setup_sec", 120))) + nodes * svc_start
    # every node in turn owns the group (the primary, which owns it, last): N moves; the first node
    # finds the resource offline (phase 3 left it so), the others get it online with the group
    recluster = svc_stop + nodes * (move + r_on) + (nodes - 1) * r_off
    failover = nodes * move
    resume = max((svc_start + (svc_start if re_running(s) else 0) + _running_in_process(s) * hi_start
                  for s in servers), default=0.0)
    return {
        "silence": Bound(silence, 2, "per server: its host instances one after another, then Rule Engine and "
                                     "ENTSSO; 1 call per server (all at once) + 1 verifying snapshot"),
        "backup": Bound(backup, 3, "the Backup BizTalk Server job: 2 × backup_sec_per_database × databases "
                                   "(the full set, then the marked log set); "
                                   "back up the secret, copy it off, verify"),
        "uncluster": Bound(uncluster, 5, "resource offline, ENTSSO start on the primary, then on the others; "
                                         "update SSODB, offline, start, start the others, verify"),
        "upgrade": Bound(upgrade, 2 * nodes + 1, "per node in turn: operator delay + Setup, then ENTSSO start; "
                                                 "per node the look that sees the version + the start, verify"),
        "recluster": Bound(recluster, 4 + 4 * nodes + (nodes - 1),
                           "stop ENTSSO, then per node: move, offline, online (+ restore); update SSODB, stop, "
                           "read the backup once, per node move/offline/online/restore, copies, tools, verify"),
        "failover": Bound(failover, 2 * nodes + 1, "per node: move the group; move + read the handlers, verify"),
        "resume": Bound(resume, 2, "per server: ENTSSO, Rule Engine, then its host instances one after another; "
                                   "1 call per server + verify"),
    }
