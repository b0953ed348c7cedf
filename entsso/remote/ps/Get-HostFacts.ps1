# entsso-operation: Get-HostFacts
#
# Reads (changes nothing, except a zero-byte probe file created and deleted in backup_folder to
# prove it is writable): the asked Windows services and, with params.biztalk, every BTSSvc$<HostName>
# service (this computer's in-process BizTalk host instances, through the local SCM), the Enterprise SSO installation (ENTSSO.exe version, what
# `ssomanage -displaydb` prints: its raw text and exit code, which entsso/sso.py parses, the SSO server
# this machine's SSO tools use included, as its first line names it; whether the master secret is in
# this machine's registry), the failover cluster's view of the SSO role and every role and resource on it (only when params.cluster is given), an update package, the backup
# folder and a secret backup file, MSDTC's registry settings (network access, contact identifiers).
# One part failing (cluster service down, ssomanage failing) does not
# fail the call: that part comes back empty or null.
#
# Params ($EntssoParams, see docs/operations.md):
#   cluster            {network_name, group, resource} | null   (null on machines that are not nodes)
#   services           ["ENTSSO", "RuleEngineUpdateService"]
#   biztalk            true | false
#   package            {path} | null
#   backup_folder      "C:\SSOBackup" | null
#   secret_backup_file "C:\SSOBackup\CHG1-NODE1.bak" | null
#   change_records_folder "C:\SSOBackup" | null   (entsso-upgrade's own ENTSSO-*.change.json files, as text)
#   entsso_events      {ids: [10536, ...], hours: 168} | null   (ENTSSO's Application log events to return)
#
# Output (one JSON document):
#   {"computer_name": "NODE1", "now_utc": "...",
#    "services": {"ENTSSO": {"exists": true, "status": "Running", "start_type": "Manual",
#                            "logon_account": "CONTOSO\\svc-sso" | null}, ...},
#    "sso": {"installed": true, "version": "10.0.1000.0",
#            "displaydb": {"exit_code": 0, "stdout": "...", "stderr": "", "run_error": null} | null,
#            "holds_secret": true},
#    "cluster": {"nodes": [{"name", "state"}],
#                "group": {"name", "state", "owner_node", "preferred_owners": [...], "auto_failback_type"},
#                "resource": {"name", "state", "owner_node", "resource_type", "service_name",
#                             "use_network_name", "possible_owners": [...]},
#                "quorum": {"type", "witness": {"name", "state"} | null} | null,
#                "roles": [{"name", "state", "owner_node", "group_type", "resources": [<resource>]}] | null}
#               (every role, the SSO group's among them: Python takes its resources by the group's name)
#               | null,   <resource>: {"name", "resource_type", "state", "owner_group", "owner_node",
#                          "dependency_expression", "possible_owners": [...], "parameters": {ServiceName |
#                          DnsName | InstanceName | VirtualServerName: "..."}}
#    "package": {"path", "exists", "file_version"} | null,
#    "backup_folder": {"path", "exists", "writable"} | null,
#    "secret_backup": {"path", "exists", "size", "last_write_utc"} | null,
#    "change_records": [{"path", "text", "last_write_utc"}],
#    "last_boot_utc": "..." | null,   (Win32_OperatingSystem.LastBootUpTime: Python sees a restart by it)
#    "pending_restart": {"cbs_reboot_pending", "wu_reboot_required", "pending_file_rename_operations": [...]},
#    "msdtc": {"security": {"NetworkDtcAccess": 1, "NetworkDtcAccessTransactions": 1, "NetworkDtcAccessInbound": 1,
#                           "NetworkDtcAccessOutbound": 1} | null, "cids": [{"cid", "description"}], "error": null},
#    "entsso_events": {"events": [{"id", "time_utc", "message"}], "error": null}}

function ConvertTo-IsoUtc {
    param([datetime]$Time)
    $Time.ToUniversalTime().ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", [Globalization.CultureInfo]::InvariantCulture)
}

