"""The report's paragraph on the cluster's topology (issue 26): which of the documented topologies the gate found
(entsso.estate.checks.topology.summary, kept as run.topology), what it is made of, and what the operator must know."""
from __future__ import annotations

import html
from typing import Any


def topology_html(t: dict[str, Any] | None) -> str:
    if not t:
        return ""
    e = html.escape
    name = t.get("name") or "none of the documented topologies: refused"
    items = [f"<li>{e(w)}</li>" for w in t.get("warnings") or []]
    if t.get("refused_because"):
        items.insert(0, f"<li><b>Refused:</b> {e(str(t['refused_because']))}</li>")
    if t.get("sql_in_sso_group"):
        items.append(f"<li>SQL Server moves with the SSO group ({e(', '.join(t['sql_in_sso_group']))}): "
                     + ("accepted with --allow-sql-failover; each outage is marked on the timeline"
                        if t.get("sql_failover_allowed") else "refused without --allow-sql-failover") + "</li>")
    return (f'<div class="entsso-topology"><h3>Cluster topology: {e(name)}</h3><p>{e(str(t.get("seen") or ""))}</p>'
            + (f"<ul>{''.join(items)}</ul>" if items else "") + "</div>")
