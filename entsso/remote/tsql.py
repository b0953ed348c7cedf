"""Every T-SQL statement the suite runs, in one place: three-part names, `?` parameters, nothing
formatted in. Facts read; the EXECs are the operations' (sp_update_job, sp_start_job, sp_ForceFullBackup).

The statements name BizTalk's databases by their default names (SSODB, BizTalkMgmtDb, msdb), which stand
for the three roles; `render` puts in the inventory's names (entsso/remote/sqlestate.py runs every statement
through it). Database names cannot be `?` parameters: the inventory accepts only regular identifiers
(letters, digits, _), so a rendered name cannot change a statement's meaning.
"""
import re

# the default name of each role (lower) -> the role (entsso.remote.sqlestate.DatabaseNames' field)
ROLE_OF = {"ssodb": "ssodb", "biztalkmgmtdb": "management", "msdb": "msdb"}
_THREE_PART = re.compile(r"\b(SSODB|BizTalkMgmtDb|msdb)\.dbo\.", re.IGNORECASE)
IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")


def render(statement: str, names: object) -> str:
    """`statement` with each default database name of a three-part name replaced by the inventory's
    (`names`: an object with ssodb, management and msdb)."""
    def one(m: re.Match[str]) -> str:
        name = getattr(names, ROLE_OF[m.group(1).lower()])
        if not IDENTIFIER.match(name):
            raise ValueError(f"{name!r} is not a database name the suite writes into T-SQL (letters, digits, _)")
        return f"{name}.dbo."
    return _THREE_PART.sub(one, statement)


NOW = "SET NOCOUNT ON; SELECT SYSUTCDATETIME() AS now_utc, GETDATE() AS now_local"

# The instance's own name as SQL Server knows it (host or host\instance): what the Backup BizTalk Server
# job's view gives as each database's ServerName (SERVERPROPERTY('servername') for the management database).
SERVER_NAME = "SET NOCOUNT ON; SELECT SERVERPROPERTY('ServerName') AS server_name"

SECRET_SERVER = "SET NOCOUNT ON; SELECT TOP 1 gi_SecretServer AS secret_server FROM SSODB.dbo.SSOX_GlobalInfo"
# the SSO Administrators group SSO was configured with (ENTSSO's account must be a member to start)
SSO_ADMIN_GROUP = "SET NOCOUNT ON; SELECT TOP 1 gi_SSOAdminGroup AS admin_group FROM SSODB.dbo.SSOX_GlobalInfo"

# The SSO server the BizTalk group's admin tools use for adapter configuration (MSBTS_GroupSetting.SSOServerName,
# the group's adm_Group row): the cluster name once the MSS is clustered.
GROUP_SSO_SERVER = "SET NOCOUNT ON; SELECT TOP 1 SSOServerName AS sso_server FROM BizTalkMgmtDb.dbo.adm_Group"

# Every adapter handler of the group, with what names its configuration in SSO: the adapter (the SSO
# application, UNCONFIRMED: docs/domain-notes.md) and the handler's uidCustomCfgID (the config info's
# identifier; BizTalk's own adm_ReceiveHandler_Enum / adm_SendHandler_Load give it braced, "{GUID}", which
# entsso.domain.biztalk adds to the GUID's text, CONVERT(nvarchar(36), …): upper case, no braces). Read from the
# admin box so that no host asks BizTalkMgmtDb itself (BizTalk's WMI provider would: a second hop).
ADAPTER_HANDLERS = """SET NOCOUNT ON;
SELECT N'receive' AS kind, a.Name AS adapter, h.Name AS host_name,
  CONVERT(nvarchar(36), r.uidCustomCfgID) AS config_id
FROM BizTalkMgmtDb.dbo.adm_ReceiveHandler r
  JOIN BizTalkMgmtDb.dbo.adm_Adapter a ON a.Id = r.AdapterId
  JOIN BizTalkMgmtDb.dbo.adm_Host h ON h.Id = r.HostId
UNION ALL
SELECT N'send', a.Name, h.Name, CONVERT(nvarchar(36), s.uidCustomCfgID)
FROM BizTalkMgmtDb.dbo.adm_SendHandler s
  JOIN BizTalkMgmtDb.dbo.adm_Adapter a ON a.Id = s.AdapterId
  JOIN BizTalkMgmtDb.dbo.adm_Host h ON h.Id = s.HostId"""

