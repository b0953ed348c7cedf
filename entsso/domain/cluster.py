"""The failover cluster that holds the ENTSSO resource: nodes, the SSO group, the Generic Service
resource — facts read from a node's Get-HostFacts, and the operations that take it offline, online and
move it (Set-ClusterResourceState, Move-ClusterGroup)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from entsso.remote.errors import ScriptError
from entsso.remote.winrm import WindowsHost
from entsso.domain.names import same_name
from entsso.domain.errors import DomainError
from entsso.domain.outcome import Outcome
from entsso.domain import topology


@dataclass(frozen=True)
class ClusterNode:
    name: str
    state: str  # Up, Down, Paused, Joining

    @property
    def up(self) -> bool:
        return self.state == "Up"


@dataclass(frozen=True)
class ClusterGroup:
    name: str
    state: str  # Online, Offline, Failed, PartialOnline, Pending
    owner_node: str | None
    preferred_owners: tuple[str, ...] = ()
    auto_failback_type: int | None = None  # AutoFailbackType: 0 prevent, 1 allow (None: not read)

    @property
    def fails_back(self) -> bool:
        """Failback allowed and a preferred owner to fail back to (AutoFailbackType needs one)."""
        return self.auto_failback_type == 1 and bool(self.preferred_owners)


@dataclass(frozen=True)
class ClusterQuorum:
    type: str | None  # QuorumType: Majority (2016+), NodeMajority, NodeAndDiskMajority, …
    witness: str | None  # the witness resource's name; None: no witness
    witness_state: str | None


@dataclass(frozen=True)
class ClusterResource:
    name: str
    state: str
    owner_node: str | None
    resource_type: str | None
    service_name: str | None
    use_network_name: bool | None
    possible_owners: tuple[str, ...]


@dataclass(frozen=True)
class ClusterFacts:
    seen_from: str
    nodes: tuple[ClusterNode, ...]
    group: ClusterGroup | None
    resource: ClusterResource | None
    quorum: ClusterQuorum | None = None
    group_resources: tuple[topology.Resource, ...] | None = None  # every resource of the SSO group (issue 26)
    roles: tuple[topology.Role, ...] | None = None  # every role on the cluster, the SSO group's included

    def topology(self, entsso_resource: str) -> topology.Reading | None:
        """Which documented topology this cluster is (entsso.domain.topology); None when it was not read."""
        group = self.group.name if self.group else ""
        return topology.read(group, entsso_resource, self.group_resources, self.roles)

    def node(self, name: str) -> ClusterNode | None:
        return next((n for n in self.nodes if same_name(n.name, name)), None)


# The names the FailoverClusters cmdlets give their State enums (Get-HostFacts sends [string]$x.State):
# CLUSTER_NODE_STATE, CLUSTER_GROUP_STATE and CLUSTER_RESOURCE_STATE (clusapi.h, Learn) without their
# prefixes, as the module's ClusterNodeState, ClusterGroupState and ClusterResourceState enums name them.
NODE_STATES = frozenset({"Up", "Down", "Paused", "Joining", "Unknown"})
GROUP_STATES = frozenset({"Online", "Offline", "Failed", "PartialOnline", "Pending", "Unknown"})
RESOURCE_STATES = frozenset({"Inherited", "Initializing", "Online", "Offline", "Failed", "Pending",
                             "OnlinePending", "OfflinePending", "Unknown"})


# The resource states in which the cluster itself runs ENTSSO on the owner, or is bringing it up or down:
# an SCM stop of ENTSSO there would be a stop behind the cluster's back, which its restart policy answers
# with restarts and then a failover of the group (RestartAction, RestartThreshold: docs/domain-notes.md).
CLUSTER_HOLDS_ENTSSO = frozenset({"Online", "Pending", "OnlinePending", "OfflinePending", "Initializing"})


def cluster_runs_entsso_on(facts: ClusterFacts | None) -> str | None:
    """The node (upper case) whose ENTSSO is the cluster's to stop (through Stop-ClusterResource or a move),
    never the SCM's; None when the resource is Offline or Failed there (nothing of the cluster's runs)."""
    r = facts.resource if facts else None
    if r is None or r.state not in CLUSTER_HOLDS_ENTSSO:
        return None
    owner = r.owner_node or (facts.group.owner_node if facts and facts.group else None)
    return owner.upper() if owner else None


class MoveRefused(DomainError):
    """The cluster refused to move the group to a node, and the cluster shows why."""


class UnknownClusterState(DomainError, ValueError):
    """A cluster cmdlet gave a State that is not one of its enum's names: the message shows it."""


def _state(value: Any, known: frozenset[str], cmdlet: str, host: str, what: str) -> str:
    if value not in known:
        raise UnknownClusterState(
            f"{cmdlet} on {host} gave {what} the State {value!r}, which is none of {', '.join(sorted(known))} "
            f"(the FailoverClusters module's enum); look at it with `{cmdlet} | Format-List *` on {host}")
    return str(value)


