"""entsso.tools.discover's writers, from a discovered estate: the draft inventory passes the checker and says
what discovery cannot know; the twin scenario passes the lab's schema and mirrors each state it read."""
from __future__ import annotations

import argparse

import yaml

from entsso.tools import discover
from entsso.inventory import check_inventory
from entsso.lab.server import check_scenario


def _estate() -> discover.Estate:
    H = discover.Host
    return discover.Estate(
        "PRODSSO", "SSO Group", "Enterprise SSO", "N2", "Online",
        [H("N1", "node", version="10.0.1000.0", tools_server="PRODSSO", holds_secret=True, entsso="Stopped",
           node_state="Up", package_present=True),
         H("N2", "node", version="10.0.1000.0", tools_server="PRODSSO", holds_secret=True, entsso="Running",
           node_state="Paused"),
         H("B1", "biztalk", version="10.0.1100.0", tools_server="PRODSSO", entsso="Running", rule_engine="Stopped",
           host_instances=[{"host": "Rx", "type": "InProcess", "state": "Running", "disabled": False},
                           {"host": "Iso", "type": "Isolated", "state": "Running", "disabled": False},
                           {"host": "Old", "type": "InProcess", "state": "Stopped", "disabled": True}]),
         H("B2", "biztalk", reachable=False, error="no answer")],
        "SQLP", "BTS", {"Backup BizTalk Server (BizTalkMgmtDb)": True, "DTA Purge and Archive (BizTalkDTADb)": False,
                        "syspolicy_purge_history": True, "Nightly ETL": True}, "PRODSSO")


def _args(**kw) -> argparse.Namespace:
    a = discover.parser().parse_args(["--cluster", "PRODSSO", "--sql", "SQLP", "--winrm-user", "CORP\\svc"])
    for k, v in kw.items():
        setattr(a, k, v)
    return a


def test_only_jobs_that_name_a_biztalk_database_are_the_changes():
    assert list(_estate().biztalk_jobs()) == ["Backup BizTalk Server (BizTalkMgmtDb)",
                                              "DTA Purge and Archive (BizTalkDTADb)"]


def test_the_draft_inventory_passes_the_checker_and_names_what_is_unknown(tmp_path):
    path = tmp_path / "inv.yml"
    path.write_text(discover.inventory_text(_estate(), _args(target_version="10.0.2000.0",
                                                             package_path="D:\\Media\\Setup.exe"), discover.Network()))
    inv = check_inventory(path)
    assert [n.name for n in inv.cluster.nodes] == ["N1", "N2"] and inv.cluster.primary == "N2"
    assert (inv.cluster.group, inv.cluster.resource, inv.sql.instance) == ("SSO Group", "Enterprise SSO", "BTS")
    assert inv.sql.backup_job == "Backup BizTalk Server (BizTalkMgmtDb)" and len(inv.sql.jobs) == 2
    text = path.read_text()
    assert "NOT ANSWERING during discovery: B2" in text and "secret_backup.folder" in text
    assert "password" not in yaml.safe_load(text)["winrm"]  # only the variable's name
    assert "lab" not in yaml.safe_load(text)


def test_without_a_target_version_the_inventory_is_refused_until_one_is_set(tmp_path):
    path = tmp_path / "inv.yml"
    path.write_text(discover.inventory_text(_estate(), _args(), discover.Network()))
    assert "CHANGE-ME is refused" in path.read_text()
    try:
        check_inventory(path)
    except ValueError as exc:
        assert "upgrade.target_version" in str(exc)
    else:
        raise AssertionError("an inventory with no target version was accepted")


def test_the_twin_passes_the_lab_schema_and_mirrors_each_state():
    twin = yaml.safe_load(discover.twin_text(_estate(), _args(target_version="10.0.2000.0",
                                                              package_path="D:\\Media\\Setup.exe")))
    check_scenario(twin, "twin")
    c = twin["cluster"]
    assert (c["name"], c["group"], c["resource"], c["owner"]) == ("PRODSSO", "SSO Group", "Enterprise SSO", "N2")
    assert [(n["name"], n["state"]) for n in c["nodes"]] == [("N1", "Up"), ("N2", "Paused")]
    assert twin["sso"]["version"] == "10.0.1000.0" and twin["sso"]["secret_on"] == ["N1", "N2"]
    b1 = twin["biztalk"]["servers"][0]
    assert b1["sso_version"] == "10.0.1100.0" and b1["rule_engine"] == "Stopped"
    assert b1["host_instances"][2] == {"host": "Old", "type": "InProcess", "state": "Stopped", "disabled": True}
    assert twin["sql"]["jobs"]["syspolicy_purge_history"] is True  # every job, as msdb has them
    assert twin["upgrade"]["package"] == {"path": "D:\\Media\\Setup.exe", "present_on": ["N1"]}


def test_a_lab_network_file_gives_addresses_and_the_cluster_name_its_owner(tmp_path):
    f = tmp_path / "lab-inventory.yml"
    f.write_text(yaml.safe_dump({"cluster": {"network_name": "C", "primary": "N1", "nodes": [
        {"name": "N1", "address": "127.0.0.2"}, {"name": "N2", "address": "127.0.0.3"}]},
        "biztalk_servers": [{"name": "B1", "address": "127.0.0.4"}], "lab": {"sql_port": 1}}))
    net = discover.Network(str(f))
    assert (net.address("c"), net.address("N2"), net.address("B1"), net.address("X")) == (
        "127.0.0.2", "127.0.0.3", "127.0.0.4", None)
    assert net.lab == {"sql_port": 1}
