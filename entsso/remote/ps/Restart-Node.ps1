# entsso-operation: Restart-Node
#
# Changes: restarts this computer (the suite calls it only with --allow-reboot). The restart is
# scheduled a few seconds ahead with shutdown.exe so that this WinRM call can return its JSON
# first; Restart-Computer -Force would cut the connection before the answer is sent. The host then
# stops answering and comes back; Python waits for it.
#
# Params ($EntssoParams): {}
#
# Output (one JSON document):
#   {"restarting": true}

$computer = $env:COMPUTERNAME
$shutdown = Join-Path $env:SystemRoot 'System32\shutdown.exe'
$ErrorActionPreference = 'Continue'   # shutdown.exe may write to stderr; its exit code is what counts
$text = (& $shutdown /r /t 10 /c 'entsso-upgrade: restart after the Enterprise SSO update' 2>&1 | ForEach-Object { "$_" }) -join ' '
$code = $LASTEXITCODE
$ErrorActionPreference = 'Stop'
# 1190 (ERROR_SHUTDOWN_IS_SCHEDULED): a restart is already pending, which is what was asked.
if ($code -ne 0 -and $code -ne 1190) {
    throw "Could not schedule a restart of $computer (shutdown.exe exit code ${code}: $text). Restart it by hand, then re-run with --resume."
}

[pscustomobject]@{ restarting = $true } | ConvertTo-Json -Depth 8 -Compress
exit 0