# The SSO servers that share SSODB: each registers its name (lower case) when it starts, for 10 days
# (ssox_spSetServer: expiry = GETDATE() + 10 days; expired rows are deleted at the next registration).
SSO_SERVERS = """SET NOCOUNT ON;
SELECT srv_server_name AS server_name FROM SSODB.dbo.SSOX_Servers
WHERE srv_expire_timestamp > GETDATE() ORDER BY srv_server_name"""

# One row per SQL Agent job: enabled, whether it runs now (in the current Agent session), its last outcome, and
# the last step that failed (sysjobhistory step rows, step_id > 0, run_status 0) with its message.
JOBS = """SET NOCOUNT ON;
SELECT j.name AS name, j.enabled AS enabled,
  (SELECT MAX(h.instance_id) FROM msdb.dbo.sysjobhistory h
     WHERE h.job_id = j.job_id AND h.step_id = 0) AS last_instance_id,
  (SELECT TOP 1 h.run_status FROM msdb.dbo.sysjobhistory h
     WHERE h.job_id = j.job_id AND h.step_id = 0 ORDER BY h.instance_id DESC) AS last_run_status,
  (SELECT TOP 1 h.run_date FROM msdb.dbo.sysjobhistory h
     WHERE h.job_id = j.job_id AND h.step_id = 0 ORDER BY h.instance_id DESC) AS last_run_date,
  (SELECT TOP 1 h.run_time FROM msdb.dbo.sysjobhistory h
     WHERE h.job_id = j.job_id AND h.step_id = 0 ORDER BY h.instance_id DESC) AS last_run_time,
  (SELECT TOP 1 h.message FROM msdb.dbo.sysjobhistory h
     WHERE h.job_id = j.job_id AND h.step_id = 0 ORDER BY h.instance_id DESC) AS last_message,
  (SELECT TOP 1 h.step_name FROM msdb.dbo.sysjobhistory h
     WHERE h.job_id = j.job_id AND h.step_id > 0 AND h.run_status = 0 ORDER BY h.instance_id DESC) AS failed_step,
  (SELECT TOP 1 h.message FROM msdb.dbo.sysjobhistory h
     WHERE h.job_id = j.job_id AND h.step_id > 0 AND h.run_status = 0 ORDER BY h.instance_id DESC)
   AS failed_step_message,
  (SELECT TOP 1 h.instance_id FROM msdb.dbo.sysjobhistory h
     WHERE h.job_id = j.job_id AND h.step_id > 0 AND h.run_status = 0 ORDER BY h.instance_id DESC)
   AS failed_step_instance_id,
  CASE WHEN EXISTS (SELECT 1 FROM msdb.dbo.sysjobactivity a
     WHERE a.job_id = j.job_id
       AND a.session_id = (SELECT MAX(s.session_id) FROM msdb.dbo.syssessions s)
       AND a.start_execution_date IS NOT NULL AND a.stop_execution_date IS NULL)
   THEN 1 ELSE 0 END AS running
FROM msdb.dbo.sysjobs j"""

# One run's step rows (step_id > 0), in the order SQL Agent wrote them: after the outcome row of the run before
# (instance_id > ?) and before this run's own outcome row (instance_id < ?)
JOB_STEPS = """SET NOCOUNT ON;
SELECT h.step_id AS step_id, h.step_name AS step_name, h.run_status AS run_status, h.message AS message
FROM msdb.dbo.sysjobhistory h JOIN msdb.dbo.sysjobs j ON j.job_id = h.job_id
WHERE j.name = ? AND h.step_id > 0 AND h.instance_id > ? AND h.instance_id < ?
ORDER BY h.instance_id"""

