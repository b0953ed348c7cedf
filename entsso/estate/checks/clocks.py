"""Each host's clock against SQL Server's: measured from one snapshot (the host's own `now_utc`, read in the
same Get-HostFacts call as its file times, minus SQL Server's SYSUTCDATETIME() read alongside), used to put a
node's file times on SQL Server's clock, which dates the change's start; and the gate's bound on it."""
from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta

from entsso.estate.checks.common import Finding, utc
from entsso.estate.snapshot import Snapshot

# Kerberos' "Maximum tolerance for computer clock synchronization" (domain policy, default 5 minutes): a domain
# member whose clock is further off fails Kerberos authentication, so no estate runs well beyond it
KERBEROS_MAX_SKEW_SEC = 300.0
SKEW_SOURCE = ("Kerberos policy \"Maximum tolerance for computer clock synchronization\" (default 5 minutes; "
               "Microsoft Learn, \"Maximum tolerance for computer clock synchronization\")")


def skews(s: Snapshot) -> dict[str, float]:
    """Host -> its clock minus SQL Server's, in seconds (hosts that answered, when SQL Server did)."""
    if not s.sql.reachable or s.sql.now_utc is None:
        return {}
    sql_now = utc(s.sql.now_utc)
    return {name: round((utc(h.now_utc) - sql_now).total_seconds(), 1)
            for name, h in s.hosts.items() if h.reachable and h.now_utc is not None}


def on_sql_clock(at: datetime, host: str, measured: Mapping[str, float]) -> datetime:
    """A time a host's clock gave (a file it wrote), as SQL Server's clock would have given it."""
    return utc(at) - timedelta(seconds=measured.get(host, 0.0))


def clock_agrees(s: Snapshot, host: str) -> Finding | None:
    """The host's clock within Kerberos' tolerance of SQL Server's (the change's start and the secret backup's
    write time are compared across the two)."""
    # a host that did not answer has no clock to judge: host_reachable names it (one cause, one finding)
    skew = skews(s).get(host)
    if skew is None or abs(skew) <= KERBEROS_MAX_SKEW_SEC:
        return None
    way = "ahead of" if skew > 0 else "behind"
    sql = s.sql.main_instance or "SQL Server"
    return Finding("clock_agrees", host, f"its clock {abs(skew):.0f} s {way} SQL Server's ({sql})",
                   f"at most {KERBEROS_MAX_SKEW_SEC:.0f} s apart, the {SKEW_SOURCE}: resynchronise {host} with its "
                   "domain time source (w32tm /resync, then w32tm /query /status), then run the gate again")
