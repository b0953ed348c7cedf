# entsso-operation: Restore-MasterSecret
#
# Changes: restores the Enterprise SSO master secret on this node from a password-protected backup,
# with the SSO admin object model (ISSOConfigSS.RestoreSecret(restoreFile, filePassword)), the
# scripted form of `ssoconfig -restoreSecret <file>`. Afterwards the secret is in this node's
# registry (HKLM\SOFTWARE\Microsoft\ENTSSO\SSOSS\{GUID}). On a cluster it is run on each node.
# The password is used only as the RestoreSecret argument: never written anywhere else.
#
# Params ($EntssoParams; they arrive over stdin because of the password):
#   {"file": "C:\\SSOBackup\\CHG1.bak", "password": "..."}
#
# Output (one JSON document):
#   {"holds_secret": true, "held_before": false}   (entsso/sso.py adds changed = not held_before)

$computer = $env:COMPUTERNAME
$file = [string]$EntssoParams.file
if (-not $file) { throw "Restore-MasterSecret on ${computer}: params.file is empty; give the backup file's full path." }
if ([string]::IsNullOrEmpty([string]$EntssoParams.password)) { throw "Restore-MasterSecret on ${computer}: params.password is empty; give the password the backup was made with." }
if (-not (Test-Path -LiteralPath $file -PathType Leaf)) {
    throw "Secret backup file '$file' was not found on $computer; copy it to this node first, then re-run."
}

$common = $env:CommonProgramW6432
if (-not $common) { $common = $env:CommonProgramFiles }
$interop = Join-Path $common 'Enterprise Single Sign-On\Microsoft.EnterpriseSingleSignOn.Interop.dll'
if (-not (Test-Path -LiteralPath $interop)) {
    throw "Enterprise SSO is not installed on $computer ('$interop' is missing)."
}
Add-Type -Path $interop

# Whether this node held a secret before (Python says from it whether anything changed, review m6).
$ssossKey = 'HKLM:\SOFTWARE\Microsoft\ENTSSO\SSOSS'
$heldBefore = $false
if (Test-Path -LiteralPath $ssossKey) {
    $heldBefore = @(Get-ChildItem -LiteralPath $ssossKey -ErrorAction Stop).Count -gt 0
}

# SSOConfigOM implements ISSOConfigSS; call through the interface type (see Backup-MasterSecret).
$configOm = New-Object -TypeName 'Microsoft.EnterpriseSingleSignOn.Interop.SSOConfigOM'
$flags = [System.Reflection.BindingFlags]::InvokeMethod -bor [System.Reflection.BindingFlags]::Instance -bor [System.Reflection.BindingFlags]::Public
try {
    $null = [Microsoft.EnterpriseSingleSignOn.Interop.ISSOConfigSS].InvokeMember('RestoreSecret', $flags, $null, $configOm, [object[]]@($file, [string]$EntssoParams.password))
} catch {
    $inner = $_.Exception
    while ($null -ne $inner.InnerException) { $inner = $inner.InnerException }
    $code = '0x{0:X8}' -f $inner.HResult
    throw "SSO refused to restore the master secret from '$file' on $computer ($code): $($inner.Message). Check the password, that ENTSSO runs on $computer, and that this account is an SSO administrator."
}

$holdsSecret = $false
if (Test-Path -LiteralPath $ssossKey) {
    $holdsSecret = @(Get-ChildItem -LiteralPath $ssossKey -ErrorAction Stop).Count -gt 0
}
if (-not $holdsSecret) {
    throw "RestoreSecret returned without error but $computer has no master secret in HKLM\SOFTWARE\Microsoft\ENTSSO\SSOSS; check the Application event log (source ENTSSO)."
}

[pscustomobject]@{ holds_secret = [bool]$holdsSecret; held_before = [bool]$heldBefore } | ConvertTo-Json -Depth 8 -Compress
exit 0