UPDATE_JOB = "EXEC msdb.dbo.sp_update_job @job_name = ?, @enabled = ?"
# Who may change the jobs (run in msdb): msdb's sp_update_job refuses a job another login owns (14525) unless
# the caller is sysadmin, or in SQLAgentOperatorRole changing only @enabled (docs/domain-notes.md)
JOB_CONTROL = """SET NOCOUNT ON;
SELECT SUSER_SNAME() AS login, IS_SRVROLEMEMBER(N'sysadmin') AS sysadmin,
  IS_ROLEMEMBER(N'SQLAgentOperatorRole') AS agent_operator"""
JOB_OWNERS = "SET NOCOUNT ON; SELECT name, SUSER_SNAME(owner_sid) AS owner FROM msdb.dbo.sysjobs"
START_JOB = "EXEC msdb.dbo.sp_start_job @job_name = ?"
# Asks SQL Agent to stop a run (disabling a job does not stop it); 22022 when the job is not running.
STOP_JOB = "EXEC msdb.dbo.sp_stop_job @job_name = ?"

# Whether SQL Server Agent runs (sys.dm_server_services, status_desc: Stopped, Start Pending, Running, …);
# needs VIEW SERVER STATE. No row: an edition without SQL Agent (Express).
AGENT_STATUS = """SET NOCOUNT ON;
SELECT servicename AS service_name, status_desc AS status FROM master.sys.dm_server_services
WHERE servicename LIKE N'SQL Server Agent%'"""

# The force-full flag, where this BizTalk version keeps it: BizTalk 2010 and later in
# adm_BackupSettings.ForceFull (there is no adm_ForceFullBackup: reading it is error 208), older versions
# in the one-column table adm_ForceFullBackup, which Microsoft's docs still name. Probe which exists
# (OBJECT_ID is NULL for a missing object), read that one; set the flag only through sp_ForceFullBackup.
FORCE_FULL_OBJECTS = """SET NOCOUNT ON;
SELECT OBJECT_ID(N'BizTalkMgmtDb.dbo.adm_BackupSettings') AS backup_settings,
  OBJECT_ID(N'BizTalkMgmtDb.dbo.adm_ForceFullBackup') AS force_full_backup"""
FORCE_FULL_SETTINGS = "SET NOCOUNT ON; SELECT TOP 1 ForceFull AS force_full FROM BizTalkMgmtDb.dbo.adm_BackupSettings"
# its only column, read without naming it (no public source names it)
FORCE_FULL_LEGACY = "SET NOCOUNT ON; SELECT TOP 1 * FROM BizTalkMgmtDb.dbo.adm_ForceFullBackup"
FORCE_FULL_BACKUP = "EXEC BizTalkMgmtDb.dbo.sp_ForceFullBackup"

# The databases the Backup BizTalk Server job covers, each with the newest complete full set of the job
# (adm_BackupHistory.BackupSetId) that has a row for it. Backups are proven by these set ids, never by
# their times: backupset's dates are SQL Server's local time and adm_BackupHistory's are UTC or local
# (@UseLocalTime), so neither compares with a UTC change start.
BACKUP_DATABASES = """SET NOCOUNT ON;
SELECT d.ServerName AS server_name, d.DatabaseName AS database_name,
  (SELECT MAX(h.BackupSetId) FROM BizTalkMgmtDb.dbo.adm_BackupHistory h
     WHERE h.DatabaseName = d.DatabaseName AND h.BackupType = 'db' AND h.SetComplete = 1) AS last_full_set
FROM BizTalkMgmtDb.dbo.admv_BackupDatabases d"""

# The newest complete full set the job made (NULL: none in the history).
LAST_FULL_SET = """SET NOCOUNT ON;
SELECT MAX(BackupSetId) AS set_id FROM BizTalkMgmtDb.dbo.adm_BackupHistory
WHERE BackupType = 'db' AND SetComplete = 1"""

