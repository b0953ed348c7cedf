# entsso-operation: Update-SsoDatabase
#
# Changes: moves the Enterprise SSO master secret server, the supported way ("How to Move the
# Master Secret Server"): writes <sso><globalInfo><secretServer>NAME</secretServer></globalInfo></sso>
# to a temporary file, runs `ssomanage -updatedb <file>` (through the SSO server this machine's SSO
# tools use, which must be running), re-reads the setting with `ssomanage -displaydb` until it shows
# the new name, and deletes the temporary file. When -displaydb already shows the name, nothing is
# run (changed false).
#
# Params ($EntssoParams):
#   {"secret_server": "NODE1"}            (optional "timeout_sec", default 120, for the re-read)
#
# Output (one JSON document):
#   {"secret_server_before": "SSOCLUSTER", "secret_server": "NODE1", "changed": true, "output": "..."}

$computer = $env:COMPUTERNAME
$target = [string]$EntssoParams.secret_server
if (-not $target) { throw "Update-SsoDatabase on ${computer}: params.secret_server is empty." }
$timeout = 120
if ($EntssoParams.timeout_sec) { $timeout = [int]$EntssoParams.timeout_sec }

function Invoke-SsoTool {
    param([string]$Tool, [string[]]$Arguments)
    $common = $env:CommonProgramW6432
    if (-not $common) { $common = $env:CommonProgramFiles }
    $exe = Join-Path $common (Join-Path 'Enterprise Single Sign-On' $Tool)
    if (-not (Test-Path -LiteralPath $exe)) {
        throw "Enterprise SSO tools are not installed on $computer ('$exe' is missing)."
    }
    # Windows PowerShell 5.1 turns a native tool's stderr line into a terminating error under
    # $ErrorActionPreference = 'Stop' when redirected with 2>&1; the tool's own text is what we want.
    $ErrorActionPreference = 'Continue'
    $lines = & $exe @Arguments 2>&1 | ForEach-Object { "$_" }
    [pscustomobject]@{ ExitCode = $LASTEXITCODE; Text = ((@($lines) -join "`n").Trim()) }
}

function Read-SecretServer {
    # `ssomanage -displaydb` prints "Secret Server Name: NODE1" among the SSO database settings;
    # it needs a running SSO server (0x800706BA when there is none).
    $r = Invoke-SsoTool -Tool 'ssomanage.exe' -Arguments @('-displaydb')
    $m = [regex]::Match($r.Text, '(?im)^\s*Secret\s*Server(?:\s*Name)?\s*:\s*(?<name>\S+)\s*$')
    if ($r.ExitCode -ne 0 -or -not $m.Success) {
        throw "ssomanage -displaydb on $computer did not show the secret server (exit code $($r.ExitCode)): $($r.Text). Check that ENTSSO runs on the SSO server this machine's SSO tools use (ssoclient -showserver), then re-run."
    }
    $m.Groups['name'].Value
}

$before = Read-SecretServer
if ($before -eq $target) {
    [pscustomobject]@{ secret_server_before = $before; secret_server = $before; changed = $false; output = '' } |
        ConvertTo-Json -Depth 8 -Compress
    exit 0
}

$file = Join-Path ([IO.Path]::GetTempPath()) ('entsso-updatedb-' + [guid]::NewGuid().ToString('N') + '.xml')
try {
    $xml = '<sso><globalInfo><secretServer>' + [Security.SecurityElement]::Escape($target) +
           '</secretServer></globalInfo></sso>'
    [IO.File]::WriteAllText($file, $xml, (New-Object System.Text.UTF8Encoding($false)))

    $r = Invoke-SsoTool -Tool 'ssomanage.exe' -Arguments @('-updatedb', $file)
    # ssomanage reports failures as "ERROR: 0x..." text; do not trust the exit code alone.
    if ($r.ExitCode -ne 0 -or $r.Text -match '(?i)\berror\b|0x8[0-9A-F]{7}|0xC[0-9A-F]{7}') {
        throw "ssomanage -updatedb on $computer failed (exit code $($r.ExitCode)): $($r.Text). The secret server is still '$before'. Check that ENTSSO runs on the SSO server this machine's tools use and that this account is an SSO administrator, then re-run."
    }
} finally {
    Remove-Item -LiteralPath $file -Force -ErrorAction SilentlyContinue
}

# The SSO server answers -displaydb from SSODB; allow for its refresh before calling it a failure.
$deadline = (Get-Date).AddSeconds($timeout)
$after = Read-SecretServer
while ($after -ne $target) {
    if ((Get-Date) -ge $deadline) {
        throw "The secret server in SSODB did not reach '$target' within $timeout s (last state: '$after' as ssomanage -displaydb on $computer shows it) although ssomanage -updatedb reported success: $($r.Text)"
    }
    Start-Sleep -Seconds 5
    $after = Read-SecretServer
}

[pscustomobject]@{
    secret_server_before = $before
    secret_server        = $after
    changed              = $true
    output               = $r.Text
} | ConvertTo-Json -Depth 8 -Compress
exit 0
