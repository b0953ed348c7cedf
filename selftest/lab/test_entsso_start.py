"""ENTSSO's own start failures as the lab has them (issue 27 item 2): a service account that cannot log on
(sso.hosts.<HOST>.logon_failure) fails every start there at once with the SCM's 1069, through the SCM and
through the cluster alike; driven on the model directly and through the suite's services domain."""
from __future__ import annotations

import pytest

from entsso.domain import services as svc
from entsso.lab.model import PSError
from selftest.lab.conftest import lab_host
from selftest.lab.test_model import make, services, slow, wait_until

LOGON = ("Service 'ENTSSO' on NODE2 could not be started: The service did not start due to a logon failure. "
         "(Win32 error 1069) Look at the System event log (Service Control Manager) on NODE2, then re-run.")


def test_an_scm_start_with_a_logon_failure_fails_at_once_and_leaves_entsso_stopped():
    e = make("default", sso={"hosts": {"NODE2": {"logon_failure": True}}})
    with pytest.raises(PSError) as err:
        services(e, "NODE2", ("ENTSSO", "Running"))
    assert str(err.value) == LOGON
    assert e.dump()["hosts"]["NODE2"]["services"]["ENTSSO"]["status"] == "Stopped"
    # refused by the SCM itself: no start was ever under way (no StartPending, no retries)
    assert [x["what"] for x in e._log if x["host"] == "NODE2" and "ENTSSO" in x["what"]] == [
        "ENTSSO start refused by the SCM: The service did not start due to a logon failure"]
    # the other node is not affected
    assert e.dump()["hosts"]["NODE1"]["services"]["ENTSSO"]["status"] == "Running"


def test_a_cluster_start_on_a_node_with_a_logon_failure_fails_the_resource_and_the_policy_answers():
    # NODE1's ENTSSO stopped behind the cluster's back, no restart allowed: the policy fails the group over to
    # NODE2, where the resource cannot start (1069); the failover threshold (nodes - 1) is spent: left Failed
    e = slow(cluster={"restart_threshold": 0}, sso={"hosts": {"NODE2": {"logon_failure": True}}})
    services(e, "NODE1", ("ENTSSO", "Stopped"))
    assert wait_until(e, lambda: "left Failed" in (e.dump()["cluster"]["restart_policy"]["actions"] or [{}])[-1]
                      .get("what", ""), 120)
    c = e.dump()["cluster"]
    assert (c["group"]["owner"], c["resource"]["state"]) == ("NODE2", "Failed")
    assert c["resource"]["last_error"] == ("ENTSSO did not start: The service did not start due to a logon failure "
                                           "(Win32 error 1069)")
    assert [a["what"] for a in c["restart_policy"]["actions"]] == [
        "restart threshold 0 passed on NODE1: group SSO failed over to NODE2 (failover 1 of 1)",
        "restart threshold 0 passed on NODE2; group SSO left Failed (1 failover(s) of 1 allowed in 6 h)"]
    assert e.dump()["hosts"]["NODE2"]["services"]["ENTSSO"]["status"] == "Stopped"


def test_the_suite_names_the_logon_failure_and_its_fix(make_lab):
    lab = make_lab("fast", sso={"hosts": {"NODE2": {"logon_failure": True}}})
    with pytest.raises(svc.ServiceStartRefused) as err:
        svc.ensure_services(lab_host(lab, "NODE2"), [("ENTSSO", "Running")], 60)
    text = str(err.value)
    assert "Win32 error 1069" in text and "sc.exe config ENTSSO password=" in text
    assert text.startswith("ENTSSO did not start on NODE2: the SCM could not log on its service account")


def _online_after_offline(e, timeout: float = 300):
    from selftest.lab.test_model import resource
    resource(e, "NODE1", "Offline")
    began = e.clock.elapsed()
    try:
        return e.invoke("NODE1", "Set-ClusterResourceState",
                        {"resource": "ENTSSO", "state": "Online", "timeout_sec": timeout}), e.clock.elapsed() - began
    except PSError as err:
        return err, e.clock.elapsed() - began


def test_a_slow_start_within_the_pending_timeout_brings_the_resource_online_late():
    e = slow(sso={"hosts": {"NODE1": {"start_sec": 150}}})
    got, took = _online_after_offline(e)
    assert not isinstance(got, PSError) and got["state"] == "Online", got
    assert 150 <= took < 170
    assert e.dump()["hosts"]["NODE1"]["sso"]["running_as"] == "SSOCLUSTER"


def test_a_start_longer_than_the_pending_timeout_fails_the_resource_at_the_pending_timeout():
    e = slow(sso={"hosts": {"NODE1": {"start_sec": 200}}})
    got, took = _online_after_offline(e)
    assert isinstance(got, PSError)
    assert "within the resource's PendingTimeout (180 s)" in str(got) and "Resource state: Failed." in str(got)
    assert 180 <= took < 190  # failed at the PendingTimeout, not when the start would have finished
    h = e.dump()["hosts"]["NODE1"]
    assert h["services"]["ENTSSO"]["status"] == "Stopped"  # the cluster terminated the service
    assert e.dump()["cluster"]["resource"]["state"] == "Failed"


