"""The rehearsal (`pytest tests_pre -m rehearsal`): every remote operation and statement of the full change
once, on the live estate, in a form that changes nothing — and what it must refuse, with nothing changed."""
from __future__ import annotations

from pathlib import Path

import pytest

from entsso.change.rehearsal import UNREHEARSABLE
from selftest.e2e.suite import run_suite


def _operations(lab_state: dict) -> set[str]:
    return {key.split(" ", 1)[1] for key in lab_state["winrm"]["received"]}


def _procedures(lab_state: dict) -> set[str]:
    procs: set[str] = set()
    for engine in [lab_state["sql"], *(lab_state["sql"].get("instances") or {}).values()]:
        procs |= {p.rsplit(".", 1)[-1] for p in (engine.get("counters") or {}).get("procedures", {})}
    return procs


@pytest.fixture(scope="module")
def rehearsal(tmp_path_factory):
    return run_suite(tmp_path_factory.mktemp("rehearsal"), "tests_pre", "-m", "rehearsal", "--lab", "fast")


def test_the_rehearsal_runs_every_operation_of_the_full_change_and_changes_nothing(rehearsal, full_run):
    assert rehearsal.returncode == 0, rehearsal.output[-3000:]
    assert rehearsal.lab_state["changes"] == 0  # services, cluster, SSO, jobs: as found
    assert rehearsal.lab_state["estate"]["files_written"] == 2  # its own secret backup and the record round trip
    missing = _operations(full_run.lab_state) - _operations(rehearsal.lab_state) - set(UNREHEARSABLE)
    assert not missing, f"the full change calls these, the rehearsal does not: {missing}"
    assert {"sp_update_job", "sp_getapplock", "sp_releaseapplock"} <= _procedures(rehearsal.lab_state)
    sql_missing = _procedures(full_run.lab_state) - _procedures(rehearsal.lab_state) - set(UNREHEARSABLE)
    assert not sql_missing, f"the full change runs these procedures, the rehearsal does not: {sql_missing}"
    record = next(r for r in rehearsal.journal() if r["kind"] == "rehearsal")
    assert record["passed"] and set(record["unrehearsable"]) >= {"Install-SsoUpdate", "Restore-MasterSecret",
                                                                  "Restart-Node", "sp_start_job"}
    # what it proved and what it cannot try, in the report and in summary.json
    report = (rehearsal.dir / "report.html").read_text()
    assert "Rehearsal before phase 1" in report and "Install-SsoUpdate" in report and "Update-SsoDatabase" in report
    assert rehearsal.summary["rehearsal"]["passed"] and "Restart-Node" in rehearsal.summary["rehearsal"]["unrehearsable"]
    assert "Rehearsal before phase 1" in (full_run.dir / "report.html").read_text()  # a change's report too


REFUSALS = {
    "adapter handler SSO cannot read": (
        "biztalk:\n  adapter_handlers:\n    - {kind: receive, adapter: FILE, host: ReceiveHost}\n"
        "    - {kind: send, adapter: SMTP, host: SendHost, in_sso: false}\n",
        "send handler SMTP (host SendHost): 0x80070057 The parameter is incorrect."),
    "login that may not change the jobs": (
        "sql:\n  login_roles: [SQLAgentReaderRole]\n",
        "14525"),
    "SSODB not in the backup job's set": (
        "sql:\n  databases: [BizTalkMgmtDb, BizTalkMsgBoxDb, BizTalkDTADb, BizTalkRuleEngineDb, BAMPrimaryImport]\n",
        "does not back up SSODB"),
}


@pytest.mark.parametrize("case", sorted(REFUSALS))
def test_the_rehearsal_refuses_what_the_change_would_meet_mid_window(start_lab, tmp_path: Path, case: str):
    overrides, expected = REFUSALS[case]
    scenario = tmp_path / "scenario.yml"
    scenario.write_text("extends: fast\nname: rehearsal-refusal\n" + overrides)
    lab = start_lab(str(scenario))
    result = run_suite(tmp_path / "reports", f"--inventory={lab.inventory_path}", "tests_pre", "-m", "rehearsal",
                       env=dict(lab.env))
    assert result.returncode == 1, result.output[-3000:]
    assert expected in result.output, result.output[-3000:]
    assert lab.state()["changes"] == 0


def test_the_rehearsals_capture_replays_through_the_transcript_test_and_holds_no_secret(rehearsal):
    """What the estate answered, kept as test data (entsso.change.capture): every tool text the suite parses
    is a transcript case that replays as the suite read it; every call's document is kept; the run's secrets
    are nowhere in it (run_suite's canary scans the whole run folder, capture included)."""
    from selftest.unit.test_transcripts import check_case

    capture = rehearsal.dir / "capture"
    cases = sorted(capture.glob("*/*.txt"))
    assert {c.parent.name for c in cases} == {"ssomanage"} and len(cases) >= 7  # 4 hosts' -displaydb, 2 nodes'
    # Set-SsoServer before and after, and the owner's -updatedb
    for case in cases:
        headers = check_case(case)
        assert headers["source"].startswith("captured from ") and " by entsso-upgrade " in headers["source"]
    assert any(c.stem.startswith("updatedb-NODE1") for c in cases)
    documents = sorted((capture / "winrm").glob("*.json"))
    calls = sum(rehearsal.lab_state["winrm"]["received"].values())
    assert len(documents) == calls  # one document per call that answered
    read_back = [d for d in documents if "Read-File" in d.name]
    assert read_back and all("(not kept: " in d.read_text() for d in read_back)  # no backup bytes in the folder
