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
        )

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> Baseline:
        known = {f.name for f in fields(cls)}  # a record written by a newer version may keep more
        return cls(**{k: v for k, v in doc.items() if k in known})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
