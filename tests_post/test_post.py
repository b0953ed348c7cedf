"""The post-state: the MSS is the cluster name everywhere, every node runs the target version, SSO worked
through every owner, the group is home, BizTalk is as it was."""
import pytest

from entsso.estate import checks as gate

pytestmark = pytest.mark.post


def test_ssodb_names_the_cluster_as_secret_server(resumed, run, judge):
    judge(gate.ssodb_names_cluster(resumed, run), {"gi_SecretServer": resumed.sql.secret_server})


def test_node_sso_sees_the_cluster_as_secret_server(resumed, node, run, judge):
    judge(gate.sso_server_uses_cluster(resumed, node, run), resumed.hosts[node].sso)


def test_node_runs_the_target_sso_version(resumed, node, run, judge):
    judge(gate.version_is(resumed, node, run.target_version(node)), resumed.hosts[node].sso)


def test_node_holds_the_master_secret(resumed, node, judge):
    judge(gate.node_holds_secret(resumed, node), resumed.hosts[node].sso)


def test_group_came_online_on_node(failed_over, node, judge):
    judge(gate.group_came_online_on(failed_over["per_node"], node, bool(failed_over.get("silenced_in_group"))),
          failed_over["per_node"].get(node))


def test_adapter_properties_readable_through_node(failed_over, node, judge):
    judge(gate.adapters_readable_through(failed_over["per_node"], node),
          (failed_over["per_node"].get(node) or {}).get("handlers"))


def test_group_back_on_its_original_owner(resumed, baseline, run, judge):
    judge(gate.group_back_home(resumed, baseline, run), resumed.cluster_view())


def test_biztalk_back_to_the_baseline(resumed, baseline, run, judge):
    if run.options.keep_silenced:
        pytest.skip("--keep-silenced: BizTalk left silenced on purpose")
    findings = gate.matches_baseline(resumed, baseline)
    judge(findings[0] if findings else None, {"baseline": baseline, "differences": [str(f) for f in findings]})
