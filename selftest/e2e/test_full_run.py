"""The main job end to end: `pytest --lab fast --apply --change-ticket …` performs the runbook on the lab
and leaves the estate upgraded, reclustered and BizTalk as it was; without --apply nothing changes."""
from __future__ import annotations

from selftest.e2e.suite import run_suite


def test_full_upgrade_on_the_lab(full_run):
    run = full_run
    assert run.returncode == 0, run.output[-4000:]
    assert run.dir is not None and (run.dir / "report.html").exists()
    outcomes = run.outcomes
    assert set(outcomes.values()) == {"passed"}, sorted(n for n, s in outcomes.items() if s != "passed")
    assert "test_adapter_properties_readable_through_node[NODE2]" in outcomes
    assert "test_biztalk_back_to_the_baseline" in outcomes

    estate = run.lab_state["estate"]
    assert run.lab_state["sql"]["secret_server"].upper() == "SSOCLUSTER"
    for node in ("NODE1", "NODE2"):
        assert estate["hosts"][node]["sso"]["version"] == "10.0.2000.0"
        assert estate["hosts"][node]["sso"]["holds_secret"] is True
    assert estate["cluster"]["group"]["owner"] == "NODE1"
    assert estate["cluster"]["resource"]["state"] == "Online"
    assert estate["cluster"]["restart_policy"]["actions"] == [], estate["cluster"]["restart_policy"]  # the run never stopped the cluster's own ENTSSO behind its back (its restart policy is active)
    # BizTalk put back as found: what ran runs, what was stopped stays stopped
    jobs = run.lab_state["sql"]["jobs"]
    assert jobs["Backup BizTalk Server (BizTalkMgmtDb)"]["enabled"] in (True, 1)
    assert jobs["MessageBox_Message_Cleanup_BizTalkMsgBoxDb"]["enabled"] in (False, 0)

    kinds = [r["kind"] for r in run.journal()]
    assert "gate_refused" not in kinds and "phase_stopped" not in kinds
    # phase 5 moves the group while the ENTSSO resource is offline: it arrives PartialOnline, as on Windows
    first_move = next(r["evidence"] for r in run.journal() if r["kind"] == "result" and r["phase"] == "recluster"
                      and r["step"].startswith("move the SSO group"))
    assert (first_move["state_before"], first_move["state"]) == ("PartialOnline", "PartialOnline"), first_move
    # every envelope sent over stdin went to a command whose stdin is a pipe: none was dropped as console input
    totals = run.lab_state["winrm"]["stats"]["totals"]
    assert totals["stdin_to_console"] == 0 and totals["commands"] > 0, totals
    # the default lab's ManageRefCountLog ran continuously: phase 1 stopped it (disabling does not), left no
    # BizTalk job running (its verification), and phase 7 restored exactly the jobs that were enabled
    from entsso.lab.server import load_scenario

    assert outcomes["test_biztalk_job_disabled[MessageBox_Message_ManageRefCountLog_BizTalkMsgBoxDb]"] == "passed"
    silenced = [r for r in run.journal() if r["kind"] == "result" and r["step"] == "stop the jobs still running"]
    assert silenced and "MessageBox_Message_ManageRefCountLog_BizTalkMsgBoxDb" in silenced[0]["evidence"]["stopped"]
    assert {n: bool(j["enabled"]) for n, j in jobs.items()} == load_scenario("fast")["sql"]["jobs"]
    # the MSS nodes have no BizTalk (fast: biztalk.admin_tools_on_nodes false) and the transport is NTLM (no
    # delegation): phase 6 listed the handlers from BizTalkMgmtDb over ODBC, then read each one through the
    # SSO service of each owner in turn (local, one hop), every one readable, and the run completed
    assert load_scenario("fast")["biztalk"]["admin_tools_on_nodes"] is False
    results = [r for r in run.journal() if r["kind"] == "result" and r["phase"] == "failover"]
    listed = [r for r in results if r["step"] == "list the adapter handlers from BizTalkMgmtDb"]
    assert len(listed) == 1 and len(listed[0]["evidence"]) == len(load_scenario("fast")["biztalk"]["adapter_handlers"])
    reads = [r for r in results if r["step"].startswith("read the adapter handlers")]
    assert [r["host"] for r in reads] == ["NODE1", "NODE2"], reads  # the owner first, where it is
    assert all(h["readable"] and h["seen_from"] == r["host"] for r in reads for h in r["evidence"]), reads
    received = run.lab_state["winrm"]["received"]
    # once on each owner in phase 6, and once more on NODE1 in the rehearsal before phase 1 (the owner then)
    assert received.get("NODE2 Get-AdapterHandlers") == 1 and received.get("NODE1 Get-AdapterHandlers") == 2
    assert not any(k.startswith("BTS") and k.endswith("Get-AdapterHandlers") for k in received)
    steps = [(r["phase"], r["step"]) for r in run.journal() if r["kind"] == "result"]
    phases = [p for p, _ in steps]
    # the runbook's order
    order = ["silence", "backup", "uncluster", "upgrade", "recluster", "failover", "resume"]
    firsts = [phases.index(p) for p in order]
    assert firsts == sorted(firsts), phases


def test_the_run_reuses_shells_and_leaves_none_open(full_run):
    """Each host's calls run in kept shells (one Create for many Commands), and the run's end deletes
    them while the hosts still answer."""
    stats = full_run.lab_state["winrm"]["stats"]["totals"]
    calls = sum(full_run.summary["winrm_per_host"][h]["calls"] for h in full_run.summary["winrm_per_host"])
    assert stats["shells_open"] == 0
    assert stats["commands"] >= calls
    assert stats["shells_created"] <= calls / 2, stats  # ~one shell a host and concurrent call, not one a call


def test_without_apply_the_whole_suite_changes_nothing(tmp_path):
    run = run_suite(tmp_path, "--lab", "fast")
    assert run.returncode == 1  # the post-state does not hold on an estate that was not upgraded
    assert run.lab_state["changes"] == 0
    kinds = {r["kind"] for r in run.journal()}
    assert "intent" not in kinds


def test_apply_without_a_change_ticket_is_refused_before_anything_starts(tmp_path):
    run = run_suite(tmp_path, "--lab", "--apply")
    assert run.returncode == 4
    assert "--apply changes the estate and needs --change-ticket" in run.output
    assert run.dir is None  # no run directory: no lab was started


def test_keep_silenced_upgrades_but_leaves_biztalk_silenced(tmp_path):
    run = run_suite(tmp_path, "--lab", "fast", "--apply", "--change-ticket", "CHG-SILENT-1", "--keep-silenced")
    assert run.returncode == 0, run.output[-3000:]
    assert run.outcomes["test_biztalk_back_to_the_baseline"] == "skipped"
    assert run.outcomes["test_node_runs_the_target_sso_version[NODE2]"] == "passed"
    state = run.lab_state
    bts1 = {i["host_name"]: i["service_state"] for i in state["estate"]["hosts"]["BTS1"]["host_instances"]}
    assert bts1["ReceiveHost"] == "Stopped"
    assert not any(j["enabled"] for j in state["sql"]["jobs"].values())
    assert "resume" not in {r["phase"] for r in run.journal() if r["kind"] == "phase_started"}