function Get-SsoFolder {
    # WinRM runs 64-bit powershell.exe, where CommonProgramFiles is the 64-bit folder; prefer the
    # explicit 64-bit variable in case this ever runs in a 32-bit host.
    $common = $env:CommonProgramW6432
    if (-not $common) { $common = $env:CommonProgramFiles }
    Join-Path $common 'Enterprise Single Sign-On'
}

function Get-FileVersionText {
    param([string]$Path)
    $info = (Get-Item -LiteralPath $Path).VersionInfo
    if ($null -eq $info -or ($info.FileMajorPart -eq 0 -and $info.FileMinorPart -eq 0 -and $info.FileBuildPart -eq 0)) {
        return $null   # not a PE file (an .msp has no version resource)
    }
    # The numeric parts, not FileVersion: that string may carry text such as "built by: ...".
    '{0}.{1}.{2}.{3}' -f $info.FileMajorPart, $info.FileMinorPart, $info.FileBuildPart, $info.FilePrivatePart
}

function Invoke-SsoTool {
    # Runs an SSO tool and returns what it printed, untouched: stdout and stderr as text (CRLF and
    # padding kept) and the exit code. entsso/sso.py parses it; nothing here reads the text.
    param([string]$Tool, [string[]]$Arguments)
    $exe = Join-Path (Get-SsoFolder) $Tool
    if (-not (Test-Path -LiteralPath $exe)) { throw "'$exe' is missing on $($env:COMPUTERNAME)" }
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

function Get-ServiceFacts {
    param([string]$Name, $Logons)
    $svc = Get-Service -Name $Name -ErrorAction SilentlyContinue
    if ($null -eq $svc) {
        return [pscustomobject]@{ exists = $false; status = $null; start_type = $null; logon_account = $null }
    }
    # Win32_Service.StartName: the account the service logs on as, as the SCM holds it (null: unreadable)
    $logon = $null
    if ($null -ne $Logons -and $Logons.ContainsKey($Name)) { $logon = $Logons[$Name] }
    [pscustomobject]@{ exists = $true; status = [string]$svc.Status; start_type = [string]$svc.StartType
                       logon_account = $logon }
}

$computer = $env:COMPUTERNAME

# --- Services: the asked ones plus every BTSSvc$<HostName> (BizTalk's in-process host instances) ------
# The host instances are read as the services they are, through this computer's SCM (one hop), not
# through BizTalk's WMI provider, which reads BizTalkMgmtDb as the caller: a second hop over NTLM.
$serviceNames = New-Object System.Collections.Generic.List[string]
foreach ($name in @($EntssoParams.services)) {
    if ($name -and -not $serviceNames.Contains([string]$name)) { $serviceNames.Add([string]$name) }
}
if ($EntssoParams.biztalk) {
    foreach ($svc in @(Get-Service -Name 'BTSSvc$*')) {
        if (-not $serviceNames.Contains([string]$svc.Name)) { $serviceNames.Add([string]$svc.Name) }
    }
}
# each service's logon account (Win32_Service.StartName) in one CIM query of this computer's services
$logons = @{}
try {
    foreach ($w in @(Get-CimInstance -ClassName Win32_Service -Property Name, StartName -ErrorAction Stop)) {
        $logons[[string]$w.Name] = [string]$w.StartName
    }
} catch { $logons = @{} }
$services = [ordered]@{}
foreach ($name in $serviceNames) { $services[$name] = Get-ServiceFacts -Name $name -Logons $logons }

# --- Enterprise SSO ----------------------------------------------------------------------------
$ssoFolder = Get-SsoFolder
$entssoExe = Join-Path $ssoFolder 'ENTSSO.exe'
$installed = Test-Path -LiteralPath $entssoExe
$version = $null
$displayDb = $null
if ($installed) {
    try { $version = Get-FileVersionText -Path $entssoExe } catch { $version = $null }
    try {
        # ssomanage asks the SSO server its tools use over RPC; what it prints comes back as it is.
        $displayDb = Invoke-SsoTool -Tool 'ssomanage.exe' -Arguments @('-displaydb')
    } catch {
        $displayDb = [pscustomobject]@{ exit_code = $null; stdout = ''; stderr = ''; run_error = $_.Exception.Message }
    }
}
# The master secret sits under SSOSS\{GUID} only where it was generated or restored.
$holdsSecret = $false
$ssossKey = 'HKLM:\SOFTWARE\Microsoft\ENTSSO\SSOSS'
if (Test-Path -LiteralPath $ssossKey) {
    $holdsSecret = @(Get-ChildItem -LiteralPath $ssossKey -ErrorAction Stop).Count -gt 0
}
$sso = [pscustomobject]@{
    installed       = [bool]$installed
    version         = $version
    displaydb       = $displayDb
    holds_secret    = [bool]$holdsSecret
}

# --- Failover cluster (cluster nodes only: no cluster cmdlets elsewhere) ------------------------
function Get-ResourceDoc {
    param($Resource)
    $deps = $null
    try { $deps = [string](Get-ClusterResourceDependency -InputObject $Resource).DependencyExpression } catch { $deps = $null }
    $owners = @()
    try { $owners = @((Get-ClusterOwnerNode -InputObject $Resource).OwnerNodes | ForEach-Object { [string]$_.Name }) } catch { $owners = @() }
    $params = @{}
    try {
        foreach ($p in @(Get-ClusterParameter -InputObject $Resource |
                         Where-Object { $_.Name -in @('ServiceName', 'DnsName', 'InstanceName', 'VirtualServerName') })) {
            $params[[string]$p.Name] = [string]$p.Value
        }
    } catch { $params = @{} }
    [pscustomobject]@{
        name                  = [string]$Resource.Name
        resource_type         = [string]$Resource.ResourceType.Name
        state                 = [string]$Resource.State
        owner_group           = [string]$Resource.OwnerGroup.Name
        owner_node            = [string]$Resource.OwnerNode.Name
        dependency_expression = $deps
        possible_owners       = $owners
        parameters            = $params
    }
}

$cluster = $null
if ($null -ne $EntssoParams.cluster) {
    $nodes = @()
    $group = $null
    $resource = $null
    $quorum = $null
    $roles = $null
    try {
        Import-Module FailoverClusters -ErrorAction Stop
        try {
            $nodes = @(Get-ClusterNode | ForEach-Object {
                [pscustomobject]@{ name = [string]$_.Name; state = [string]$_.State }
            })
        } catch { $nodes = @() }
        try {
            $g = Get-ClusterGroup -Name ([string]$EntssoParams.cluster.group)
            # Preferred owners (Get-ClusterOwnerNode -Group) and AutoFailbackType (0 prevent, 1 allow
            # failback to the most preferred owner when it comes back)
            $preferred = @()
            try {
                $preferred = @((Get-ClusterOwnerNode -Group $g.Name).OwnerNodes | ForEach-Object { [string]$_.Name })
            } catch { $preferred = @() }
            $group = [pscustomobject]@{ name = [string]$g.Name; state = [string]$g.State; owner_node = [string]$g.OwnerNode.Name
                                        preferred_owners = $preferred; auto_failback_type = [int]$g.AutoFailbackType }
        } catch { $group = $null }
        # Quorum (Get-ClusterQuorum): its type and the witness resource (none: QuorumResource is null)
        try {
            $q = Get-ClusterQuorum
            $witness = $null
            if ($null -ne $q.QuorumResource) {
                $witness = [pscustomobject]@{ name = [string]$q.QuorumResource.Name; state = [string]$q.QuorumResource.State }
            }
            $quorum = [pscustomobject]@{ type = [string]$q.QuorumType; witness = $witness }
        } catch { $quorum = $null }
        try {
            $res = Get-ClusterResource -Name ([string]$EntssoParams.cluster.resource)
            # Private properties of a Generic Service resource: ServiceName and UseNetworkName
            # ("Use Network Name for computer name", 1 or 0).
            $privateProps = @{}
            try {
                foreach ($p in @(Get-ClusterParameter -InputObject $res -Name ServiceName, UseNetworkName)) {
                    $privateProps[[string]$p.Name] = $p.Value
                }
            } catch {
                # not a Generic Service (or the properties are unreadable): report them as unknown
                $privateProps = @{}
            }
            $useNetworkName = $null
            if ($privateProps.ContainsKey('UseNetworkName')) { $useNetworkName = ([int]$privateProps['UseNetworkName']) -ne 0 }
            $serviceName = $null
            if ($privateProps.ContainsKey('ServiceName')) { $serviceName = [string]$privateProps['ServiceName'] }
            $possibleOwners = @()
            try {
                $possibleOwners = @((Get-ClusterOwnerNode -InputObject $res).OwnerNodes | ForEach-Object { [string]$_.Name })
            } catch { $possibleOwners = @() }
            $resource = [pscustomobject]@{
                name             = [string]$res.Name
                state            = [string]$res.State
                owner_node       = [string]$res.OwnerNode.Name
                resource_type    = [string]$res.ResourceType.Name
                service_name     = $serviceName
                use_network_name = $useNetworkName
                possible_owners  = $possibleOwners
            }
        } catch { $resource = $null }
        # The topology (issue 26): every role on the cluster (Get-ClusterGroup) with every resource of it
        # (Get-ClusterResource): type, state, owner, dependency expression (Get-ClusterResourceDependency),
        # possible owners (Get-ClusterOwnerNode), and the private properties that say what a resource runs
        # (a Generic Service's ServiceName, a Network Name's DnsName, a SQL Server's InstanceName and
        # VirtualServerName). Returned raw; entsso/domain/topology.py reads it.
        try {
            $allResources = @(Get-ClusterResource)
            $roles = @(Get-ClusterGroup | ForEach-Object {
                $grp = $_
                [pscustomobject]@{
                    name       = [string]$grp.Name
                    state      = [string]$grp.State
                    owner_node = [string]$grp.OwnerNode.Name
                    group_type = [string]$grp.GroupType
                    resources  = @($allResources | Where-Object { [string]$_.OwnerGroup.Name -eq [string]$grp.Name } |
                                   ForEach-Object { Get-ResourceDoc $_ })
                }
            })
        } catch { $roles = $null }
    } catch {
        # Cluster service or module not available: report the parts as unknown.
        $nodes = @()
    }
    $cluster = [pscustomobject]@{ nodes = $nodes; group = $group; resource = $resource; quorum = $quorum
                                  roles = $roles }
}

# --- Files -----------------------------------------------------------------------------------
$package = $null
if ($null -ne $EntssoParams.package -and $EntssoParams.package.path) {
    $path = [string]$EntssoParams.package.path
    $exists = Test-Path -LiteralPath $path -PathType Leaf
    $fileVersion = $null
    if ($exists) { try { $fileVersion = Get-FileVersionText -Path $path } catch { $fileVersion = $null } }
    $package = [pscustomobject]@{ path = $path; exists = [bool]$exists; file_version = $fileVersion }
}

$backupFolder = $null
if ($EntssoParams.backup_folder) {
    $path = [string]$EntssoParams.backup_folder
    $exists = Test-Path -LiteralPath $path -PathType Container
    $writable = $false
    if ($exists) {
        $probe = Join-Path $path ('entsso-probe-' + [guid]::NewGuid().ToString('N') + '.tmp')
        try {
            [IO.File]::WriteAllBytes($probe, [byte[]]@())
            $writable = $true
        } catch {
            $writable = $false
        } finally {
            Remove-Item -LiteralPath $probe -Force -ErrorAction SilentlyContinue
        }
    }
    $backupFolder = [pscustomobject]@{ path = $path; exists = [bool]$exists; writable = [bool]$writable }
}

$secretBackup = $null
if ($EntssoParams.secret_backup_file) {
    $path = [string]$EntssoParams.secret_backup_file
    $item = Get-Item -LiteralPath $path -ErrorAction SilentlyContinue
    if ($null -ne $item -and -not $item.PSIsContainer) {
        $secretBackup = [pscustomobject]@{ path = $path; exists = $true; size = [long]$item.Length;
                                           last_write_utc = (ConvertTo-IsoUtc $item.LastWriteTimeUtc) }
    } else {
        $secretBackup = [pscustomobject]@{ path = $path; exists = $false; size = $null; last_write_utc = $null }
    }
}

# entsso-upgrade's change records (the baseline of a change in progress), returned as written
$changeRecords = @()
if ($EntssoParams.change_records_folder) {
    $folder = [string]$EntssoParams.change_records_folder
    if (Test-Path -LiteralPath $folder -PathType Container) {
        $changeRecords = @(Get-ChildItem -LiteralPath $folder -Filter 'ENTSSO-*.change.json' -File | ForEach-Object {
            [pscustomobject]@{ path = [string]$_.FullName
                               text = [IO.File]::ReadAllText($_.FullName, [Text.Encoding]::UTF8)
                               last_write_utc = (ConvertTo-IsoUtc $_.LastWriteTimeUtc) }
        })
    }
}

# MSDTC as the registry holds it (Python judges it): the security values (MS-CMOM 2.2.3.3, under
# HKLM\SOFTWARE\Microsoft\MSDTC\Security; null: absent) and the transaction manager's contact identifiers
# (HKEY_CLASSES_ROOT\CID\<GUID>, each with its Description\(Default): MSDTC, MSDTCUIS, ...; MS-CMOM 2.2.3.5)
$msdtc = $null
try {
    $security = [ordered]@{}
    $sec = Get-ItemProperty -LiteralPath 'HKLM:\SOFTWARE\Microsoft\MSDTC\Security' -ErrorAction Stop
    foreach ($n in @('NetworkDtcAccess', 'NetworkDtcAccessTransactions', 'NetworkDtcAccessInbound', 'NetworkDtcAccessOutbound')) {
        $v = $sec.PSObject.Properties[$n]
        if ($null -ne $v) { $security[$n] = $v.Value } else { $security[$n] = $null }
    }
    $cids = @()
    if (Test-Path -LiteralPath 'Registry::HKEY_CLASSES_ROOT\CID') {
        $cids = @(Get-ChildItem -LiteralPath 'Registry::HKEY_CLASSES_ROOT\CID' -ErrorAction Stop | ForEach-Object {
            $description = $null
            $d = Get-Item -LiteralPath (Join-Path $_.PSPath 'Description') -ErrorAction SilentlyContinue
            if ($null -ne $d) { $description = [string]$d.GetValue('') }
            [pscustomobject]@{ cid = [string]$_.PSChildName; description = $description }
        })
    }
    $msdtc = [pscustomobject]@{ security = [pscustomobject]$security; cids = $cids; error = $null }
} catch {
    $msdtc = [pscustomobject]@{ security = $null; cids = @(); error = $_.Exception.Message }
}

# ENTSSO's events that say the secret or its service account is wrong (Python judges them and their times):
# the Application log's ENTSSO events of the asked ids within the asked hours, newest first, at most 50
$entssoEvents = @()
$entssoEventsError = $null
$entssoEventsErrorId = $null
if ($EntssoParams.entsso_events -and $EntssoParams.entsso_events.ids) {
    $filter = @{ LogName = 'Application'; ProviderName = 'ENTSSO'; Id = @($EntssoParams.entsso_events.ids | ForEach-Object { [int]$_ })
                 StartTime = (Get-Date).AddHours(-[double]$EntssoParams.entsso_events.hours) }
    try {
        $entssoEvents = @(Get-WinEvent -FilterHashtable $filter -MaxEvents 50 -ErrorAction Stop | ForEach-Object {
            [pscustomobject]@{ id = [int]$_.Id; time_utc = (ConvertTo-IsoUtc $_.TimeCreated); message = [string]$_.Message }
        })
    } catch {
        # Get-WinEvent throws when nothing matches: that is no event, not a failure
        $entssoEventsError = $_.Exception.Message
        $entssoEventsErrorId = [string]$_.FullyQualifiedErrorId
        $entssoEvents = @()
    }
}

# SQL Server's host as MSDTC first reaches it: a TCP connect to its RPC endpoint mapper (port 135), bounded to
# the asked seconds; the answer as .NET gives it (Python judges it)
$dtcProbe = $null
if ($EntssoParams.dtc_probe -and $EntssoParams.dtc_probe.host) {
    $client = New-Object System.Net.Sockets.TcpClient
    try {
        $task = $client.ConnectAsync([string]$EntssoParams.dtc_probe.host, [int]$EntssoParams.dtc_probe.port)
        $done = $task.Wait([int](1000 * [double]$EntssoParams.dtc_probe.timeout_sec))
        $dtcProbe = [pscustomobject]@{ host = $EntssoParams.dtc_probe.host; port = $EntssoParams.dtc_probe.port
                                       connected = $client.Connected; error = $null; completed = $done }
    } catch {
        $inner = $_.Exception
        while ($null -ne $inner.InnerException) { $inner = $inner.InnerException }
        $dtcProbe = [pscustomobject]@{ host = $EntssoParams.dtc_probe.host; port = $EntssoParams.dtc_probe.port
                                       connected = $false; error = $inner.Message; completed = $true }
    } finally {
        $client.Dispose()
    }
}

# ENTSSO's warnings (level 3) of the asked hours, any id, newest first, at most 50: the master secret's age
# warning has no published id (Python finds it by its published words)
$entssoWarnings = @()
$entssoWarningsError = $null
$entssoWarningsErrorId = $null
if ($EntssoParams.entsso_warnings) {
    $filter = @{ LogName = 'Application'; ProviderName = 'ENTSSO'; Level = 3
                 StartTime = (Get-Date).AddHours(-[double]$EntssoParams.entsso_warnings.hours) }
    try {
        $entssoWarnings = @(Get-WinEvent -FilterHashtable $filter -MaxEvents 50 -ErrorAction Stop | ForEach-Object {
            [pscustomobject]@{ id = $_.Id; time_utc = (ConvertTo-IsoUtc $_.TimeCreated); message = [string]$_.Message }
        })
    } catch {
        $entssoWarningsError = $_.Exception.Message
        $entssoWarningsErrorId = [string]$_.FullyQualifiedErrorId
        $entssoWarnings = @()
    }
}

# when Windows last started: Win32_OperatingSystem.LastBootUpTime, as read (null if CIM does not answer)
$lastBoot = $null
try { $lastBoot = ConvertTo-IsoUtc (Get-CimInstance -ClassName Win32_OperatingSystem).LastBootUpTime } catch { $lastBoot = $null }

# the markers Windows keeps for a restart it still owes (Python decides what they mean)
$sessionManager = Get-ItemProperty -LiteralPath 'HKLM:\SYSTEM\CurrentControlSet\Control\Session Manager' -Name PendingFileRenameOperations -ErrorAction SilentlyContinue
$renames = @()   # REG_MULTI_SZ: source, target, source, target ... (an empty target is a delete)
if ($null -ne $sessionManager -and $null -ne $sessionManager.PendingFileRenameOperations) {
    $renames = @($sessionManager.PendingFileRenameOperations | ForEach-Object { [string]$_ })
}
$pendingRestart = [pscustomobject]@{
    cbs_reboot_pending             = [bool](Test-Path -LiteralPath 'HKLM:\SOFTWARE\Microsoft\Windows\CurrentVersion\Component Based Servicing\RebootPending')
    wu_reboot_required             = [bool](Test-Path -LiteralPath 'HKLM:\SOFTWARE\Microsoft\Windows\CurrentVersion\WindowsUpdate\Auto Update\RebootRequired')
    pending_file_rename_operations = $renames
}

[pscustomobject]@{
    computer_name  = $computer
    now_utc        = (ConvertTo-IsoUtc (Get-Date))
    services       = [pscustomobject]$services
    sso            = $sso
    cluster        = $cluster
    package        = $package
    backup_folder  = $backupFolder
    secret_backup  = $secretBackup
    change_records = @($changeRecords)
    last_boot_utc  = $lastBoot
    pending_restart = $pendingRestart
    msdtc          = $msdtc
    entsso_events  = [pscustomobject]@{ events = @($entssoEvents); error = $entssoEventsError; error_id = $entssoEventsErrorId }
    dtc_probe      = $dtcProbe
    entsso_warnings = [pscustomobject]@{ events = @($entssoWarnings); error = $entssoWarningsError; error_id = $entssoWarningsErrorId }
} | ConvertTo-Json -Depth 8 -Compress
exit 0