# Every database row of the complete full sets newer than a set id; BackupDateTime only for the record.
FULL_SETS_AFTER = """SET NOCOUNT ON;
SELECT BackupSetId AS set_id, DatabaseName AS database_name, ServerName AS server_name,
  BackupFileName AS backup_file, BackupDateTime AS recorded_at
FROM BizTalkMgmtDb.dbo.adm_BackupHistory
WHERE BackupType = 'db' AND SetComplete = 1 AND BackupSetId > ?
ORDER BY BackupSetId, DatabaseName"""

# The estate lock: one change at a time per SSO system. A session-owned application lock on the SQL
# Server that holds SSODB: released by SQL Server itself when the holder's connection ends (a run that
# dies cannot leave it behind). Return codes: 0/1 granted, -1 timed out, -2 cancelled, -3 deadlock,
# -999 parameter error.
GET_ESTATE_LOCK = """SET NOCOUNT ON;
DECLARE @result int;
EXEC @result = sp_getapplock @Resource = ?, @LockMode = 'Exclusive', @LockOwner = 'Session', @LockTimeout = 0;
SELECT @result AS result"""
# Whether this session still holds the estate lock: 'Exclusive' while it does, 'NoLock' once lost.
ESTATE_LOCK_MODE = "SET NOCOUNT ON; SELECT APPLOCK_MODE(N'public', ?, N'Session') AS mode"
RELEASE_ESTATE_LOCK = "EXEC sp_releaseapplock @Resource = ?, @LockOwner = 'Session'"

