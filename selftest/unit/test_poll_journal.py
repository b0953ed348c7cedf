"""Waiting on the estate and the journal."""
import json

import pytest

from entsso.change.journal import Journal, prior_run, read
from entsso.domain.poll import Poller, WaitTimedOut


def test_poller_returns_as_soon_as_the_fact_holds_and_never_sleeps_past_the_cap():
    sleeps = []
    seen = iter([None, None, None, None, "done"])
    p = Poller(first=0.2, factor=2, cap=1.0, sleep=sleeps.append)
    assert p.until(lambda: next(seen), 60, what="x") == "done"
    assert sleeps == [0.2, 0.4, 0.8, 1.0]
    assert p.polls == 5 and p.waited == pytest.approx(2.4)


def test_poller_timeout_says_what_it_waited_for_and_what_it_saw():
    p = Poller(first=0.01, cap=0.01)
    with pytest.raises(WaitTimedOut) as exc:
        p.until(lambda: None, 0.05, what="ENTSSO on NODE2 to run", describe=lambda: "StartPending")
    assert "ENTSSO on NODE2 to run" in str(exc.value) and "StartPending" in str(exc.value)


def test_journal_is_durable_redacted_and_resumable(tmp_path):
    j = Journal(tmp_path / "journal.jsonl", "RUN1")
    j.write("run_started", change_ticket="CHG1", change_started="2026-11-24T21:00:00+00:00")
    j.write("baseline", baseline={"group_owner": "NODE1"})
    j.intent("backup", "back up the master secret", "NODE1", password="Canary-9", file="C:\\x.bak")
    j.result("backup", "back up the master secret", "NODE1", "ok", evidence={"size": 10})
    j.result("backup", "force a full BizTalk backup", None, "failed", error="job failed")
    j.close()
    with open(tmp_path / "journal.jsonl", "a") as fh:
        fh.write('{"torn": ')  # the process died mid-write
    text = (tmp_path / "journal.jsonl").read_text()
    assert "Canary-9" not in text
    assert len(list(read(tmp_path / "journal.jsonl"))) == 5
    prior = prior_run(tmp_path / "journal.jsonl")
    assert prior.change_ticket == "CHG1" and prior.baseline == {"group_owner": "NODE1"}
    assert ("backup", "back up the master secret", "NODE1") in prior.done_steps
    assert ("backup", "force a full BizTalk backup", None) not in prior.done_steps
    assert json.loads(text.splitlines()[2])["password"] == "***"
