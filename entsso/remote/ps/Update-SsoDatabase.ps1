# entsso-operation: Update-SsoDatabase
#
# Changes: moves the Enterprise SSO master secret server, the supported way ("How to Move the
# Master Secret Server"): writes <sso><globalInfo><secretServer>NAME</secretServer></globalInfo></sso>
# to a temporary file, runs `ssomanage -updatedb <file>` (through the SSO server this machine's SSO
# tools use, which must be running) and deletes the temporary file. What ssomanage prints comes back
# untouched; entsso/sso.py reads it and then reads SSODB to see whether the secret server moved.
#
# Params ($EntssoParams):
#   {"secret_server": "NODE1"}
#
# Output (one JSON document):
#   {"exit_code": 0, "stdout": "Using SSO server : SSOCLUSTER\r\n...", "stderr": ""}

$computer = $env:COMPUTERNAME
$target = [string]$EntssoParams.secret_server
if (-not $target) { throw "Update-SsoDatabase on ${computer}: params.secret_server is empty." }

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
    [pscustomobject]@{ exit_code = $process.ExitCode; stdout = $stdout.Result; stderr = $stderr }
}

$file = Join-Path ([IO.Path]::GetTempPath()) ('entsso-updatedb-' + [guid]::NewGuid().ToString('N') + '.xml')
try {
    $xml = '<sso><globalInfo><secretServer>' + [Security.SecurityElement]::Escape($target) +
           '</secretServer></globalInfo></sso>'
    [IO.File]::WriteAllText($file, $xml, (New-Object System.Text.UTF8Encoding($false)))
    # The temporary folder is under the WinRM account's profile, whose name may hold a space.
    $r = Invoke-SsoTool -Tool 'ssomanage.exe' -Arguments @('-updatedb', ('"' + $file + '"'))
} finally {
    Remove-Item -LiteralPath $file -Force -ErrorAction SilentlyContinue
}

$r | ConvertTo-Json -Depth 8 -Compress
exit 0
