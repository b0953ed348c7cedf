"""The lab's `group_failover` fault through the real client: the SSO group fails over on its own, as a resource
failing past its restart threshold makes the cluster do: every resource moves to the other Up node, the node it
left stays Up, and Get-ClusterSsoRoles says so; now, after `after_sec`, or as a given call arrives."""
from __future__ import annotations

import time

from selftest.lab.conftest import lab_host


def _cluster(lab, via: str = "NODE2") -> dict:
    doc = lab_host(lab, via).invoke("Get-ClusterSsoRoles", {})
    return {"nodes": {n["name"]: n["state"] for n in doc["nodes"]},
            "owner": doc["resources"][0]["owner_node"], "resource": doc["resources"][0]["state"]}


def _until(check, seconds: float = 5.0):
    end = time.monotonic() + seconds
    while not (got := check()) and time.monotonic() < end:
        time.sleep(0.05)
    return got


def test_the_group_fails_over_on_its_own_and_its_node_stays_up(make_lab):
    lab = make_lab("fast")
    assert _cluster(lab)["owner"] == "NODE1"
    lab.apply_fault({"kind": "group_failover"})
    assert lab.dump()["faults"]["group_failovers"][0]["from"] == "NODE1"
    assert lab.dump()["faults"]["group_failovers"][0]["to"] == "NODE2"
    moved = _until(lambda: c if (c := _cluster(lab))["resource"] == "Online" else None)
    assert moved == {"nodes": {"NODE1": "Up", "NODE2": "Up"}, "owner": "NODE2", "resource": "Online"}
    hosts = lab.dump()["estate"]["hosts"]
    assert (hosts["NODE2"]["services"]["ENTSSO"]["status"], hosts["NODE1"]["services"]["ENTSSO"]["status"]) == \
        ("Running", "Stopped")


def test_the_group_fails_over_after_sec_or_as_a_call_arrives(make_lab):
    lab = make_lab("fast", faults=[{"kind": "group_failover", "host": "NODE1", "operation": "Get-HostFacts"}])
    assert _cluster(lab)["owner"] == "NODE1"  # Get-ClusterSsoRoles does not match the fault
    lab_host(lab, "NODE1").invoke("Get-HostFacts", {})
    assert _until(lambda: _cluster(lab)["owner"] == "NODE2")
    lab_host(lab, "NODE1").invoke("Get-HostFacts", {})  # the first matching call only
    assert len(lab.dump()["faults"]["group_failovers"]) == 1
    lab.apply_fault({"kind": "group_failover", "after_sec": 200})  # one real second
    assert _cluster(lab)["owner"] == "NODE2"
    assert _until(lambda: _cluster(lab)["owner"] == "NODE1")
    assert [(f["from"], f["to"]) for f in lab.dump()["faults"]["group_failovers"]] == [("NODE1", "NODE2"),
                                                                                     ("NODE2", "NODE1")]
