"""The parsers behind the gate's field checks (issue 28): service accounts, MSDTC's registry, job health."""
from __future__ import annotations

from entsso.domain import msdtc, services, sqlagent


def test_a_built_in_or_local_account_is_no_domain_account():
    assert services.not_a_domain_account("LocalSystem", "NODE1") == "a built-in account"
    assert services.not_a_domain_account("NT AUTHORITY\\NetworkService", "NODE1") == "a built-in account"
    assert services.not_a_domain_account("NT SERVICE\\ENTSSO", "NODE1") == "a built-in account"
    assert services.not_a_domain_account(".\\ssoadmin", "NODE1") == "an account local to NODE1"
    assert services.not_a_domain_account("node1\\ssoadmin", "NODE1.contoso.local") == \
        "an account local to NODE1.contoso.local"
    assert services.not_a_domain_account("CONTOSO\\svc-sso", "NODE1") is None
    assert services.not_a_domain_account("svc-sso@contoso.local", "NODE1") is None
    assert services.account_key(" CONTOSO\\Svc-SSO ") == services.account_key("contoso\\svc-sso")


def test_msdtc_registry_parsed_and_a_shared_cid_found():
    def doc(cid: str, access: int | None = 1) -> dict:
        return {"msdtc": {"security": {n: access for n in msdtc.REQUIRED},
                          "cids": [{"cid": cid, "description": "MSDTC"}, {"cid": "{X}", "description": "MSDTCUIS"}],
                          "error": None}}
    one = msdtc.parse_msdtc("NODE1", doc("{5a2f-aa}"))
    two = msdtc.parse_msdtc("NODE2", doc("{5A2F-AA}", None))
    three = msdtc.parse_msdtc("NODE3", doc("{77-bb}"))
    assert one is not None and two is not None and three is not None
    assert one.cid == "5A2F-AA" and one.not_set() == []
    assert two.not_set() == list(msdtc.REQUIRED)  # absent values are not set
    assert msdtc.shared_cids(two, [one, two, three]) == ["NODE1"]
    assert msdtc.shared_cids(three, [one, two, three]) == []
    assert msdtc.parse_msdtc("NODE1", {}) is None  # not read


def test_msdtc_values_are_judged_from_the_registry_as_returned():
    """The script returns each Security value raw; Python decides: a REG_DWORD 1 is set, a REG_SZ "1" counts
    as 1, anything else (0, "yes", true) is not set."""
    raw = {"NetworkDtcAccess": 1, "NetworkDtcAccessTransactions": "1", "NetworkDtcAccessInbound": "yes",
           "NetworkDtcAccessOutbound": True}
    m = msdtc.parse_msdtc("NODE1", {"msdtc": {"security": raw, "cids": [], "error": None}})
    assert m is not None
    assert m.not_set() == ["NetworkDtcAccessInbound", "NetworkDtcAccessOutbound"]


def _job(name: str, enabled: bool = True, outcome: str | None = "Succeeded", **kw) -> sqlagent.Job:
    return sqlagent.Job(name, True, enabled, False, outcome, "20261207 010000", "The job failed.", **kw)


def test_job_health_as_kb_952555_expects():
    backup = "Backup BizTalk Server (BizTalkMgmtDb)"
    assert sqlagent.job_health(_job(backup)) is None
    failed = sqlagent.job_health(_job(backup, outcome="Failed", failed_step="BackupFull",
                                      failed_step_message="Cannot open backup device"))
    assert failed == "its last run (20261207 010000, msdb's local time) Failed; the failing step 'BackupFull': " \
                     "Cannot open backup device"
    assert sqlagent.job_health(_job(backup, enabled=False, outcome="Failed")) is None  # will not run: not judged
    refcount = "MessageBox_Message_ManageRefCountLog_BizTalkMsgBoxDb"
    assert sqlagent.job_health(_job(refcount, outcome="Failed"), [refcount]) is None
    cleanup = "MessageBox_Message_Cleanup_BizTalkMsgBoxDb"
    assert "enabled" in (sqlagent.job_health(_job(cleanup)) or "")
    assert sqlagent.job_health(_job(cleanup, enabled=False)) is None


def test_get_winevent_finding_no_event_is_no_events_not_an_error():
    """Get-HostFacts returns Get-WinEvent's error raw; Python decides that NoMatchingEventsFound means none."""
    from entsso.domain import ssoevents

    none = {"entsso_events": {"events": [], "error": "No events were found that match the specified selection "
                              "criteria.", "error_id": "NoMatchingEventsFound,Microsoft.PowerShell.Commands."
                              "GetWinEventCommand"}}
    assert ssoevents.parse_events("NODE1", none) == ((), None)
    denied = {"entsso_events": {"events": [], "error": "Attempted to perform an unauthorized operation.",
                                "error_id": "System.UnauthorizedAccessException"}}
    assert ssoevents.parse_events("NODE1", denied) == ((), "Attempted to perform an unauthorized operation.")


def test_a_backup_read_back_is_judged_by_its_reminder_and_its_hash():
    from entsso.domain.sso import BackupReadBack, backup_unrestorable

    good = BackupReadBack("C:\\SSOBackup\\X.bak", 94, "ab" * 32, "CHG1 entsso-upgrade", None)
    assert backup_unrestorable(good, "CHG1 entsso-upgrade", "AB" * 32) is None
    assert "not this change's backup" in str(backup_unrestorable(good, "CHG2 entsso-upgrade", "ab" * 32))
    assert "differs from its copy off the node" in str(backup_unrestorable(good, "CHG1 entsso-upgrade", "cd" * 32))
    bad = BackupReadBack("C:\\SSOBackup\\X.bak", 31, "ef" * 32, None, "0x80090005: Bad Data.")
    assert "SSO cannot read the backup C:\\SSOBackup\\X.bak back (0x80090005: Bad Data.)" in str(
        backup_unrestorable(bad, "CHG1 entsso-upgrade", "ef" * 32))
