# entsso-operation: Move-ClusterGroup
#
# Changes: moves a failover cluster group (the SSO role) to the given node with
# Move-ClusterGroup -Node -Wait, then waits until the group is on that node in one of the states
# Python accepts for the state it had before the move (params.states_after_move, decided in
# entsso/cluster.py: a moved group keeps its state, so a PartialOnline group stays PartialOnline).
# A group already on that node in an accepted state is left alone (changed false). A group in a
# state that has no entry is not moved. Run on a cluster node.
#
# Params ($EntssoParams):
#   {"group": "SSO", "node": "NODE2", "timeout_sec": 300,
#    "states_after_move": {"Online": ["Online"], "PartialOnline": ["PartialOnline", "Online"]}}
#
# Output (one JSON document):
#   {"group": "...", "owner_before": "NODE1", "owner_node": "NODE2", "state_before": "PartialOnline",
#    "state": "PartialOnline", "changed": true}

Import-Module FailoverClusters

$computer = $env:COMPUTERNAME
$name = [string]$EntssoParams.group
$node = [string]$EntssoParams.node
$timeout = 300
if ($EntssoParams.timeout_sec) { $timeout = [int]$EntssoParams.timeout_sec }

# Cluster cmdlets throw a terminating error for an unknown name, which -ErrorAction cannot mute.
$group = $null
try { $group = Get-ClusterGroup -Name $name } catch { $group = $null }
if ($null -eq $group) {
    throw "Cluster group '$name' was not found in the cluster of $computer; check the role name in Failover Cluster Manager."
}
$clusterNode = $null
try { $clusterNode = Get-ClusterNode -Name $node } catch { $clusterNode = $null }
if ($null -eq $clusterNode) {
    throw "Node '$node' is not a node of the cluster of $computer; check the node name (Get-ClusterNode)."
}
if ([string]$clusterNode.State -ne 'Up') {
    throw "Node '$node' is $($clusterNode.State), not Up: cluster group '$name' cannot move there. Bring the node Up (Resume-ClusterNode, or start its cluster service), then re-run."
}

$ownerBefore = [string]$group.OwnerNode.Name
$stateBefore = [string]$group.State
$accept = @($EntssoParams.states_after_move.$stateBefore | Where-Object { $_ } | ForEach-Object { [string]$_ })
if ($accept.Count -eq 0) {
    throw "Cluster group '$name' is $stateBefore on ${ownerBefore}: it is moved only from a state in states_after_move ($(@($EntssoParams.states_after_move.PSObject.Properties.Name) -join ', ')). Look at its resources in Failover Cluster Manager, bring the group up there, then re-run."
}
if ($ownerBefore -eq $node -and $accept -contains $stateBefore) {
    [pscustomobject]@{ group = $name; owner_before = $ownerBefore; owner_node = $ownerBefore;
                       state_before = $stateBefore; state = $stateBefore; changed = $false } |
        ConvertTo-Json -Depth 8 -Compress
    exit 0
}

# One deadline for the cmdlet's own -Wait and the wait below, so the call ends within timeout_sec (review m1).
$deadline = (Get-Date).AddSeconds($timeout)
$changed = $false
if ($ownerBefore -ne $node) {
    try {
        $null = Move-ClusterGroup -Name $name -Node $node -Wait $timeout
        $changed = $true
    } catch {
        throw "Could not move cluster group '$name' from $ownerBefore to ${node}: $($_.Exception.Message). Check that $node is a possible owner of every resource in the group (Get-ClusterOwnerNode)."
    }
}

# The cluster returns a moved group to the state it had (MoveClusterGroup remarks); wait for it.
$group = Get-ClusterGroup -Name $name
while ([string]$group.OwnerNode.Name -ne $node -or $accept -notcontains [string]$group.State) {
    if ([string]$group.State -eq 'Failed') {
        throw "Cluster group '$name' on $([string]$group.OwnerNode.Name) failed while moving to $node (last state: Failed). Look at the resources' states in Failover Cluster Manager and the ENTSSO events on $node, then re-run."
    }
    if ((Get-Date) -ge $deadline) {
        throw "Cluster group '$name' on $node did not reach $($accept -join ' or ') within $timeout s (state before the move: $stateBefore; last state: $($group.State) on $([string]$group.OwnerNode.Name)). Look at Failover Cluster Manager, then re-run."
    }
    Start-Sleep -Seconds 2
    $group = Get-ClusterGroup -Name $name
}

[pscustomobject]@{
    group        = $name
    owner_before = $ownerBefore
    owner_node   = [string]$group.OwnerNode.Name
    state_before = $stateBefore
    state        = [string]$group.State
    changed      = $changed
} | ConvertTo-Json -Depth 8 -Compress
exit 0
