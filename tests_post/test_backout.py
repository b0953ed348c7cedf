"""The estate after `--backout`: in service as before the change (only these tests run with --backout)."""
import pytest

from entsso.estate import checks as gate

pytestmark = pytest.mark.backout


def test_ssodb_names_the_cluster_again(backed_out, run, judge):
    judge(gate.ssodb_names_cluster(backed_out, run), {"gi_SecretServer": backed_out.sql.secret_server})


def test_entsso_resource_online_again(backed_out, run, judge):
    judge(gate.resource_online(backed_out, run), backed_out.cluster_view())


def test_node_sso_uses_the_cluster_name_again(backed_out, node, run, judge):
    judge(gate.sso_server_uses_cluster(backed_out, node, run), backed_out.hosts[node].sso)


def test_node_holds_the_master_secret_after_backout(backed_out, node, judge):
    judge(gate.node_holds_secret(backed_out, node), backed_out.hosts[node].sso)


def test_biztalk_as_before_the_change_after_backout(backed_out, baseline, judge):
    findings = gate.matches_baseline(backed_out, baseline)
    judge(findings[0] if findings else None, {"baseline": baseline, "differences": [str(f) for f in findings]})
