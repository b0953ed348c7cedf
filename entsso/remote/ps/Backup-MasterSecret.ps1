# entsso-operation: Backup-MasterSecret
#
# Changes: writes a password-protected backup of the Enterprise SSO master secret to a file, with
# the SSO admin object model (ISSOConfigSS.BackupSecret(backupFile, filePassword,
# filePasswordReminder)) instead of `ssoconfig -backupSecret`, which prompts on a console and so
# cannot run over WinRM. Must run on the master secret server: elsewhere SSO refuses and its error
# is thrown as is. The password is used only as the BackupSecret argument: it is never written to
# output, to any other file or to an error message.
#
# Params ($EntssoParams; they arrive over stdin because of the password):
#   {"file": "C:\\SSOBackup\\CHG1.bak", "password": "...", "reminder": "..."}
#
# Output (one JSON document):
#   {"file": "...", "size": 1234, "last_write_utc": "2026-11-24T23:50:01Z"}

function ConvertTo-IsoUtc {
    param([datetime]$Time)
    $Time.ToUniversalTime().ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", [Globalization.CultureInfo]::InvariantCulture)
}

$computer = $env:COMPUTERNAME
$file = [string]$EntssoParams.file
$reminder = [string]$EntssoParams.reminder
if (-not $file) { throw "Backup-MasterSecret on ${computer}: params.file is empty; give the backup file's full path." }
if ([string]::IsNullOrEmpty([string]$EntssoParams.password)) { throw "Backup-MasterSecret on ${computer}: params.password is empty; a secret backup without its password is worthless." }

$folder = Split-Path -Path $file -Parent
if (-not (Test-Path -LiteralPath $folder -PathType Container)) {
    throw "Backup folder '$folder' does not exist on $computer; create it (and grant the SSO administrators write access), then re-run."
}
if (Test-Path -LiteralPath $file) {
    throw "Secret backup file '$file' already exists on $computer; it is never overwritten. Move it away or choose another file name, then re-run."
}

$common = $env:CommonProgramW6432
if (-not $common) { $common = $env:CommonProgramFiles }
$interop = Join-Path $common 'Enterprise Single Sign-On\Microsoft.EnterpriseSingleSignOn.Interop.dll'
if (-not (Test-Path -LiteralPath $interop)) {
    throw "Enterprise SSO is not installed on $computer ('$interop' is missing); back up the secret on the master secret server."
}
Add-Type -Path $interop

# SSOConfigOM implements ISSOConfigSS; PowerShell does not show interface methods of a COM
# interop object, so call through the interface type (as public SSO PowerShell wrappers do).
$configOm = New-Object -TypeName 'Microsoft.EnterpriseSingleSignOn.Interop.SSOConfigOM'
$flags = [System.Reflection.BindingFlags]::InvokeMethod -bor [System.Reflection.BindingFlags]::Instance -bor [System.Reflection.BindingFlags]::Public
try {
    $null = [Microsoft.EnterpriseSingleSignOn.Interop.ISSOConfigSS].InvokeMember('BackupSecret', $flags, $null, $configOm, [object[]]@($file, [string]$EntssoParams.password, $reminder))
} catch {
    $inner = $_.Exception
    while ($null -ne $inner.InnerException) { $inner = $inner.InnerException }
    $code = '0x{0:X8}' -f $inner.HResult
    throw "SSO refused to back up the master secret on $computer ($code): $($inner.Message). Run this on the master secret server (ssomanage -displaydb shows it) as an SSO administrator."
}

$item = Get-Item -LiteralPath $file -ErrorAction SilentlyContinue
if ($null -eq $item -or $item.Length -eq 0) {
    throw "BackupSecret returned without error but '$file' is missing or empty on $computer; check the Application event log (source ENTSSO)."
}

[pscustomobject]@{
    file           = $file
    size           = [long]$item.Length
    last_write_utc = (ConvertTo-IsoUtc $item.LastWriteTimeUtc)
} | ConvertTo-Json -Depth 8 -Compress
exit 0
