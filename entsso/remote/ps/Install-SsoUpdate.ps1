# entsso-operation: Install-SsoUpdate
#
# Changes: runs a silent Enterprise SSO update package on this host and waits for it to finish.
#   .msp -> msiexec.exe /update "<path>" <arguments> /l*v "<log_path>"   (Windows Installer patch)
#   .msi -> msiexec.exe /i "<path>" <arguments> /l*v "<log_path>"
#   .exe -> "<path>" <arguments>   (the package's own switches; log_path is reported as given)
# The exit code is data, not an error: Python interprets Windows Installer codes (0, 3010, 1641,
# 1603, 1618 ...). Only a package that cannot be found, or that is still running after timeout_sec,
# is an error. Note: ESSO setup's *upgrade* is not silent (Microsoft); this is for CU/hotfix packages.
#
# Params ($EntssoParams):
#   {"path": "C:\\Updates\\sso.msp", "arguments": "/quiet /norestart",
#    "log_path": "C:\\Windows\\Temp\\entsso-update.log", "timeout_sec": 1800}
#
# Output (one JSON document):
#   {"exit_code": 0, "log_path": "...", "version_after": "10.0.2000.0"}

$computer = $env:COMPUTERNAME
$path = [string]$EntssoParams.path
$arguments = [string]$EntssoParams.arguments
$logPath = [string]$EntssoParams.log_path
$timeout = 1800
if ($EntssoParams.timeout_sec) { $timeout = [int]$EntssoParams.timeout_sec }

if (-not $path -or -not (Test-Path -LiteralPath $path -PathType Leaf)) {
    throw "Update package '$path' was not found on $computer; copy it there (the inventory's package path), then re-run."
}

$extension = [IO.Path]::GetExtension($path).ToLowerInvariant()
switch ($extension) {
    '.msp' {
        $file = Join-Path $env:SystemRoot 'System32\msiexec.exe'
        $argumentLine = '/update "{0}" {1}' -f $path, $arguments
        if ($logPath) { $argumentLine += ' /l*v "{0}"' -f $logPath }
    }
    '.msi' {
        $file = Join-Path $env:SystemRoot 'System32\msiexec.exe'
        $argumentLine = '/i "{0}" {1}' -f $path, $arguments
        if ($logPath) { $argumentLine += ' /l*v "{0}"' -f $logPath }
    }
    '.exe' {
        $file = $path
        $argumentLine = $arguments
    }
    default {
        throw "Update package '$path' on ${computer}: unknown kind '$extension' (expected .msp, .msi or .exe)."
    }
}

$startArgs = @{ FilePath = $file; PassThru = $true; WindowStyle = 'Hidden' }
if ($argumentLine -and $argumentLine.Trim()) { $startArgs['ArgumentList'] = $argumentLine.Trim() }
$process = Start-Process @startArgs
# Keep a handle open so ExitCode is still readable after the process ends (Start-Process -PassThru).
$null = $process.Handle
# WaitForExit with a limit instead of Start-Process -Wait, which has none.
if (-not $process.WaitForExit($timeout * 1000)) {
    throw "Update package '$path' on $computer did not finish within $timeout s (last state: still running as process $($process.Id)). Look at '$logPath' on $computer; do not start it again while it runs."
}
$exitCode = $process.ExitCode

$common = $env:CommonProgramW6432
if (-not $common) { $common = $env:CommonProgramFiles }
$entssoExe = Join-Path $common 'Enterprise Single Sign-On\ENTSSO.exe'
$versionAfter = $null
if (Test-Path -LiteralPath $entssoExe) {
    $info = (Get-Item -LiteralPath $entssoExe).VersionInfo
    $versionAfter = '{0}.{1}.{2}.{3}' -f $info.FileMajorPart, $info.FileMinorPart, $info.FileBuildPart, $info.FilePrivatePart
}

$reportedLog = $null
if ($logPath) { $reportedLog = $logPath }
[pscustomobject]@{
    exit_code     = [int]$exitCode
    log_path      = $reportedLog
    version_after = $versionAfter
} | ConvertTo-Json -Depth 8 -Compress
exit 0
