"""A captured estate served verbatim (issue 27 item 3): a rehearsal's capture, served by `python -m entsso.lab
serve --capture`, is rehearsed and changed end to end, and the tool texts the suite reads there are the
captured ones, byte for byte, while the state they describe holds."""
from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from entsso.lab.launcher import LabError, LabProcess
from entsso.lab.replay import CaptureError, load_capture
from entsso.lab.server import Lab, load_scenario
from selftest.e2e.suite import SuiteRun, run_suite
from selftest.lab.conftest import SQL_PASSWORD, WINRM_PASSWORD, lab_host


@pytest.fixture(scope="module")
def first(tmp_path_factory: pytest.TempPathFactory) -> SuiteRun:
    """A rehearsal on the fast lab: the capture every test here serves."""
    run = run_suite(tmp_path_factory.mktemp("first"), "tests_pre", "-m", "rehearsal", "--lab", "fast")
    assert run.returncode == 0 and run.dir is not None, run.output[-3000:]
    return run


def _texts(capture: Path) -> dict[tuple[str, str, str], set[bytes]]:
    """Each captured tool text (with its `# exit_code:` line, without its `# source:` line), by (case word, host,
    which of the call's texts); the call numbers differ between runs (hosts are asked at once)."""
    out: dict[tuple[str, str, str], set[bytes]] = {}
    for path in sorted((capture / "ssomanage").glob("*.txt")):
        word, host, _n, part = re.match(r"(\w+)-(.+)-(\d{4})(-\w+)?$", path.stem).groups()  # type: ignore[union-attr]
        body = b"".join(line for line in path.read_bytes().splitlines(keepends=True)
                        if not line.startswith(b"# source: "))
        out.setdefault((word, host, part or ""), set()).add(body)
    return out


def test_a_captured_estate_is_rehearsed_and_changed_end_to_end(first: SuiteRun, tmp_path: Path) -> None:
    assert first.dir is not None
    capture = first.dir / "capture"
    lab = LabProcess("capture", tmp_path / "served" / "lab-inventory.yml", speed=200, capture=str(capture)).start()
    try:
        again = run_suite(tmp_path / "again", f"--inventory={lab.inventory_path}", "tests_pre", "-m", "rehearsal",
                          env=dict(lab.env))
        assert again.returncode == 0, again.output[-3000:]
        assert again.dir is not None
        # what the suite read on the served estate is what the capture holds, byte for byte, and nothing changed
        assert _texts(again.dir / "capture") == _texts(capture)
        state = lab.state()
        assert state["changes"] == 0
        served = state["replay"]["served"]
        assert served["NODE1 displaydb"]["captured"] >= 3 and served["NODE1 updatedb"]["captured"] == 1
        assert not any(s["derived"] or s["lab"] for s in served.values()), served

        change = run_suite(tmp_path / "change", f"--inventory={lab.inventory_path}", "--apply", "--change-ticket",
                           "CHG-REPLAY-1", env=dict(lab.env))
        assert change.returncode == 0, change.output[-3000:]
        assert change.dir is not None
        estate = lab.state()["estate"]
        assert {h: estate["hosts"][h]["sso"]["version"] for h in ("NODE1", "NODE2")} == {
            "NODE1": "10.0.2000.0", "NODE2": "10.0.2000.0"}
        texts = _texts(change.dir / "capture")
        # the change's first look at the estate still reads the captured texts; its later looks, after the
        # secret server and the owner moved, read texts derived from them (or the lab's own, where a captured
        # ERROR answer no longer describes the state)
        for key in [("displaydb", "NODE1", ""), ("displaydb", "BTS1", ""), ("displaydb", "BTS2", "")]:
            assert _texts(capture)[key] <= texts[key], key
        served = lab.state()["replay"]["served"]
        assert served["NODE1 displaydb"]["derived"] >= 1, served  # the secret server moved: that line replaced
        assert "SSO secret server name" in served["NODE1 displaydb"]["fields"], served
        assert served["NODE2 displaydb"]["lab"] >= 1, served  # its captured answer was an ERROR (a second hop)
    finally:
        lab.stop()


def _copy(first: SuiteRun, tmp_path: Path) -> Path:
    assert first.dir is not None
    return Path(shutil.copytree(first.dir / "capture", tmp_path / "capture"))


def test_a_capture_without_a_hosts_facts_is_refused_naming_the_document(first: SuiteRun, tmp_path: Path) -> None:
    capture = _copy(first, tmp_path)
    for doc in (capture / "winrm").glob("*-Get-HostFacts-NODE2.json"):
        doc.unlink()
    lab = LabProcess("capture", tmp_path / "lab" / "lab-inventory.yml", capture=str(capture))
    with pytest.raises(LabError) as refused:
        lab.start()
    assert "this capture cannot shape a lab" in str(refused.value)
    assert "no Get-HostFacts document for NODE2 (<n>-Get-HostFacts-NODE2.json)" in str(refused.value)


