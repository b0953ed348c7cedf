# entsso-operation: Move-ClusterGroup
#
# Changes: moves a failover cluster group (the SSO role) to the given node with
# Move-ClusterGroup -Node, then waits until the group is Online on that node. A group already
# Online on that node is left alone (changed false). Run on a cluster node.
#
# Params ($EntssoParams):
#   {"group": "SSO", "node": "NODE2", "timeout_sec": 300}
#
# Output (one JSON document):
#   {"group": "...", "owner_before": "NODE1", "owner_node": "NODE2", "state": "Online", "changed": true}

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
if ($ownerBefore -eq $node -and [string]$group.State -eq 'Online') {
    [pscustomobject]@{ group = $name; owner_before = $ownerBefore; owner_node = $ownerBefore;
                       state = [string]$group.State; changed = $false } | ConvertTo-Json -Depth 8 -Compress
    exit 0
}

$changed = $false
if ($ownerBefore -ne $node) {
    try {
        $null = Move-ClusterGroup -Name $name -Node $node -Wait $timeout
        $changed = $true
    } catch {
        throw "Could not move cluster group '$name' from $ownerBefore to ${node}: $($_.Exception.Message). Check that $node is a possible owner of every resource in the group (Get-ClusterOwnerNode)."
    }
} elseif ([string]$group.State -ne 'Online') {
    # Already on the node but not Online (for example Offline after a resource was stopped):
    # bring it Online there, which is what the move would have ended with.
    $null = Start-ClusterGroup -Name $name -Wait $timeout
    $changed = $true
}

$deadline = (Get-Date).AddSeconds($timeout)
$group = Get-ClusterGroup -Name $name
while ([string]$group.OwnerNode.Name -ne $node -or [string]$group.State -ne 'Online') {
    if ([string]$group.State -eq 'Failed') {
        throw "Cluster group '$name' on $([string]$group.OwnerNode.Name) failed while moving to $node (last state: Failed). Look at the resources' states in Failover Cluster Manager and the ENTSSO events on $node, then re-run."
    }
    if ((Get-Date) -ge $deadline) {
        throw "Cluster group '$name' on $node did not reach Online within $timeout s (last state: $($group.State) on $([string]$group.OwnerNode.Name)). Look at Failover Cluster Manager, then re-run."
    }
    Start-Sleep -Seconds 2
    $group = Get-ClusterGroup -Name $name
}

[pscustomobject]@{
    group        = $name
    owner_before = $ownerBefore
    owner_node   = [string]$group.OwnerNode.Name
    state        = [string]$group.State
    changed      = $changed
} | ConvertTo-Json -Depth 8 -Compress
exit 0
