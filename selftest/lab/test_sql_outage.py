"""The lab's `sql_unavailable` with `seconds` (entsso.lab.sqloutage) through the suite's own SqlServer (pyodbc,
FreeTDS, TLS against the lab's CA): SQL Server goes, dropping every session (an application lock with it), and
answers again by itself; a statement safe to repeat meets the outage and is answered once SQL Server is back,
one that is not safe to repeat fails at once."""
from __future__ import annotations

import time
from typing import Any

import pytest

from entsso.change.lock import EstateLock, EstateLockLost
from entsso.remote import tsql
from entsso.remote.sql import SqlServer, SqlSettings, SqlUnreachable, StatementLog
from selftest.lab.conftest import SQL_PASSWORD, lab_host

pytest.importorskip("pyodbc")


def _settings(lab: Any, **kw: Any) -> SqlSettings:
    base: dict[str, Any] = {"server": lab.sql.server_name, "driver": "FreeTDS", "auth": "sql",
                            "username": lab.sql_username, "ca_file": str(lab.ca_path),
                            "lab_address": lab.sql_address, "lab_port": lab.sql_endpoint.port, "login_timeout": 3}
    base.update(kw)
    return SqlSettings(**base)


def _until(check, seconds: float = 5.0):
    end = time.monotonic() + seconds
    while not (got := check()) and time.monotonic() < end:
        time.sleep(0.02)
    return got


def test_an_outage_with_seconds_drops_every_session_and_heals_by_itself(make_lab):
    lab = make_lab("fast")  # speed 200: 200 estate seconds last one real second
    sql = SqlServer(_settings(lab), SQL_PASSWORD)
    lock = EstateLock(_settings(lab), SQL_PASSWORD, "SSOCLUSTER")
    lock.acquire()
    assert sql.execute(tsql.SECRET_SERVER, database="SSODB").scalar() == "SSOCLUSTER"
    lab.apply_fault({"kind": "sql_unavailable", "seconds": 200})
    with pytest.raises(SqlUnreachable):  # not repeatable: the broken session is reported at once
        sql.execute(tsql.SECRET_SERVER, database="SSODB")
    with pytest.raises(EstateLockLost, match="session ended"):
        lock.verify()
    assert lock.session_ended
    outage = lab.dump()["faults"]["sql_outages"]
    assert [(o["seconds"], o["healed"]) for o in outage] == [(200, False)]
    assert _until(lambda: lab.dump()["faults"]["sql_outages"][0]["healed"])
    assert sql.execute(tsql.SECRET_SERVER, database="SSODB").scalar() == "SSOCLUSTER"  # a new session
    # the lock went with its session; SQL Server does not give it back: it is taken again in a new session
    assert lock.regain(5)["held"] is True
    lock.release()
    sql.close()


def test_without_seconds_the_outage_lasts_until_cleared(make_lab):
    lab = make_lab("fast")
    sql = SqlServer(_settings(lab), SQL_PASSWORD)
    lab.apply_fault({"kind": "sql_unavailable"})
    time.sleep(1.5)  # 300 estate seconds
    with pytest.raises(SqlUnreachable):
        sql.execute(tsql.NOW)
    lab.clear_faults()
    assert lab.dump()["faults"]["sql_outages"][0]["healed"] is True
    assert sql.execute(tsql.NOW).rows
    sql.close()


