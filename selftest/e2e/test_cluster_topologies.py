"""Every topology Microsoft documents for a clustered master secret server (issue 26), against its lab
scenario: the gate names it (report and summary.json), the change completes or is refused by name, and the
lab's own log shows what moved: no SQL Server role (but with --allow-sql-failover), no SCM stop of a
clustered host instance, every host instance as before."""
from __future__ import annotations

from selftest.e2e.suite import run_suite


def _gate(tmp_path, scenario: str, *extra: str):  # type: ignore[no-untyped-def]
    return run_suite(tmp_path, "tests_pre", "-m", "readiness", f"--lab={scenario}", *extra)


def test_a_group_holding_an_unknown_resource_type_is_refused_by_name_and_nothing_changes(tmp_path):
    run = run_suite(tmp_path, "--lab=cluster-unknown-resource", "--apply", "--change-ticket", "CHG-UNKNOWN")
    assert run.returncode != 0
    assert run.outcomes["test_cluster_is_a_topology_microsoft_documents"] == "failed"
    msg = run.message("test_cluster_is_a_topology_microsoft_documents")
    assert "resource 'Contoso Backup Agent' of type 'Contoso Backup Agent'" in msg, msg
    assert run.summary["topology"]["name"] is None
    assert run.summary["topology"]["unknown_resources"] == [{"name": "Contoso Backup Agent",
                                                             "type": "Contoso Backup Agent"}]
    assert run.lab_state["changes"] == 0
    assert [r for r in run.journal() if r["kind"] == "gate_refused"]


def test_the_gate_names_a_dedicated_mss_cluster(tmp_path):
    run = _gate(tmp_path, "fast")
    assert run.returncode == 0, run.output[-3000:]
    assert run.outcomes["test_cluster_is_a_topology_microsoft_documents"] == "passed"
    assert run.summary["topology"]["name"] == "dedicated MSS cluster"
    assert run.lab_state["changes"] == 0
