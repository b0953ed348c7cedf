# entsso-operation: Read-File
#
# Reads (changes nothing) one file on this host and returns its bytes as base64, to copy it off the
# node (for example the master secret backup, which is already password protected).
#
# Params ($EntssoParams):
#   {"path": "C:\\SSOBackup\\CHG1.bak"}
#
# Output (one JSON document):
#   {"path": "...", "size": 1234, "last_write_utc": "2026-11-24T23:50:01Z", "content_b64": "..."}

function ConvertTo-IsoUtc {
    param([datetime]$Time)
    $Time.ToUniversalTime().ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", [Globalization.CultureInfo]::InvariantCulture)
}

$computer = $env:COMPUTERNAME
$path = [string]$EntssoParams.path
if (-not $path) { throw "Read-File on ${computer}: params.path is empty." }
$item = Get-Item -LiteralPath $path -ErrorAction SilentlyContinue
if ($null -eq $item -or $item.PSIsContainer) {
    throw "File '$path' was not found on $computer; check the path (and that the step that writes it has run)."
}
$bytes = [System.IO.File]::ReadAllBytes($item.FullName)

[pscustomobject]@{
    path           = $path
    size           = [long]$bytes.Length
    last_write_utc = (ConvertTo-IsoUtc $item.LastWriteTimeUtc)
    content_b64    = [Convert]::ToBase64String($bytes)
} | ConvertTo-Json -Depth 8 -Compress
exit 0
