# entsso-operation: Get-AdapterHandlers
#
# Reads (changes nothing) the adapter handlers' configuration through the Enterprise SSO service of THIS
# machine: ISSOConfigStore.GetConfigInfo(application, identifier, flags, propertyBag) of the SSO admin
# object model (Microsoft.EnterpriseSingleSignOn.Interop, as Backup-MasterSecret uses it), in run-time
# mode, which "only uses the SSO server on the current computer" and returns the masked properties too:
# the ones SSO can give back only by decrypting them with the master secret. The local ENTSSO service
# reaches SSODB with its own account, so this is one hop (BizTalk's WMI provider would read
# BizTalkMgmtDb as the caller: a second hop NTLM cannot make). Which handlers to read comes from Python
# (BizTalkMgmtDb, read from the admin box). Property values are never kept or returned (they may hold
# passwords): only how many the bag received. Each read's failure is returned raw (its HRESULT and
# message); Python decides what is readable.
#
# Params ($EntssoParams):
#   {"flags": 4, "configs": [{"application": "FILE", "identifier": "{5D0B…}"}]}
#
# Output (one JSON document):
#   {"computer_name": "NODE1",
#    "reads": [{"application": "FILE", "identifier": "{5D0B…}", "property_count": 3, "hresult": null, "error": null}]}

$computer = $env:COMPUTERNAME
$common = $env:CommonProgramW6432
if (-not $common) { $common = $env:CommonProgramFiles }
$interop = Join-Path $common 'Enterprise Single Sign-On\Microsoft.EnterpriseSingleSignOn.Interop.dll'
if (-not (Test-Path -LiteralPath $interop)) {
    throw "Enterprise SSO is not installed on $computer ('$interop' is missing); read the adapter handlers on the node that owns the SSO group."
}
Add-Type -Path $interop

# GetConfigInfo fills a caller's IPropertyBag; this one counts the properties it is given and drops them.
Add-Type -ReferencedAssemblies $interop -TypeDefinition @'
public sealed class EntssoCountingBag : Microsoft.EnterpriseSingleSignOn.Interop.IPropertyBag {
    public int Count;
    public void Read(string propName, out object ptrVar, int errorLog) { ptrVar = null; }
    public void Write(string propName, ref object ptrVar) { Count++; ptrVar = null; }
}
'@

# PowerShell does not show interface methods of a COM interop object: call through the interface type
# (as Backup-MasterSecret does). The store is created inside each read's try, so that a failure to reach
# the SSO service comes back as that read's raw HRESULT.
$invoke = [System.Reflection.BindingFlags]::InvokeMethod -bor [System.Reflection.BindingFlags]::Instance -bor [System.Reflection.BindingFlags]::Public
$reads = foreach ($c in @($EntssoParams.configs)) {
    # constructed by the type itself, not New-Object: New-Object's output is wrapped in a PSObject, and a
    # PSObject inside an [object[]] argument reaches InvokeMember wrapped ("Object of type
    # 'System.Management.Automation.PSObject' cannot be converted…", oising/poke#3); BaseObject below unwraps
    # it again whatever made it
    $bag = [EntssoCountingBag]::new()
    $count = $null
    $hresult = $null
    $err = $null
    try {
        $store = New-Object -TypeName 'Microsoft.EnterpriseSingleSignOn.Interop.SSOConfigStore'
        $null = [Microsoft.EnterpriseSingleSignOn.Interop.ISSOConfigStore].InvokeMember('GetConfigInfo', $invoke, $null, $store,
            [object[]]@([string]$c.application, [string]$c.identifier, [int]$EntssoParams.flags, $bag.psobject.BaseObject))
        $count = $bag.Count
    } catch {
        $inner = $_.Exception
        while ($null -ne $inner.InnerException) { $inner = $inner.InnerException }
        $hresult = '0x{0:X8}' -f $inner.HResult
        $err = [string]$inner.Message
    }
    [pscustomobject]@{
        application    = [string]$c.application
        identifier     = [string]$c.identifier
        property_count = $count
        hresult        = $hresult
        error          = $err
    }
}

[pscustomobject]@{ computer_name = $computer; reads = @($reads) } | ConvertTo-Json -Depth 8 -Compress
exit 0