def test_the_pending_timeout_is_the_scenarios_and_fails_the_restart_policys_own_starts_too():
    # a shorter PendingTimeout, and ENTSSO stopped behind the cluster's back: each restart of the policy
    # fails at it, until the threshold passes and the group fails over to NODE2 (a normal start there)
    e = slow(cluster={"pending_timeout_sec": 60, "restart_threshold": 1},
             sso={"hosts": {"NODE1": {"start_sec": 90}}})
    services(e, "NODE1", ("ENTSSO", "Stopped"))
    assert wait_until(e, lambda: e.dump()["cluster"]["group"]["owner"] == "NODE2"
                      and e.dump()["cluster"]["resource"]["state"] == "Online", 300)
    what = [a["what"] for a in e.dump()["cluster"]["restart_policy"]["actions"]]
    assert what[0].startswith("restart 1 of 1 within 900 s on NODE1")
    assert "failed over to NODE2" in what[1]
    failed = [x["what"] for x in e._log if x["host"] == "NODE1" and "resource ENTSSO Failed" in x["what"]]
    assert failed == ["cluster: resource ENTSSO Failed (ENTSSO stopped outside the cluster)",
                      "resource ENTSSO Failed: ENTSSO did not come online within the resource's PendingTimeout "
                      "(60 s): the cluster terminated it"]


def test_an_scm_start_just_takes_its_time():
    e = slow(sso={"hosts": {"NODE2": {"start_sec": 200}}})
    began = e.clock.elapsed()
    got = services(e, "NODE2", ("ENTSSO", "Running"))
    assert got["services"][0]["status"] == "Running" and e.clock.elapsed() - began >= 200


def test_the_suite_tells_a_slow_start_from_a_failed_one(make_lab):
    from entsso.domain import cluster
    # the suite's waits are real seconds, times the lab's speed in estate seconds: at speed 10, a 1 s wait
    # is 10 estate s, shorter than these 30 s starts (well within the default PendingTimeout, 180 s)
    lab = make_lab("fast", speed=10, sso={"hosts": {"NODE1": {"start_sec": 30}, "NODE2": {"start_sec": 30}}})
    node1, node2 = lab_host(lab, "NODE1"), lab_host(lab, "NODE2")
    with pytest.raises(svc.ServiceStillStarting) as slow_scm:
        svc.ensure_services(node2, [("ENTSSO", "Running")], 1)
    assert "still starting after 1 s (StartPending): a slow start, not a failed one" in str(slow_scm.value)
    cluster.ensure_resource_state(node1, "ENTSSO", "Offline", 10)
    with pytest.raises(cluster.ResourceStillStarting) as slow_res:
        cluster.ensure_resource_state(node1, "ENTSSO", "Online", 1)
    assert "still coming online after 1 s: a slow start, not a failed one" in str(slow_res.value)
    assert cluster.ensure_resource_state(node1, "ENTSSO", "Online", 10).evidence["state"] == "Online"  # it came
    assert svc.ensure_services(node2, [("ENTSSO", "Running")], 10).evidence[0]["status"] == "Running"


def test_the_suite_tells_a_start_failed_at_the_pending_timeout_as_failed(make_lab):
    from entsso.domain import cluster
    from entsso.remote.errors import ScriptError
    lab = make_lab("fast", sso={"hosts": {"NODE1": {"start_sec": 200}}})
    node1 = lab_host(lab, "NODE1")
    cluster.ensure_resource_state(node1, "ENTSSO", "Offline", 60)
    with pytest.raises(ScriptError) as failed:
        cluster.ensure_resource_state(node1, "ENTSSO", "Online", 300)
    assert not isinstance(failed.value, cluster.ResourceStillStarting)
    assert "PendingTimeout (180 s)" in str(failed.value) and "Resource state: Failed." in str(failed.value)


def test_a_slow_start_fault_makes_the_next_entsso_start_after_its_call_that_slow(make_lab):
    # the fault matrix's "slow start": at NODE2's next Set-ServiceState, the next ENTSSO start takes 170 s
    lab = make_lab("fast", speed=50)
    received = lab.dump()["winrm"]["received"].get("NODE2 Set-ServiceState", 0)
    lab.apply_fault({"kind": "slow_start", "host": "NODE2", "operation": "Set-ServiceState", "call": received + 1,
                     "seconds": 170})
    began = lab.estate.clock.elapsed()
    got = svc.ensure_services(lab_host(lab, "NODE2"), [("ENTSSO", "Running")], 30).evidence
    assert got[0]["status"] == "Running" and lab.estate.clock.elapsed() - began >= 170
    assert [f["kind"] for f in lab.dump()["faults"]["fired"]] == ["slow_start"]
    began = lab.estate.clock.elapsed()  # spent: the next start takes its usual time (service_start_sec)
    svc.ensure_services(lab_host(lab, "NODE2"), [("ENTSSO", "Stopped"), ("ENTSSO", "Running")], 30)
    assert lab.estate.clock.elapsed() - began < 120
