# entsso-operation: Set-HostInstanceState
#
# Changes: starts or stops this computer's BizTalk host instances through BizTalk's WMI provider
# (root/MicrosoftBizTalkServer, MSBTS_HostInstance, methods Start() and Stop()), in the order given.
# Only the instance of each host whose RunningServer is this computer is touched. Isolated host
# instances (HostType 2) run in IIS and have no service to start or stop: they are skipped with
# changed false and their state as read. An instance already in the asked state is left alone.
#
# Params ($EntssoParams):
#   {"host_instances": [{"host_name": "BizTalkServerApplication", "state": "Stopped"}], "timeout_sec": 120}
#   state: "Running" or "Stopped"; timeout_sec: per host instance.
#
# Output (one JSON document):
#   {"host_instances": [{"host_name": "...", "state_before": "Running", "state": "Stopped", "changed": true}]}

$Namespace = 'root/MicrosoftBizTalkServer'
$HostInstanceStates = @{ 1 = 'Stopped'; 2 = 'StartPending'; 3 = 'StopPending'; 4 = 'Running';
                         5 = 'ContinuePending'; 6 = 'PausePending'; 7 = 'Paused'; 8 = 'Unknown' }
$computer = $env:COMPUTERNAME
$timeout = 120
if ($EntssoParams.timeout_sec) { $timeout = [int]$EntssoParams.timeout_sec }

function Get-HostInstance {
    param([string]$HostName)
    $filter = "HostName = '{0}' AND RunningServer = '{1}'" -f $HostName.Replace("'", "\'"), $computer
    $found = @(Get-CimInstance -Namespace $Namespace -ClassName 'MSBTS_HostInstance' -Filter $filter)
    if ($found.Count -eq 0) {
        throw "Host instance of host '$HostName' was not found on $computer (no MSBTS_HostInstance with RunningServer = '$computer'). Check the host name in BizTalk Administration (Platform Settings > Host Instances)."
    }
    $found[0]
}

function Get-StateName {
    param($Instance)
    $name = $HostInstanceStates[[int]$Instance.ServiceState]
    if (-not $name) { $name = 'Unknown' }
    $name
}

$results = New-Object System.Collections.Generic.List[object]
foreach ($wanted in @($EntssoParams.host_instances)) {
    $hostName = [string]$wanted.host_name
    $target = [string]$wanted.state
    if ($target -ne 'Running' -and $target -ne 'Stopped') {
        throw "Host instance of '$hostName' on ${computer}: asked state '$target' is not 'Running' or 'Stopped'."
    }
    $instance = Get-HostInstance -HostName $hostName
    $before = Get-StateName $instance

    if ([int]$instance.HostType -eq 2) {
        # Isolated host: nothing to start or stop here (it lives in an IIS application pool).
        $results.Add([pscustomobject]@{ host_name = $hostName; state_before = $before; state = $before; changed = $false })
        continue
    }
    if ($before -eq $target) {
        $results.Add([pscustomobject]@{ host_name = $hostName; state_before = $before; state = $before; changed = $false })
        continue
    }
    if ($target -eq 'Running' -and [bool]$instance.IsDisabled) {
        throw "Host instance '$($instance.Name)' on $computer is disabled (IsDisabled = true); enable it in BizTalk Administration (host instance properties, clear 'Disable host instance from starting'), then re-run."
    }

    try {
        if ($target -eq 'Running') {
            if ($before -ne 'StartPending') { $null = Invoke-CimMethod -InputObject $instance -MethodName 'Start' }
        } else {
            if ($before -ne 'StopPending') { $null = Invoke-CimMethod -InputObject $instance -MethodName 'Stop' }
        }
    } catch {
        throw "Could not bring host instance '$($instance.Name)' on $computer to ${target}: $($_.Exception.Message). Look at the Application event log (source BizTalk Server) on $computer."
    }

    $deadline = (Get-Date).AddSeconds($timeout)
    $state = Get-StateName (Get-HostInstance -HostName $hostName)
    while ($state -ne $target) {
        if ((Get-Date) -ge $deadline) {
            throw "Host instance '$($instance.Name)' on $computer did not reach $target within $timeout s (last state: $state). Look at the Application event log (source BizTalk Server) on $computer, then re-run."
        }
        Start-Sleep -Seconds 2
        $state = Get-StateName (Get-HostInstance -HostName $hostName)
    }
    $results.Add([pscustomobject]@{ host_name = $hostName; state_before = $before; state = $state; changed = $true })
}

[pscustomobject]@{ host_instances = @($results.ToArray()) } | ConvertTo-Json -Depth 8 -Compress
exit 0
