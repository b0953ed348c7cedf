# entsso-operation: Set-ServiceState
#
# Changes: starts or stops Windows services through the Service Control Manager, one after the
# other in the order given. A service already in the asked state is left alone (changed false).
# A service whose dependents are still running is not stopped: the script says which dependents
# to stop first (for ENTSSO these are the BizTalk host instances, BTSSvc$<HostName>).
#
# Params ($EntssoParams):
#   {"services": [{"name": "RuleEngineUpdateService", "status": "Stopped"}], "timeout_sec": 120}
#   status: "Running" or "Stopped"; timeout_sec: per service.
#
# Output (one JSON document):
#   {"services": [{"name": "...", "status_before": "Running", "status": "Stopped", "changed": true}]}
#   A service asked to stop while StartPending ends the list: it comes back as found (status StartPending,
#   changed false) and the services after it are not touched; the caller asks again once it has started.

$computer = $env:COMPUTERNAME
$timeout = 120
if ($EntssoParams.timeout_sec) { $timeout = [int]$EntssoParams.timeout_sec }

function Wait-ServiceStatus {
    # ServiceController.WaitForStatus throws System.ServiceProcess.TimeoutException with .NET's own text;
    # say it in this contract's words instead (review m5).
    param($Service, [string]$Status, [int]$Seconds, [string]$Why)
    try {
        $Service.WaitForStatus($Status, [TimeSpan]::FromSeconds($Seconds))
    } catch [System.ServiceProcess.TimeoutException] {
        $Service.Refresh()
        throw "Service '$($Service.Name)' on $computer did not reach $Status within $Seconds s $Why (last state: $($Service.Status)). Look at the System event log (Service Control Manager) on $computer, then re-run."
    }
}

$results = New-Object System.Collections.Generic.List[object]
foreach ($wanted in @($EntssoParams.services)) {
    $name = [string]$wanted.name
    $target = [string]$wanted.status
    if ($target -ne 'Running' -and $target -ne 'Stopped') {
        throw "Service '$name' on ${computer}: asked state '$target' is not 'Running' or 'Stopped'."
    }
    $svc = Get-Service -Name $name -ErrorAction SilentlyContinue
    if ($null -eq $svc) {
        throw "Service '$name' was not found on $computer"
    }
    $before = [string]$svc.Status
    if ($before -eq $target) {
        $results.Add([pscustomobject]@{ name = $name; status_before = $before; status = $before; changed = $false })
        continue
    }

    if ($target -eq 'Stopped') {
        $running = @($svc.DependentServices | Where-Object { $_.Status -ne 'Stopped' } | ForEach-Object { $_.Name })
        if ($running.Count -gt 0) {
            throw "Service '$name' on $computer has running dependent services ($($running -join ', ')); stop them first (for BTSSvc`$ services: stop the BizTalk host instances), then re-run."
        }
        # A service still starting takes no stop control (1061, review m3): it is returned as found and the
        # rest of the list is left; entsso/services.py waits for it to start and asks again.
        if ($before -eq 'StartPending') {
            $results.Add([pscustomobject]@{ name = $name; status_before = $before; status = $before; changed = $false })
            break
        }
        # ServiceController.Stop()/Start() return at once, so the deadline below is ours;
        # Stop-Service/Start-Service would wait without a limit.
        if ($before -ne 'StopPending') { $svc.Stop() }
    } else {
        if ($svc.StartType -eq 'Disabled') {
            throw "Service '$name' on $computer is disabled (start type Disabled); set its start type first, then re-run."
        }
        if ($before -eq 'StopPending') { Wait-ServiceStatus $svc 'Stopped' $timeout 'before it could be started' }
        if ($before -ne 'StartPending') {
            try { $svc.Start() } catch {
                # ServiceController.Start wraps the SCM's refusal (1069: a logon failure, say) as
                # "Cannot start service X on computer '.'."; its innermost Win32Exception names the cause
                $inner = $_.Exception
                while ($null -ne $inner.InnerException) { $inner = $inner.InnerException }
                $code = ''
                if ($inner -is [System.ComponentModel.Win32Exception]) { $code = " (Win32 error $($inner.NativeErrorCode))" }
                $text = ([string]$inner.Message).TrimEnd('.')
                throw "Service '$name' on $computer could not be started: $text.$code Look at the System event log (Service Control Manager) on $computer, then re-run."
            }
        }
    }

    $deadline = (Get-Date).AddSeconds($timeout)
    $svc.Refresh()
    while ([string]$svc.Status -ne $target) {
        if ($target -eq 'Running' -and [string]$svc.Status -eq 'Stopped') {
            # it started and stopped again: say why, with the SCM's exit codes (review m4)
            $cim = Get-CimInstance -ClassName Win32_Service -Filter ("Name = '{0}'" -f $name.Replace("'", "\'"))
            throw "Service '$name' on $computer stopped again after it was started (exit code $($cim.ExitCode), service-specific exit code $($cim.ServiceSpecificExitCode)). Look at the System event log (Service Control Manager) and the service's own log on $computer, then re-run."
        }
        if ((Get-Date) -ge $deadline) {
            throw "Service '$name' on $computer did not reach $target within $timeout s (last state: $($svc.Status)). Look at the System event log (Service Control Manager) and the service's own log on $computer, then re-run."
        }
        Start-Sleep -Seconds 2
        $svc.Refresh()
    }
    $results.Add([pscustomobject]@{ name = $name; status_before = $before; status = [string]$svc.Status; changed = $true })
}

[pscustomobject]@{ services = @($results.ToArray()) } | ConvertTo-Json -Depth 8 -Compress
exit 0
