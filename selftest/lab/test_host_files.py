"""The lab's per-host file behaviour chosen by a scenario (issue 27 item 5): a backup folder the WinRM
account may not write (sso.hosts.<HOST>.backup_folder_read_only) and a host clock that is not SQL Server's
(sso.hosts.<HOST>.clock_skew_sec), driven on the model directly."""
from __future__ import annotations

import base64
from datetime import datetime, timedelta

import pytest

from entsso.lab.model import PSError
from selftest.lab.test_model import PASSWORD, facts, make

FOLDER = "C:\\SSOBackup"


def _when(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def read_only(host: str):
    return make("default", sso={"hosts": {host: {"backup_folder_read_only": True}}})


def test_a_read_only_backup_folder_fails_get_hostfacts_probe_and_only_there():
    e = read_only("NODE2")
    assert facts(e, "NODE2", backup_folder=FOLDER)["backup_folder"] == {"path": FOLDER, "exists": True,
                                                                       "writable": False}
    assert facts(e, "NODE1", backup_folder=FOLDER)["backup_folder"]["writable"] is True
    assert e.changes == 0


def test_write_file_into_a_read_only_folder_is_access_denied_and_writes_nothing():
    e = read_only("NODE2")
    path = FOLDER + "\\ENTSSO-CHG1.bak"
    with pytest.raises(PSError) as err:
        e.invoke("NODE2", "Write-File", {"path": path, "content_b64": base64.b64encode(b"x").decode()})
    assert str(err.value) == ('Exception calling "WriteAllBytes" with "2" argument(s): '
                              f'"Access to the path \'{path}\' is denied."')
    assert err.value.category == "UnauthorizedAccessException"
    with pytest.raises(PSError):
        e.invoke("NODE2", "Read-File", {"path": path})
    # another folder on the same node is not affected (the scenario names the backup folder only)
    e.invoke("NODE2", "Write-File", {"path": "C:\\Temp\\x.txt", "content_b64": base64.b64encode(b"x").decode()})


def test_backup_secret_into_a_read_only_folder_is_refused_with_access_denied(monkeypatch):
    e = read_only("NODE1")
    path = FOLDER + "\\ENTSSO-CHG1.bak"
    with pytest.raises(PSError) as err:
        e.invoke("NODE1", "Backup-MasterSecret", {"file": path, "password": PASSWORD, "reminder": "r"})
    assert "SSO refused to back up the master secret on NODE1 (0x80070005): Access is denied." in str(err.value)
    assert facts(e, "NODE1", secret_backup_file=path)["secret_backup"]["exists"] is False
    assert e.changes == 0


def test_a_hosts_clock_skew_shows_in_its_now_and_in_the_times_of_files_it_writes():
    e = make("default", sso={"hosts": {"NODE1": {"clock_skew_sec": -420}}})
    estate_now = e.clock.now()
    node1 = _when(facts(e, "NODE1")["now_utc"])
    node2 = _when(facts(e, "NODE2")["now_utc"])
    assert node1 - estate_now < timedelta(seconds=-400)  # seven minutes behind (the lab runs fast: a margin)
    assert abs(node2 - estate_now) < timedelta(seconds=60)
    wrote = e.invoke("NODE1", "Backup-MasterSecret", {"file": FOLDER + "\\ENTSSO-CHG1.bak", "password": PASSWORD,
                                                      "reminder": "r"})
    assert _when(wrote["last_write_utc"]) < e.clock.now() - timedelta(seconds=400)
    copied = e.invoke("NODE2", "Write-File", {"path": FOLDER + "\\x.txt",
                                              "content_b64": base64.b64encode(b"x").decode()})
    assert abs(_when(copied["last_write_utc"]) - e.clock.now()) < timedelta(seconds=60)