def test_a_statement_safe_to_repeat_outlasts_a_short_outage_and_one_that_is_not_fails_at_once(make_lab):
    lab = make_lab("fast")
    log = StatementLog()
    retries: list[tuple[Any, ...]] = []
    log.retry_listeners.append(lambda *a: retries.append(a))
    sql = SqlServer(_settings(lab, retry_window=5), SQL_PASSWORD, log)
    assert sql.execute(tsql.NOW, repeatable=True).rows
    lab.apply_fault({"kind": "sql_unavailable", "seconds": 300})  # 1.5 real seconds
    started = time.monotonic()
    assert sql.execute(tsql.SECRET_SERVER, database="SSODB", repeatable=True).scalar() == "SSOCLUSTER"
    waited = time.monotonic() - started
    assert 1.0 < waited < 5, waited  # answered once SQL Server was back, not before and not at the window's end
    assert retries and all(r[0] == sql.name and "unreachable" in r[3] for r in retries)
    assert [r.outcome for r in log.records[1:]] == ["error"] * len(retries) + ["ok"]
    lab.apply_fault({"kind": "sql_unavailable", "seconds": 300})
    started = time.monotonic()
    with pytest.raises(SqlUnreachable):  # sp_start_job is never repeated: a second run of the job
        sql.execute(tsql.START_JOB, ("Backup BizTalk Server (BizTalkMgmtDb)",), database="msdb")
    assert time.monotonic() - started < 1.0
    sql.close()


def test_a_repeatable_statement_gives_up_after_the_window_and_the_next_fails_at_once(make_lab):
    lab = make_lab("fast")
    sql = SqlServer(_settings(lab, retry_window=1), SQL_PASSWORD)
    lab.apply_fault({"kind": "sql_unavailable"})
    started = time.monotonic()
    with pytest.raises(SqlUnreachable):
        sql.execute(tsql.NOW, repeatable=True)
    assert 0.9 < time.monotonic() - started < 3
    started = time.monotonic()
    with pytest.raises(SqlUnreachable):  # SQL Server has not answered for a whole window: no second window
        sql.execute(tsql.NOW, repeatable=True)
    assert time.monotonic() - started < 0.9
    lab.clear_faults()
    assert sql.execute(tsql.NOW, repeatable=True).rows  # answered: the next outage is waited for again
    assert not sql._gave_up
    sql.close()


def test_an_outage_at_a_call_begins_as_that_call_arrives_and_the_call_runs(make_lab):
    lab = make_lab("fast", faults=[{"kind": "sql_unavailable", "host": "NODE2", "operation": "Get-HostFacts",
                                    "seconds": 200}])
    assert lab.dump()["faults"]["sql_outages"] == []
    assert lab_host(lab, "NODE2").invoke("Get-HostFacts", {})["computer_name"] == "NODE2"
    outage = lab.dump()["faults"]["sql_outages"]
    assert len(outage) == 1 and outage[0]["seconds"] == 200
    assert [f["kind"] for f in lab.dump()["faults"]["fired"]] == ["sql_unavailable"]
    lab_host(lab, "NODE2").invoke("Get-HostFacts", {})  # the first matching call only
    assert len(lab.dump()["faults"]["sql_outages"]) == 1
    assert _until(lambda: lab.dump()["faults"]["sql_outages"][0]["healed"])


def test_a_lock_taken_by_another_session_during_the_outage_is_not_regained(make_lab):
    from entsso.change.lock import EstateLocked

    lab = make_lab("fast")
    ours = EstateLock(_settings(lab), SQL_PASSWORD, "SSOCLUSTER")
    ours.acquire()
    lab.apply_fault({"kind": "sql_unavailable", "seconds": 100})
    assert ours.lost() is not None and ours.session_ended
    assert _until(lambda: lab.dump()["faults"]["sql_outages"][0]["healed"])
    theirs = EstateLock(_settings(lab), SQL_PASSWORD, "SSOCLUSTER")  # another run, first once SQL answers
    theirs.acquire()
    with pytest.raises(EstateLocked, match="another entsso-upgrade run holds the estate lock"):
        ours.regain(2)
    assert not ours.held and theirs.lost() is None
    theirs.release()


def test_a_lock_whose_sql_server_does_not_come_back_in_time_is_lost_with_the_reason(make_lab):
    lab = make_lab("fast")
    lock = EstateLock(_settings(lab), SQL_PASSWORD, "SSOCLUSTER")
    lock.acquire()
    lab.apply_fault({"kind": "sql_unavailable"})
    assert lock.lost() is not None
    started = time.monotonic()
    with pytest.raises(EstateLockLost, match="has not answered again within 1 s"):
        lock.regain(1, interval=0.2)
    assert 0.8 < time.monotonic() - started < 4
