# entsso-operation: Set-SsoServer
#
# Changes: points this machine's Enterprise SSO tools (ssomanage, the SSO snap-in) at an SSO server
# for all users, with `ssomanage -serverall <server>` ("How to Set the SSO Server"). This does not
# make anything a master secret server (that is Update-SsoDatabase).
#
# Thin: it runs `ssomanage -displaydb` before and after, whose first line names the SSO server
# ssomanage uses ("Using SSO server on this computer" / "Using SSO server : X", printed even when
# that server does not answer), and returns all three tools' text untouched. entsso/sso.py decides
# whether the tools use the server afterwards and whether anything changed; nothing here reads the
# text. (`ssoclient -showserver`'s output and the registry value -serverall writes are not
# published: docs/domain-notes.md.) Writing the setting the machine already has changes nothing.
#
# Params ($EntssoParams):
#   {"server": "SSOCLUSTER"}
#
# Output (one JSON document):
#   {"computer_name": "NODE1",
#    "before":    {"exit_code": 0, "stdout": "Using SSO server : NODE1\r\n...", "stderr": "", "run_error": null},
#    "serverall": {"exit_code": 0, "stdout": "...", "stderr": "", "run_error": null},
#    "after":     {"exit_code": 0, "stdout": "Using SSO server : SSOCLUSTER\r\n...", "stderr": "", "run_error": null}}

$computer = $env:COMPUTERNAME
$target = [string]$EntssoParams.server
if (-not $target) { throw "Set-SsoServer on ${computer}: params.server is empty." }

function Invoke-SsoTool {
    # Runs an SSO tool and returns what it printed, untouched (stdout, stderr, exit code).
    param([string]$Tool, [string[]]$Arguments)
    $common = $env:CommonProgramW6432
    if (-not $common) { $common = $env:CommonProgramFiles }
    $exe = Join-Path $common (Join-Path 'Enterprise Single Sign-On' $Tool)
    if (-not (Test-Path -LiteralPath $exe)) {
        throw "Enterprise SSO tools are not installed on $computer ('$exe' is missing)."
    }
    $psi = New-Object System.Diagnostics.ProcessStartInfo
    $psi.FileName = $exe
    $psi.Arguments = ($Arguments -join ' ')
    $psi.UseShellExecute = $false
    $psi.CreateNoWindow = $true
    $psi.RedirectStandardOutput = $true
    $psi.RedirectStandardError = $true
    $process = [System.Diagnostics.Process]::Start($psi)
    # Read stderr while stdout drains asynchronously: reading one pipe to its end first can deadlock
    # a tool that fills the other (ProcessStartInfo.RedirectStandardError remarks).
    $stdout = $process.StandardOutput.ReadToEndAsync()
    $stderr = $process.StandardError.ReadToEnd()
    $process.WaitForExit()
    [pscustomobject]@{ exit_code = $process.ExitCode; stdout = $stdout.Result; stderr = $stderr; run_error = $null }
}

$before = Invoke-SsoTool -Tool 'ssomanage.exe' -Arguments @('-displaydb')
$serverall = Invoke-SsoTool -Tool 'ssomanage.exe' -Arguments @('-serverall', ('"' + $target + '"'))
$after = Invoke-SsoTool -Tool 'ssomanage.exe' -Arguments @('-displaydb')

[pscustomobject]@{ computer_name = $computer; before = $before; serverall = $serverall; after = $after } |
    ConvertTo-Json -Depth 8 -Compress
exit 0
