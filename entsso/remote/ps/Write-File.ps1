# entsso-operation: Write-File
#
# Changes: writes one file on this host from base64 content (for example the master secret backup
# copied to the other cluster node before restoring it there). Creates the parent folder when
# missing. When the file already holds exactly these bytes it is left untouched.
#
# Params ($EntssoParams):
#   {"path": "C:\\SSOBackup\\CHG1.bak", "content_b64": "..."}
#
# Output (one JSON document):
#   {"path": "...", "size": 1234, "last_write_utc": "2026-11-24T23:50:01Z"}

function ConvertTo-IsoUtc {
    param([datetime]$Time)
    $Time.ToUniversalTime().ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", [Globalization.CultureInfo]::InvariantCulture)
}

$computer = $env:COMPUTERNAME
$path = [string]$EntssoParams.path
if (-not $path) { throw "Write-File on ${computer}: params.path is empty." }
try {
    $bytes = [Convert]::FromBase64String([string]$EntssoParams.content_b64)
} catch {
    throw "Write-File on ${computer}: params.content_b64 for '$path' is not valid base64."
}

$folder = Split-Path -Path $path -Parent
if ($folder -and -not (Test-Path -LiteralPath $folder -PathType Container)) {
    $null = New-Item -ItemType Directory -Path $folder -Force
}

$same = $false
if (Test-Path -LiteralPath $path -PathType Leaf) {
    $existing = [System.IO.File]::ReadAllBytes($path)
    if ($existing.Length -eq $bytes.Length) {
        $same = [Convert]::ToBase64String($existing) -ceq [Convert]::ToBase64String($bytes)
    }
}
if (-not $same) {
    [System.IO.File]::WriteAllBytes($path, $bytes)
}

$item = Get-Item -LiteralPath $path
[pscustomobject]@{
    path           = $path
    size           = [long]$item.Length
    last_write_utc = (ConvertTo-IsoUtc $item.LastWriteTimeUtc)
} | ConvertTo-Json -Depth 8 -Compress
exit 0
