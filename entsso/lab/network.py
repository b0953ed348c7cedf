"""A host's network lost for a while, and what the cluster makes of it (the `network_loss` fault).

During the loss the host's WinRM listener is cut (connection refused; open connections reset), as for
`unreachable`, and it heals by itself after `seconds` (estate seconds). A cluster node whose loss lasts
past the cluster's heartbeat threshold (SameSubnetDelay x SameSubnetThreshold: 1 s x 10 on Windows Server
2016 and later, `cluster.same_subnet_delay_ms` / `cluster.same_subnet_threshold`) is removed from the
cluster's membership: the others mark it Down (event 1135), the group it owned fails over to another
possible owner, and its own clustered ENTSSO stops with its cluster service. When the network heals the node
joins again in the state it had (Up, or Paused: a pause is kept), and the group does not fail back unless
failback is configured. A shorter loss changes nothing in the cluster. Sources: docs/domain-notes.md,
"Network loss and the cluster's heartbeat".
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from entsso.lab.timedfaults import TimedFaults

# Windows Server 2016 and later (docs/domain-notes.md): a heartbeat every SameSubnetDelay ms, a route down
# after SameSubnetThreshold missed ones
SAME_SUBNET_DELAY_MS = 1000
SAME_SUBNET_THRESHOLD = 10


def heartbeat_threshold_sec(cluster_cfg: dict[str, Any]) -> float:
    """How long (estate seconds) a node may miss heartbeats before the cluster removes it."""
    delay = float(cluster_cfg.get("same_subnet_delay_ms", SAME_SUBNET_DELAY_MS))
    return delay / 1000.0 * int(cluster_cfg.get("same_subnet_threshold", SAME_SUBNET_THRESHOLD))


@dataclass
class NetworkLosses(TimedFaults):
    """The lab's losses in progress: `begin(host, seconds)` cuts the host now; timers on the lab's clock
    tell the cluster when the threshold passes and heal the host at the end."""

    _active: dict[str, dict[str, Any]] = field(default_factory=dict)  # host -> its entry in the log

    def schedule(self, host: str, seconds: float, after: float) -> None:
        """A loss of `seconds` starting `after` estate seconds from now."""
        if after > 0:
            self._timer(after, self.begin, host, seconds)
        else:
            self.begin(host, seconds)

    def begin(self, host: str, seconds: float) -> None:
        estate = self.lab.estate
        entry = {"host": host, "seconds": seconds, "started": estate.clock.now().isoformat(),
                 "removed_from_cluster": False, "healed": False}
        with self._lock:
            if host in self._active:  # already off the network: the loss under way and its heal stand
                return
            self._active[host] = entry
            self.log.append(entry)
        self.lab.set_unreachable(host, True)
        threshold = heartbeat_threshold_sec(estate.cl_cfg)
        if host.upper() in {n.upper() for n in estate.nodes} and seconds > threshold:
            self._timer(threshold, self._threshold_passed, host, entry)
        self._timer(seconds, self.heal, host, entry)

    def _threshold_passed(self, host: str, entry: dict[str, Any]) -> None:
        with self._lock:
            if self._active.get(host) is not entry:
                return  # healed (or cleared) first
        before = self.lab.estate.network_isolated(host)
        with self._lock:
            entry["removed_from_cluster"] = before is not None
            entry["state_before"] = before

    def heal(self, host: str, entry: dict[str, Any] | None = None) -> None:
        with self._lock:
            current = self._active.get(host)
            if current is None or (entry is not None and current is not entry):
                return
            del self._active[host]
            current["healed"] = True
        if current["removed_from_cluster"]:
            self.lab.estate.network_rejoined(host, current["state_before"])
        self.lab.set_unreachable(host, False)

    def clear(self) -> None:
        """Every loss heals now (the control endpoint's /faults/clear)."""
        self._cancel_timers()
        with self._lock:
            hosts = list(self._active)
        for host in hosts:
            self.heal(host)
