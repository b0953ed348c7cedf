# entsso-operation: Get-ClusterSsoRoles
#
# Reads (changes nothing), for discovery (python -m entsso.discover): the failover cluster this node is
# in — its name, its nodes, and every Generic Service resource with the group that holds it and the
# Windows service it runs (its ServiceName private property) — so Python can find the ENTSSO resource
# and its group without knowing their names. Raw values only; Python picks.
#
# Params ($EntssoParams, see docs/operations.md): none.
#
# Output (one JSON document):
#   {"cluster_name": "SSOCLUSTER" | null, "error": null | "...",
#    "nodes": [{"name", "state"}],
#    "resources": [{"name", "group", "state", "owner_node", "resource_type", "service_name"}]}

$out = [ordered]@{ cluster_name = $null; error = $null; nodes = @(); resources = @() }
try {
    Import-Module FailoverClusters -ErrorAction Stop
    $out.cluster_name = [string](Get-Cluster).Name
    $out.nodes = @(Get-ClusterNode | ForEach-Object { [pscustomobject]@{ name = [string]$_.Name; state = [string]$_.State } })
    $out.resources = @(Get-ClusterResource | Where-Object { [string]$_.ResourceType.Name -eq 'Generic Service' } | ForEach-Object {
        $serviceName = $null
        try {
            $serviceName = [string](Get-ClusterParameter -InputObject $_ -Name ServiceName).Value
        } catch {
            $serviceName = $null
        }
        [pscustomobject]@{
            name          = [string]$_.Name
            group         = [string]$_.OwnerGroup.Name
            state         = [string]$_.State
            owner_node    = [string]$_.OwnerNode.Name
            resource_type = [string]$_.ResourceType.Name
            service_name  = $serviceName
        }
    })
} catch {
    $out.error = [string]$_.Exception.Message
}

[pscustomobject]$out | ConvertTo-Json -Depth 8 -Compress
exit 0
