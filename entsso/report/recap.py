"""The change's recap (as Ansible's PLAY RECAP and Cluster-Aware Updating's per-node summary give it), from
the journals of every run of the change: per host the steps ok / changed / unchanged / failed, per node
its upgrade's start, end and result, and the business outage — BizTalk out of service from the first
BizTalk stop to the last start (host instances, as the journal has them)."""
from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

SQL = "SQL Server"
STOP, START = "stop host instances", "start the host instances that ran"


def _ts(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def build(runs: list[tuple[str, list[dict[str, Any]]]]) -> dict[str, Any] | None:
    """The recap of a change (its runs' journal records, oldest first); None when no step ran."""
    results = [r for _, recs in runs for r in recs if r.get("kind") == "result"]
    if not results:
        return None
    hosts: dict[str, dict[str, int]] = {}
    for r in results:
        counts = hosts.setdefault(r.get("host") or SQL, {"ok": 0, "changed": 0, "unchanged": 0, "failed": 0})
        outcome = r.get("outcome")
        if outcome == "ok":
            counts["ok"] += 1
            counts["changed"] += 1
        elif outcome == "unchanged":
            counts["ok"] += 1
            counts["unchanged"] += 1
        else:
            counts["failed"] += 1
    nodes = []
    upgrade = [r for r in results if r.get("phase") == "upgrade" and r.get("host")
               and not str(r.get("step", "")).startswith("record ")]
    for node in dict.fromkeys(r["host"] for r in upgrade):
        mine = [r for r in upgrade if r["host"] == node]
        starts = [_ts(r["ts"]).timestamp() - float(r.get("seconds") or 0) for r in mine]
        last = mine[-1]
        result = ("already upgraded" if all(r.get("outcome") == "unchanged" for r in mine) else "upgraded"
                  if last.get("outcome") in ("ok", "unchanged") else f"{last.get('outcome')}: {last.get('step')}")
        nodes.append({"node": node, "start": datetime.fromtimestamp(min(starts), UTC).isoformat(),
                      "end": _ts(last["ts"]).isoformat(), "result": result})
    stops = [r["ts"] for r in results if r.get("step") == STOP and r.get("outcome") == "ok"]
    starts_ = [r["ts"] for r in results if r.get("step") == START and r.get("outcome") == "ok"]
    outage = None
    if stops:
        first = min(stops, key=_ts)
        back = max(starts_, key=_ts) if starts_ else None
        if back is not None and _ts(back) >= max(_ts(s) for s in stops):
            seconds = (_ts(back) - _ts(first)).total_seconds()
            outage = {"from": first, "to": back, "seconds": round(seconds, 1),
                      "text": f"BizTalk out of service from {first[:19].replace('T', ' ')} to "
                              f"{back[:19].replace('T', ' ')} UTC ({_duration(seconds)})"}
        else:
            outage = {"from": first, "to": None, "seconds": None,
                      "text": f"BizTalk out of service since {first[:19].replace('T', ' ')} UTC (still out)"}
    return {"hosts": hosts, "nodes": nodes, "outage": outage}


def lines(recap: dict[str, Any]) -> list[str]:
    """The recap for the console: one line per host (a node's with its upgrade), then the outage."""
    nodes = {n["node"]: n for n in recap["nodes"]}
    width = max(len(h) for h in recap["hosts"])
    out = []
    for host, c in recap["hosts"].items():
        line = (f"  {host:<{width}}  ok={c['ok']:<3} changed={c['changed']:<3} unchanged={c['unchanged']:<3} "
                f"failed={c['failed']}")
        n = nodes.get(host)
        if n:
            line += f"   upgrade {n['start'][11:19]} → {n['end'][11:19]} {n['result']}"
        out.append(line)
    if recap["outage"]:
        out.append(recap["outage"]["text"])
    return out


def to_html(recap: dict[str, Any] | None) -> str:
    import html

    if not recap:
        return ""
    e = html.escape
    nodes = {n["node"]: n for n in recap["nodes"]}
    rows = "".join(
        f"<tr><td>{e(h)}</td><td>{c['ok']}</td><td>{c['changed']}</td><td>{c['unchanged']}</td>"
        f"<td>{c['failed']}</td><td>{e(_node_cell(nodes.get(h)))}</td></tr>" for h, c in recap["hosts"].items())
    outage = (f'<p class="entsso-outage"><b>{e(recap["outage"]["text"])}</b></p>' if recap["outage"] else "")
    return ('<div class="entsso-recap"><h3>Recap</h3>' + outage +
            '<table class="entsso-recap" border="1" cellpadding="3" style="border-collapse:collapse">'
            "<tr><th>Host</th><th>ok</th><th>changed</th><th>unchanged</th><th>failed</th>"
            f"<th>Upgrade (start → end, result)</th></tr>{rows}</table></div>")


def _node_cell(n: dict[str, Any] | None) -> str:
    return f"{n['start'][11:19]} → {n['end'][11:19]}, {n['result']}" if n else ""