# The grants the run needs, each asked of SQL Server for the current login (HAS_PERMS_BY_NAME: 1 granted,
# 0 not, NULL when the object does not exist or the login cannot see it). One row per grant; the force-full
# flag table is asked under both its names (only the one this BizTalk version has answers non-NULL).
# The adapter handler tables are read in phase 6 (ADAPTER_HANDLERS): a missing grant is the gate's, not a stop there.
# sp_getapplock needs no grant beyond a user in SSODB, which reading SSOX_GlobalInfo already needs.
GRANTS = """SET NOCOUNT ON;
SELECT N'EXECUTE' AS permission, N'msdb.dbo.sp_update_job' AS object_name,
  HAS_PERMS_BY_NAME(N'msdb.dbo.sp_update_job', N'OBJECT', N'EXECUTE') AS granted
UNION ALL SELECT N'EXECUTE', N'msdb.dbo.sp_start_job',
  HAS_PERMS_BY_NAME(N'msdb.dbo.sp_start_job', N'OBJECT', N'EXECUTE')
UNION ALL SELECT N'EXECUTE', N'msdb.dbo.sp_stop_job', HAS_PERMS_BY_NAME(N'msdb.dbo.sp_stop_job', N'OBJECT', N'EXECUTE')
UNION ALL SELECT N'SELECT', N'msdb.dbo.sysjobs', HAS_PERMS_BY_NAME(N'msdb.dbo.sysjobs', N'OBJECT', N'SELECT')
UNION ALL SELECT N'SELECT', N'msdb.dbo.sysjobhistory',
  HAS_PERMS_BY_NAME(N'msdb.dbo.sysjobhistory', N'OBJECT', N'SELECT')
UNION ALL SELECT N'SELECT', N'msdb.dbo.sysjobactivity',
  HAS_PERMS_BY_NAME(N'msdb.dbo.sysjobactivity', N'OBJECT', N'SELECT')
UNION ALL SELECT N'SELECT', N'msdb.dbo.syssessions', HAS_PERMS_BY_NAME(N'msdb.dbo.syssessions', N'OBJECT', N'SELECT')
UNION ALL SELECT N'EXECUTE', N'BizTalkMgmtDb.dbo.sp_ForceFullBackup',
  HAS_PERMS_BY_NAME(N'BizTalkMgmtDb.dbo.sp_ForceFullBackup', N'OBJECT', N'EXECUTE')
UNION ALL SELECT N'SELECT', N'BizTalkMgmtDb.dbo.adm_BackupHistory',
  HAS_PERMS_BY_NAME(N'BizTalkMgmtDb.dbo.adm_BackupHistory', N'OBJECT', N'SELECT')
UNION ALL SELECT N'SELECT', N'BizTalkMgmtDb.dbo.admv_BackupDatabases',
  HAS_PERMS_BY_NAME(N'BizTalkMgmtDb.dbo.admv_BackupDatabases', N'OBJECT', N'SELECT')
UNION ALL SELECT N'SELECT', N'BizTalkMgmtDb.dbo.adm_BackupSettings',
  HAS_PERMS_BY_NAME(N'BizTalkMgmtDb.dbo.adm_BackupSettings', N'OBJECT', N'SELECT')
UNION ALL SELECT N'SELECT', N'BizTalkMgmtDb.dbo.adm_ForceFullBackup',
  HAS_PERMS_BY_NAME(N'BizTalkMgmtDb.dbo.adm_ForceFullBackup', N'OBJECT', N'SELECT')
UNION ALL SELECT N'SELECT', N'BizTalkMgmtDb.dbo.adm_Group',
  HAS_PERMS_BY_NAME(N'BizTalkMgmtDb.dbo.adm_Group', N'OBJECT', N'SELECT')
UNION ALL SELECT N'SELECT', N'BizTalkMgmtDb.dbo.adm_ReceiveHandler',
  HAS_PERMS_BY_NAME(N'BizTalkMgmtDb.dbo.adm_ReceiveHandler', N'OBJECT', N'SELECT')
UNION ALL SELECT N'SELECT', N'BizTalkMgmtDb.dbo.adm_SendHandler',
  HAS_PERMS_BY_NAME(N'BizTalkMgmtDb.dbo.adm_SendHandler', N'OBJECT', N'SELECT')
UNION ALL SELECT N'SELECT', N'BizTalkMgmtDb.dbo.adm_Adapter',
  HAS_PERMS_BY_NAME(N'BizTalkMgmtDb.dbo.adm_Adapter', N'OBJECT', N'SELECT')
UNION ALL SELECT N'SELECT', N'BizTalkMgmtDb.dbo.adm_Host',
  HAS_PERMS_BY_NAME(N'BizTalkMgmtDb.dbo.adm_Host', N'OBJECT', N'SELECT')
UNION ALL SELECT N'SELECT', N'SSODB.dbo.SSOX_GlobalInfo',
  HAS_PERMS_BY_NAME(N'SSODB.dbo.SSOX_GlobalInfo', N'OBJECT', N'SELECT')
UNION ALL SELECT N'SELECT', N'SSODB.dbo.SSOX_Servers',
  HAS_PERMS_BY_NAME(N'SSODB.dbo.SSOX_Servers', N'OBJECT', N'SELECT')"""

# discovery (python -m entsso.discover): the group's BizTalk servers and every SQL
# Agent job
BIZTALK_SERVERS = "SELECT Name FROM BizTalkMgmtDb.dbo.adm_Server ORDER BY Name"
ALL_JOBS = "SELECT name, enabled FROM msdb.dbo.sysjobs ORDER BY name"

# Statements safe to run again after the connection broke under them (a SQL Server failover: entsso.remote.sql
# retries them within the retry window): the reads, and sp_update_job, which sets a job's `enabled` to a target
# value (run twice, the job is as once). Never sp_start_job (a second run of the job), sp_stop_job,
# sp_ForceFullBackup, or the estate lock's statements (its session is what they are about).
SAFE_TO_REPEAT = frozenset({
    NOW, SERVER_NAME, SECRET_SERVER, SSO_ADMIN_GROUP, GROUP_SSO_SERVER, ADAPTER_HANDLERS, SSO_SERVERS, JOBS,
    JOB_STEPS, JOB_CONTROL, JOB_OWNERS, AGENT_STATUS, FORCE_FULL_OBJECTS, FORCE_FULL_SETTINGS, FORCE_FULL_LEGACY,
    BACKUP_DATABASES, LAST_FULL_SET, FULL_SETS_AFTER, GRANTS, BIZTALK_SERVERS, ALL_JOBS, UPDATE_JOB})
