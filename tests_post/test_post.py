"""The post-state: the MSS is the cluster name everywhere, every node runs the target version, SSO worked
through every owner, the group is home, BizTalk is as it was."""
import pytest

from entsso.estate import checks as gate
from entsso.domain.names import same_name

pytestmark = pytest.mark.post


def test_ssodb_names_the_cluster_as_secret_server(resumed, run, judge):
    judge(gate.ssodb_names_cluster(resumed, run), {"gi_SecretServer": resumed.sql.secret_server})


def test_node_sso_sees_the_cluster_as_secret_server(resumed, node, run, judge):
    judge(gate.sso_server_uses_cluster(resumed, node, run), resumed.hosts[node].sso)


def test_node_runs_the_target_sso_version(resumed, node, run, judge):
    judge(gate.version_is(resumed, node, run.target_version(node)), resumed.hosts[node].sso)


def test_node_holds_the_master_secret(resumed, node, judge):
    judge(gate.node_holds_secret(resumed, node), resumed.hosts[node].sso)


def test_group_came_online_on_node(failed_over, node, run, judge):
    seen = failed_over["per_node"].get(node)
    finding = None
    if seen is None:
        finding = gate.Finding("failover", node, "the group was not moved to it in this run", "owned in turn")
    elif seen["group"].get("state") != "Online" or not same_name(seen["group"].get("owner_node"), node):
        finding = gate.Finding("failover", node, f"group {seen['group']}", "Online on this node")
    judge(finding, seen)


def test_adapter_properties_readable_through_node(failed_over, node, judge):
    seen = failed_over["per_node"].get(node)
    handlers = seen["handlers"] if seen else []
    bad = [h for h in handlers if not h["readable"]]
    finding = None
    if not handlers:
        finding = gate.Finding("adapters", node, "no adapter handler read through it", "every handler readable")
    elif bad:
        finding = gate.Finding("adapters", node, f"{len(bad)} unreadable, e.g. {bad[0]['adapter']}: "
                               f"{bad[0]['error_code']} {bad[0]['error']}", "every handler readable")
    judge(finding, handlers)


def test_group_back_on_its_original_owner(resumed, baseline, run, judge):
    view = resumed.cluster_view()
    owner = view.group.owner_node if view and view.group else None
    finding = None if same_name(owner, baseline.group_owner) and view.group.state == "Online" \
        else gate.Finding("failover", f"cluster group {run.group}", f"{view.group.state if view else '?'} on {owner}",
                          f"Online on {baseline.group_owner} (its owner before the change)")
    judge(finding, view)


def test_biztalk_back_to_the_baseline(resumed, baseline, run, judge):
    if run.options.keep_silenced:
        pytest.skip("--keep-silenced: BizTalk left silenced on purpose")
    findings = gate.matches_baseline(resumed, baseline)
    judge(findings[0] if findings else None, {"baseline": baseline, "differences": [str(f) for f in findings]})
