# entsso-operation: Set-ClusterResourceState
#
# Changes: brings a failover cluster resource (the ENTSSO Generic Service) online or offline with
# Start-ClusterResource / Stop-ClusterResource, then waits until the cluster reports the state.
# A resource already in the asked state is left alone (changed false). Run on a cluster node.
#
# Params ($EntssoParams):
#   {"resource": "ENTSSO", "state": "Offline", "timeout_sec": 120}
#   state: "Online" or "Offline".
#
# Output (one JSON document):
#   {"resource": "...", "state_before": "Online", "state": "Offline", "owner_node": "NODE1", "changed": true}

Import-Module FailoverClusters

$computer = $env:COMPUTERNAME
$name = [string]$EntssoParams.resource
$target = [string]$EntssoParams.state
$timeout = 120
if ($EntssoParams.timeout_sec) { $timeout = [int]$EntssoParams.timeout_sec }
if ($target -ne 'Online' -and $target -ne 'Offline') {
    throw "Cluster resource '$name' on ${computer}: asked state '$target' is not 'Online' or 'Offline'."
}

# Cluster cmdlets throw a terminating error for an unknown name, which -ErrorAction cannot mute.
$resource = $null
try { $resource = Get-ClusterResource -Name $name } catch { $resource = $null }
if ($null -eq $resource) {
    throw "Cluster resource '$name' was not found in the cluster of $computer; check the resource name in Failover Cluster Manager (Roles > the SSO role > Resources)."
}
$before = [string]$resource.State
if ($before -eq $target) {
    [pscustomobject]@{ resource = $name; state_before = $before; state = $before;
                       owner_node = [string]$resource.OwnerNode.Name; changed = $false } | ConvertTo-Json -Depth 8 -Compress
    exit 0
}

# -Wait makes the cmdlet itself wait up to timeout_sec; the loop below is the check that counts. One
# deadline for both, taken before the cmdlet, so the call ends within timeout_sec (review m1).
$deadline = (Get-Date).AddSeconds($timeout)
try {
    if ($target -eq 'Online') {
        $null = Start-ClusterResource -Name $name -Wait $timeout
    } else {
        $null = Stop-ClusterResource -Name $name -Wait $timeout
    }
} catch {
    throw "Could not bring cluster resource '$name' $target from ${computer}: $($_.Exception.Message). Look at the cluster events in Failover Cluster Manager."
}

$resource = Get-ClusterResource -Name $name
while ([string]$resource.State -ne $target) {
    if ($target -eq 'Online' -and [string]$resource.State -eq 'Failed') {
        throw "Cluster resource '$name' on $([string]$resource.OwnerNode.Name) failed while coming Online (last state: Failed). Look at the System and Application event logs (sources ENTSSO, FailoverClustering) on that node, then re-run."
    }
    if ((Get-Date) -ge $deadline) {
        throw "Cluster resource '$name' on $([string]$resource.OwnerNode.Name) did not reach $target within $timeout s (last state: $($resource.State)). Look at the cluster events in Failover Cluster Manager, then re-run."
    }
    Start-Sleep -Seconds 2
    $resource = Get-ClusterResource -Name $name
}

[pscustomobject]@{
    resource     = $name
    state_before = $before
    state        = [string]$resource.State
    owner_node   = [string]$resource.OwnerNode.Name
    changed      = $true
} | ConvertTo-Json -Depth 8 -Compress
exit 0
