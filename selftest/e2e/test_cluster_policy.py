"""The cluster's restart policy (issue 16): under the strictest policy (restart_threshold 0,
failover_threshold 0), a single stop of the clustered ENTSSO through the SCM would leave the group Failed.
The whole change completes there with no policy action: the run takes the resource offline through the
cluster and never stops the cluster's own ENTSSO behind its back."""
from __future__ import annotations

from entsso.lab.server import load_scenario
from selftest.e2e.suite import run_suite


def test_the_change_never_trips_the_strictest_restart_policy(tmp_path):
    policy = load_scenario("no-restart-policy")["cluster"]
    assert (policy["restart_threshold"], policy["failover_threshold"]) == (0, 0)
    run = run_suite(tmp_path, "--lab", "no-restart-policy", "--apply", "--change-ticket", "CHG-POLICY")
    assert run.returncode == 0, run.output[-4000:]
    cluster = run.lab_state["estate"]["cluster"]
    assert cluster["restart_policy"]["actions"] == [], cluster["restart_policy"]
    assert (cluster["group"]["owner"], cluster["resource"]["state"]) == ("NODE1", "Online")