@pytest.mark.parametrize(("remove", "named"), [
    ("inventory.json", "inventory.json is missing"),
    ("ssomanage/displaydb-BTS1-*.txt", "displaydb-BTS1-<n>.txt is missing"),
    ("sql/*-msdb.json", "no answer to the statement that reads the SQL Agent jobs (msdb.dbo.sysjobs)"),
])
def test_a_capture_missing_a_document_is_refused_with_the_file_named(first: SuiteRun, tmp_path: Path, remove: str,
                                                                     named: str) -> None:
    capture = _copy(first, tmp_path)
    for path in capture.glob(remove):
        path.unlink()
    with pytest.raises(CaptureError, match=re.escape(named)):
        load_capture(capture)


def test_a_hand_edited_capture_is_what_the_served_lab_prints(first: SuiteRun, tmp_path: Path) -> None:
    """A text edited by hand (another SSO administrators group, a longer credential cache) is printed as edited,
    and a version edited in a host's captured facts is the version that host reports."""
    capture = _copy(first, tmp_path)
    case = min((capture / "ssomanage").glob("displaydb-NODE1-[0-9][0-9][0-9][0-9].txt"))
    edited = case.read_bytes().replace(b"SSO Admin account : SSO Administrators\r\n",
                                       b"SSO Admin account : CONTOSO\\BizTalk SSO Admins\r\n")
    edited = edited.replace(b"Credential cache timeout (in min... : 60", b"Credential cache timeout (in min... : 90")
    assert edited != case.read_bytes()
    case.write_bytes(edited)
    facts = next((capture / "winrm").glob("*-Get-HostFacts-BTS2.json"))
    facts.write_text(facts.read_text().replace('"version": "10.0.1000.0"', '"version": "10.0.1500.0"'))
    replay = load_capture(capture)
    lab = Lab(replay.scenario, winrm_password=WINRM_PASSWORD, sql_password=SQL_PASSWORD, replay=replay)
    lab.start()
    try:
        node1, bts2 = lab_host(lab, "NODE1"), lab_host(lab, "BTS2")
        answer = node1.invoke("Get-HostFacts", {"services": ["ENTSSO"]})
        body = b"".join(line for line in edited.splitlines(keepends=True) if not line.startswith(b"# "))
        assert answer["sso"]["displaydb"]["stdout"].encode() == body
        assert "CONTOSO\\BizTalk SSO Admins" in answer["sso"]["displaydb"]["stdout"]
        assert bts2.invoke("Get-HostFacts", {"services": ["ENTSSO"]})["sso"]["version"] == "10.0.1500.0"
        # after -updatedb names another secret server, NODE1's text is the edited one with that line changed
        node1.invoke("Update-SsoDatabase", {"secret_server": "NODE1"})
        derived = node1.invoke("Get-HostFacts", {"services": ["ENTSSO"]})["sso"]["displaydb"]["stdout"]
        moved = body.replace(b"SSO secret server name : SSOCLUSTER", b"SSO secret server name : NODE1")
        assert derived.encode() == moved
        assert lab.dump()["replay"]["served"]["NODE1 displaydb"]["fields"] == ["SSO secret server name"]
    finally:
        lab.stop()


@pytest.mark.parametrize("scenario", ["second-instance", "node-down"])
def test_the_lab_a_capture_shapes_is_the_estate_it_was_written_on(tmp_path: Path, scenario: str) -> None:
    """A rehearsal's capture on another estate: SSODB and the MessageBox's jobs on a second instance, a node Down
    (it never answered: the cluster's view says Down)."""
    run = run_suite(tmp_path, "tests_pre", "-m", "rehearsal", "--lab", scenario)
    assert run.dir is not None, run.output[-3000:]
    derived, written = load_capture(run.dir / "capture").scenario, load_scenario(scenario)
    assert derived["sql"]["jobs"] == written["sql"]["jobs"]  # each instance's msdb read, merged
    assert derived["sql"].get("second_instance") == ({"server": "SQL2", "instance": "SSO",
                                                     "databases": ["SSODB", "BizTalkMsgBoxDb"]}
                                                    if scenario == "second-instance" else None)
    assert derived["cluster"]["nodes"] == [{"name": n["name"], "state": n.get("state", "Up")}
                                           for n in written["cluster"]["nodes"]]
    assert derived["cluster"]["owner"] == written["cluster"]["owner"]
    assert derived["sso"]["secret_server"] == written["sso"]["secret_server"]
    # isolated host instances have no service: a capture does not show them
    services = {b["name"]: [(i["host"], i.get("state", "Running")) for i in b["host_instances"]
                            if i.get("type") != "Isolated"] for b in written["biztalk"]["servers"]}
    assert {b["name"]: [(i["host"], i["state"]) for i in b["host_instances"]]
            for b in derived["biztalk"]["servers"]} == services


def test_an_update_packages_captured_exit_code_is_what_that_node_returns(first: SuiteRun, tmp_path: Path) -> None:
    capture = _copy(first, tmp_path)
    (capture / "msiexec").mkdir()
    (capture / "msiexec" / "exit-NODE2-0042.txt").write_text(
        "# source: captured from NODE2 at 2026-12-07T23:40:00+00:00 by entsso-upgrade 0.1.0 (Install-SsoUpdate)\n"
        "# exit_code: 3010\n")
    assert load_capture(capture).scenario["upgrade"]["nodes"] == {"NODE2": {"exit_code": 3010}}
