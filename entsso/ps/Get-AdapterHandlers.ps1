# entsso-operation: Get-AdapterHandlers
#
# Reads (changes nothing) every BizTalk adapter handler's properties through BizTalk's WMI provider:
# MSBTS_ReceiveHandler and MSBTS_SendHandler2 (keys AdapterName, HostName) and their CustomCfg,
# which the provider decrypts through Enterprise SSO. This is the scripted twin of opening the
# adapter handler properties in the BizTalk Administration console: it fails when SSO cannot
# decrypt (0xC0002A0F "Could not contact the SSO server", 0xC0002A1F "secret is not available").
# Property values are never returned (they may hold passwords): only how many were read.
#
# Params ($EntssoParams): {}
#
# Output (one JSON document):
#   {"handlers": [{"kind": "receive", "adapter": "FILE", "host_name": "BizTalkServerApplication",
#                  "readable": true, "property_count": 3, "error_code": null, "error": null}]}

$Namespace = 'root/MicrosoftBizTalkServer'

function Get-HResultText {
    # SSO's HRESULT from the error text (the provider puts it in the message), else from the exception.
    param([System.Management.Automation.ErrorRecord]$ErrorRecord)
    $text = $ErrorRecord.Exception.Message
    $m = [regex]::Match([string]$text, '0x[0-9A-Fa-f]{8}')
    if ($m.Success) { return $m.Value.ToUpperInvariant().Replace('0X', '0x') }
    $hr = $ErrorRecord.Exception.HResult
    if ($hr -ne 0) { return ('0x{0:X8}' -f $hr) }
    $null
}

function Get-CustomPropertyCount {
    # CustomCfg is the adapter's property bag as XML (<CustomProps><Name vt="8">value</Name>...):
    # count the property elements without keeping any value.
    param([string]$CustomCfg)
    if ([string]::IsNullOrWhiteSpace($CustomCfg)) { return 0 }
    $doc = New-Object System.Xml.XmlDocument
    $doc.XmlResolver = $null
    $doc.LoadXml($CustomCfg)
    if ($null -eq $doc.DocumentElement) { return 0 }
    @($doc.DocumentElement.ChildNodes | Where-Object { $_.NodeType -eq [System.Xml.XmlNodeType]::Element }).Count
}

function Read-Handlers {
    param([string]$ClassName, [string]$Kind)
    # List the handlers by their keys first, so that one handler SSO cannot decrypt does not hide
    # the others; then read each handler's CustomCfg on its own.
    try {
        $keys = @(Get-CimInstance -Namespace $Namespace -ClassName $ClassName -Property AdapterName, HostName)
    } catch {
        throw "Could not list $ClassName on $($env:COMPUTERNAME): $($_.Exception.Message). Check that BizTalk Server is installed and configured on this machine and that the account is a BizTalk administrator."
    }
    foreach ($key in $keys) {
        $adapter = [string]$key.AdapterName
        $hostName = [string]$key.HostName
        $readable = $false
        $count = 0
        $code = $null
        $err = $null
        try {
            $filter = "AdapterName = '{0}' AND HostName = '{1}'" -f $adapter.Replace("'", "\'"), $hostName.Replace("'", "\'")
            $handler = Get-CimInstance -Namespace $Namespace -ClassName $ClassName -Filter $filter
            $count = Get-CustomPropertyCount -CustomCfg ([string]$handler.CustomCfg)
            $readable = $true
        } catch {
            $code = Get-HResultText -ErrorRecord $_
            $err = [string]$_.Exception.Message
        }
        [pscustomobject]@{
            kind           = $Kind
            adapter        = $adapter
            host_name      = $hostName
            readable       = $readable
            property_count = $count
            error_code     = $code
            error          = $err
        }
    }
}

$handlers = @()
$handlers += @(Read-Handlers -ClassName 'MSBTS_ReceiveHandler' -Kind 'receive')
$handlers += @(Read-Handlers -ClassName 'MSBTS_SendHandler2' -Kind 'send')

[pscustomobject]@{ handlers = @($handlers) } | ConvertTo-Json -Depth 8 -Compress
exit 0
