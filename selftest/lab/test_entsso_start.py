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
    assert e.clock.elapsed() < 5  # no retries: the SCM refuses the start itself
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
