"""MSDTC on the cluster nodes, as Get-HostFacts reads it from the registry: network DTC access and the
transaction manager's contact identifier (CID). SSO is among the components "commonly affected when MSDTC
transaction support is not configured correctly" (Learn, "Troubleshooting Problems with MSDTC"), and moving
ENTSSO to a cluster starts with making the nodes' CIDs unique (biztalknotes, 2013)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# HKLM\SOFTWARE\Microsoft\MSDTC\Security values the nodes need set to 1 (MS-CMOM 2.2.3.3): network DTC access,
# transactions over it, inbound and outbound (the "Security Configuration" dialog's boxes)
REQUIRED = ("NetworkDtcAccess", "NetworkDtcAccessTransactions", "NetworkDtcAccessInbound", "NetworkDtcAccessOutbound")


@dataclass(frozen=True)
class Msdtc:
    host: str
    security: dict[str, int | None] | None  # None: the Security key could not be read
    cids: dict[str, str] = field(default_factory=dict)  # Description (MSDTC, MSDTCUIS, …) -> CID (upper case)
    error: str | None = None

    def not_set(self) -> list[str]:
        """The required values that are not 1 (absent ones included)."""
        return [n for n in REQUIRED if (self.security or {}).get(n) != 1]

    @property
    def cid(self) -> str | None:
        """The transaction manager's own contact identifier (Description MSDTC)."""
        return self.cids.get("MSDTC")


def parse_msdtc(host: str, doc: dict[str, Any]) -> Msdtc | None:
    m = doc.get("msdtc")
    if not isinstance(m, dict):
        return None  # an older script, or the lab without it: not read
    cids = {str(c["description"]).upper(): str(c["cid"]).strip("{}").upper()
            for c in m.get("cids") or [] if c.get("description") and c.get("cid")}
    security = m.get("security")
    return Msdtc(host, {str(k): _dword(v) for k, v in security.items()}
                 if isinstance(security, dict) else None, cids, m.get("error"))


def _dword(value: Any) -> int | None:
    """A Security value as the registry gave it (the script returns it raw): a REG_DWORD arrives as a number; a
    value someone wrote as a string (REG_SZ "1") counts as its number; anything else is not set (None)."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return value
    text = str(value).strip()
    return int(text) if text.isdigit() else None


def shared_cids(mine: Msdtc, others: list[Msdtc]) -> list[str]:
    """The hosts among `others` whose MSDTC contact identifier equals `mine`'s (a cloned image)."""
    return [o.host for o in others if o.host != mine.host and mine.cid and o.cid == mine.cid]


RPC_PORT = 135  # the RPC endpoint mapper, MSDTC's first contact with a remote DTC (Learn, "Troubleshooting Problems
# with MSDTC": its firewall and RPC settings; "How to configure RPC dynamic port allocation to work with firewalls")
PROBE_SECONDS = 3.0


def probe_request(sql_server: str) -> dict[str, Any]:
    """Get-HostFacts' `dtc_probe`: SQL Server's host (the inventory's sql.server without protocol, instance or
    port) and the RPC endpoint mapper's port."""
    host = sql_server.split(":", 1)[1] if sql_server.lower().startswith(("tcp:", "np:")) else sql_server
    host = host.split("\\")[0].split(",")[0].strip()
    return {"host": host, "port": RPC_PORT, "timeout_sec": PROBE_SECONDS}


def sql_unreachable(doc: dict[str, Any]) -> str | None:
    """Why MSDTC on this node could not reach SQL Server's host (the probe's raw answer); None when it connected
    or was not asked."""
    probe = doc.get("dtc_probe")
    if not isinstance(probe, dict) or (probe.get("completed") is True and probe.get("connected") is True):
        return None  # the connect finished within its bound and the socket is connected (the script returns both raw)
    why = probe.get("error") or (f"no answer within {PROBE_SECONDS:.0f} s" if probe.get("completed") is False
                                 else "the connection was not made")
    return f"{probe.get('host')} port {probe.get('port')} (RPC endpoint mapper): {why}"
