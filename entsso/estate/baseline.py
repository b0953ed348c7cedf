"""The baseline: what ran and was enabled before the change (runbook phase 0), taken from the first snapshot
and kept in the change record; phase 7 and a backout put BizTalk back to it exactly."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from entsso.estate.snapshot import Snapshot


@dataclass(frozen=True)
class Baseline:
    """What was running and enabled before the change (runbook phase 0), for phase 7."""

    taken_at: str
    group_owner: str | None
    host_instances: dict[str, dict[str, str]]  # server -> host name -> state (in-process ones)
    host_instances_disabled: dict[str, list[str]]
    rule_engine: dict[str, str | None]  # server -> status
    entsso: dict[str, str | None]  # every host -> ENTSSO status
    jobs_enabled: dict[str, bool]
    versions: dict[str, str | None]  # host -> SSO version
    # for the report's before → after table (absent from baselines recorded before they were kept)
    secret_server: str | None = None  # the master secret server SSODB named
    tools_servers: dict[str, str | None] = field(default_factory=dict)  # host -> where its SSO tools point
    # issue 26: the SSO group's clustered host instances and IIS (resource -> state), and the host instances
    # installed on the nodes outside the cluster (node -> host -> state)
    clustered_resources: dict[str, str] = field(default_factory=dict)
    node_host_instances: dict[str, dict[str, str]] = field(default_factory=dict)

    @classmethod
    def from_snapshot(cls, s: Snapshot) -> Baseline:
        view = s.cluster_view()
        return cls(
            taken_at=s.taken_at.isoformat(),
            group_owner=view.group.owner_node if view and view.group else None,
            host_instances={h.name: {i.host_name: i.state for i in h.host_instances if i.in_process}
                            for h in s.biztalk_servers},
            host_instances_disabled={h.name: [i.host_name for i in h.host_instances if i.disabled]
                                     for h in s.biztalk_servers},
            rule_engine={h.name: h.service("RuleEngineUpdateService").status for h in s.biztalk_servers},
            entsso={h.name: h.service("ENTSSO").status for h in s.hosts.values()},
            jobs_enabled={name: j.enabled for name, j in s.sql.jobs.items() if j.exists},
            versions={h.name: (h.sso.version if h.sso else None) for h in s.hosts.values()},
            secret_server=s.sql.secret_server,
            tools_servers={h.name: (h.sso.tools_server if h.sso else None) for h in s.hosts.values()},
            clustered_resources=_clustered_resources(s),
            node_host_instances=_node_host_instances(s),
        )

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> Baseline:
        known = {f.name for f in fields(cls)}  # a record written by a newer version may keep more
        return cls(**{k: v for k, v in doc.items() if k in known})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _clustered_resources(s: Snapshot) -> dict[str, str]:
    """The SSO group's clustered host instances and IIS resources, with their states (issue 26)."""
    view = s.cluster_view()
    r = view.topology(view.resource.name) if view and view.resource else None
    return {x.name: x.state for x in (r.clustered_hosts + r.iis if r else ())}


def _node_host_instances(s: Snapshot) -> dict[str, dict[str, str]]:
    """Each node's host instances outside the cluster (not a clustered Generic Service), with their states."""
    view = s.cluster_view()
    r = view.topology(view.resource.name) if view and view.resource else None
    clustered = {(x.service or "").lower() for x in (r.clustered_hosts if r else ())}
    out = {h.name: {i.host_name: i.state for i in h.host_instances
                    if i.in_process and (i.service_name or "").lower() not in clustered} for h in s.nodes}
    return {n: v for n, v in out.items() if v}
