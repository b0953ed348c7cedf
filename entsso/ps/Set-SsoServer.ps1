# entsso-operation: Set-SsoServer
#
# Changes: points this machine's Enterprise SSO tools (ssomanage, the SSO snap-in) at an SSO server
# for all users, with `ssomanage -serverall <server>` ("How to Set the SSO Server"). This does not
# make anything a master secret server (that is Update-SsoDatabase). When the tools already use
# that server, nothing is run (changed false).
#
# Reading the current setting: Microsoft documents `ssoclient -showserver` for it, but not the
# wording of its output; this script parses the server name after the last ':' or "is", and falls
# back to HKLM\SOFTWARE\Microsoft\ENTSSO\Client value Server, where the all-users setting is kept
# (UNVERIFIED: confirm both on a live system and record what was found in docs/).
#
# Params ($EntssoParams):
#   {"server": "SSOCLUSTER"}
#
# Output (one JSON document):
#   {"tools_server_before": "NODE1", "tools_server": "SSOCLUSTER", "changed": true}

$computer = $env:COMPUTERNAME
$target = [string]$EntssoParams.server
if (-not $target) { throw "Set-SsoServer on ${computer}: params.server is empty." }

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

function Get-ToolsServer {
    try {
        $r = Invoke-SsoTool -Tool 'ssoclient.exe' -Arguments @('-showserver')
        if ($r.ExitCode -eq 0 -and $r.Text) {
            foreach ($line in ($r.Text -split "`n")) {
                $m = [regex]::Match($line, '(?i)server\b[^:]*?(?::|\bis\b)\s*''?(?<name>[A-Za-z0-9][A-Za-z0-9.\-]*)''?\s*\.?\s*$')
                if ($m.Success) { return $m.Groups['name'].Value }
            }
        }
    } catch {
        # fall through to the registry
    }
    $key = 'HKLM:\SOFTWARE\Microsoft\ENTSSO\Client'
    if (Test-Path -LiteralPath $key) {
        $value = (Get-ItemProperty -LiteralPath $key -ErrorAction SilentlyContinue).Server
        if ($value) { return [string]$value }
    }
    $null
}

$before = Get-ToolsServer
if ($before -eq $target) {
    [pscustomobject]@{ tools_server_before = $before; tools_server = $before; changed = $false } |
        ConvertTo-Json -Depth 8 -Compress
    exit 0
}

$r = Invoke-SsoTool -Tool 'ssomanage.exe' -Arguments @('-serverall', $target)
if ($r.ExitCode -ne 0 -or $r.Text -match '(?i)\berror\b|0x8[0-9A-F]{7}|0xC[0-9A-F]{7}') {
    throw "ssomanage -serverall $target on $computer failed (exit code $($r.ExitCode)): $($r.Text). Run it as a local administrator of $computer, then re-run."
}

$after = Get-ToolsServer
if ($after -ne $target) {
    throw "The SSO tools on $computer did not reach server '$target' (last state: '$after') although ssomanage -serverall reported: $($r.Text)"
}

[pscustomobject]@{ tools_server_before = $before; tools_server = $after; changed = $true } |
    ConvertTo-Json -Depth 8 -Compress
exit 0