def parse_cluster(host: str, doc: dict[str, Any]) -> ClusterFacts | None:
    """The cluster part of Get-HostFacts; a State no cmdlet gives raises UnknownClusterState."""
    c = doc.get("cluster")
    if not c:
        return None
    g, r = c.get("group"), c.get("resource")
    return ClusterFacts(
        seen_from=host,
        nodes=tuple(ClusterNode(n["name"], _state(n["state"], NODE_STATES, "Get-ClusterNode", host, n["name"]))
                    for n in c.get("nodes") or []),
        group=ClusterGroup(g["name"], _state(g["state"], GROUP_STATES, "Get-ClusterGroup", host, g["name"]),
                           g.get("owner_node"), tuple(g.get("preferred_owners") or ()),
                           g.get("auto_failback_type")) if g else None,
        resource=ClusterResource(r["name"], _state(r["state"], RESOURCE_STATES, "Get-ClusterResource", host, r["name"]),
                                 r.get("owner_node"), r.get("resource_type"),
                                 r.get("service_name"), r.get("use_network_name"),
                                 tuple(r.get("possible_owners") or ())) if r else None,
        quorum=_quorum(host, c.get("quorum")),
        group_resources=topology.group_resources(topology.parse_roles(c.get("roles")), g["name"] if g else None),
        roles=topology.parse_roles(c.get("roles")),
    )


def _quorum(host: str, q: dict[str, Any] | None) -> ClusterQuorum | None:
    if not q:
        return None
    w = q.get("witness")
    return ClusterQuorum(q.get("type"), w["name"] if w else None,
                         _state(w["state"], RESOURCE_STATES, "Get-ClusterQuorum", host, w["name"]) if w else None)


class ResourceStillStarting(DomainError):
    """The resource was still coming online when the suite's patience ran out: slow, not failed."""


def still_pending(text: str) -> bool:
    """Whether a wait's timeout text (Set-ClusterResourceState, Set-ServiceState) found the subject still
    pending (OnlinePending, StartPending) rather than failed or stopped."""
    return any(f"(last state: {s})" in text for s in ("OnlinePending", "Pending", "StartPending"))


def ensure_resource_state(host: WindowsHost, resource: str, state: str, timeout: float) -> Outcome:
    """Take the ENTSSO resource Offline or bring it Online (Stop-/Start-ClusterResource), waiting. A resource
    still OnlinePending at the end of the wait is a slow start, told apart from a failed one (the cluster
    itself fails a start only at the resource's PendingTimeout, 180 s by default)."""
    try:
        doc = host.invoke("Set-ClusterResourceState", {"resource": resource, "state": state,
                                                       "timeout_sec": int(timeout)}, timeout=timeout + 60)
    except ScriptError as exc:
        if state == "Online" and still_pending(str(exc)):
            raise ResourceStillStarting(
                f"cluster resource {resource} is still coming online after {timeout:g} s: a slow start, not a failed "
                "one (the cluster fails it only at the resource's PendingTimeout). Wait until Get-ClusterResource "
                f"shows it Online, then resume; if ENTSSO routinely starts this slowly, raise timeouts.group_move "
                f"above the resource's PendingTimeout. ({exc})") from exc
        raise
    return Outcome.of_document(doc, f"the resource was already {state}")


# What a moved group may come back as, by the state it had before the move. Microsoft's MoveClusterGroup
# remarks: "the cluster always attempts to return the group to the state it was before the move", so a
# group whose ENTSSO resource was taken offline (phase 3) stays PartialOnline on its new owner; an Online
# group must come back Online. A group in any other state (Offline, Failed, Pending) is not moved.
STATES_AFTER_MOVE: dict[str, tuple[str, ...]] = {
    "Online": ("Online",),
    "PartialOnline": ("PartialOnline", "Online"),
}


def why_cannot_own(facts: ClusterFacts | None, node: str) -> str | None:
    """Why the cluster, as read now, will not let `node` own the SSO group — a node paused or gone since
    the gate passed (Cluster-Aware Updating, a colleague's maintenance) — with what to do; None if it can."""
    n = facts.node(node) if facts else None
    if n is None:
        return None
    if n.state == "Paused":
        return (f"{node} is Paused in the cluster (paused during the run: maintenance or Cluster-Aware Updating), "
                f"and no group moves to a paused node. Once its maintenance is over, resume it "
                f"(Resume-ClusterNode {node}), check it is Up (Get-ClusterNode), then resume the change")
    if n.state != "Up":
        return (f"{node} is {n.state} in the cluster, and the group moves only to an Up node. Bring {node} back "
                "(it must answer and show Up in Get-ClusterNode), then resume the change")
    r = facts.resource if facts else None
    if r is not None and r.possible_owners and not any(same_name(o, node) for o in r.possible_owners):
        return (f"{node} is no longer a possible owner of cluster resource {r.name} (possible owners: "
                f"{', '.join(r.possible_owners)}). Add it back (Set-ClusterOwnerNode -Resource {r.name}), then "
                "resume the change")
    return None


def ensure_group_owner(host: WindowsHost, group: str, node: str, timeout: float) -> Outcome:
    """Move the SSO group to `node` (Move-ClusterGroup) and wait there for the state it keeps from before
    the move (STATES_AFTER_MOVE): the remote wait only compares with the states passed from here."""
    doc = host.invoke("Move-ClusterGroup", {"group": group, "node": node, "timeout_sec": int(timeout),
                                            "states_after_move": {k: list(v) for k, v in STATES_AFTER_MOVE.items()}},
                      timeout=timeout + 60)
    return Outcome.of_document(doc, f"{node} already owned the group")
