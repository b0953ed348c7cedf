# entsso-operation: Read-SecretBackup
#
# Reads (changes nothing) a master secret backup file back through the SSO admin object model: its
# password reminder (ISSOConfigSS.GetFilePasswordReminder(restoreFile, out filePasswordReminder), Learn,
# "ISSOConfigSS.GetFilePasswordReminder Method": "goes directly to the restore file to get the password
# reminder", so the caller needs read access to the file), and the file's size and SHA-256 (Get-FileHash).
# No password is needed or sent. What SSO or Windows answers is returned as is: the suite decides.
#
# Params ($EntssoParams):
#   {"file": "C:\\SSOBackup\\CHG1.bak"}
#
# Output (one JSON document):
#   {"file": "...", "size": 1234, "sha256": "AB12...", "reminder": "...", "reminder_error": null}
#   reminder_error: {"hresult": "0x80070002", "message": "..."} when SSO refused to read the reminder

$computer = $env:COMPUTERNAME
$file = [string]$EntssoParams.file
if (-not $file) { throw "Read-SecretBackup on ${computer}: params.file is empty." }
$item = Get-Item -LiteralPath $file -ErrorAction Stop
$hash = Get-FileHash -LiteralPath $file -Algorithm SHA256 -ErrorAction Stop

$common = $env:CommonProgramW6432
if (-not $common) { $common = $env:CommonProgramFiles }
Add-Type -Path (Join-Path $common 'Enterprise Single Sign-On\Microsoft.EnterpriseSingleSignOn.Interop.dll')

# through the interface type, as Backup-MasterSecret.ps1 calls BackupSecret; the out parameter comes back in
# the argument array (reflection writes by-reference arguments back)
$configOm = New-Object -TypeName 'Microsoft.EnterpriseSingleSignOn.Interop.SSOConfigOM'
$flags = [System.Reflection.BindingFlags]::InvokeMethod -bor [System.Reflection.BindingFlags]::Instance -bor [System.Reflection.BindingFlags]::Public
$arguments = [object[]]@($file, $null)
$reminder = $null
$reminderError = $null
try {
    $null = [Microsoft.EnterpriseSingleSignOn.Interop.ISSOConfigSS].InvokeMember('GetFilePasswordReminder', $flags, $null, $configOm, $arguments)
    $reminder = $arguments[1]
} catch {
    $inner = $_.Exception
    while ($null -ne $inner.InnerException) { $inner = $inner.InnerException }
    $reminderError = [pscustomobject]@{ hresult = ('0x{0:X8}' -f $inner.HResult); message = $inner.Message }
}

[pscustomobject]@{
    file           = $file
    size           = $item.Length
    sha256         = $hash.Hash
    reminder       = $reminder
    reminder_error = $reminderError
} | ConvertTo-Json -Depth 8 -Compress
exit 0
