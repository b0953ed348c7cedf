"""Which SSO tool calls are second hops, and how the gate judges a host whose tools ask another machine
(entsso.estate.checks): by where its tools point, never by the answer a second hop cannot get."""
from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from entsso.estate import checks as gate
from entsso.domain import sso
from entsso.estate.snapshot import HostFacts

HOP_ERROR = ("ERROR: 0xC0002A0F : Could not contact the SSO server 'SSOCLUSTER'. Check that SSO is configured and "
             "that the SSO service is running on that server. (RPC: 0x80070005: Access is denied.)")
PLAN = SimpleNamespace(cluster_name="SSOCLUSTER")


def snapshot(owner: str, **hosts: sso.SsoServer) -> Any:
    facts = {n: HostFacts(n, "node" if n.startswith("NODE") else "biztalk", True, sso=v) for n, v in hosts.items()}
    view = SimpleNamespace(group=SimpleNamespace(owner_node=owner))
    return SimpleNamespace(hosts=facts, cluster_view=lambda: view)


def seen(host: str, tools: str | None, secret: str | None, error: str | None = None) -> sso.SsoServer:
    return sso.SsoServer(host, True, "10.0.1000.0", tools, secret, error, True)


@pytest.mark.parametrize("host, tools, owner, remote", [
    ("NODE1", "SSOCLUSTER", "NODE1", False),  # the owner asks the clustered ENTSSO on itself
    ("NODE2", "SSOCLUSTER", "NODE1", True),
    ("BTS1", "SSOCLUSTER", "NODE1", True),
    ("NODE2", "NODE2", "NODE1", False),
    ("NODE2", "NODE1", "NODE1", True),
    ("NODE2", None, "NODE1", False),  # unknown: judged by its answer, as before
])
def test_a_call_is_a_second_hop_when_the_tools_ask_another_machine(host, tools, owner, remote):
    s = snapshot(owner, **{host: seen(host, tools, None)})
    assert gate.asks_another_machine(s, host, tools, PLAN) is remote  # type: ignore[arg-type]


def test_a_biztalk_server_whose_tools_use_the_cluster_passes_without_asking_it():
    s = snapshot("NODE1", BTS1=seen("BTS1", "SSOCLUSTER", None, HOP_ERROR))
    assert gate.sso_server_uses_cluster(s, "BTS1", PLAN) is None  # type: ignore[arg-type]


def test_a_host_whose_tools_ask_another_server_is_refused_naming_the_setting_and_the_hop():
    s = snapshot("NODE1", BTS1=seen("BTS1", "NODE2", None, HOP_ERROR))
    finding = gate.sso_server_uses_cluster(s, "BTS1", PLAN)  # type: ignore[arg-type]
    assert finding is not None and "its SSO tools use 'NODE2'" in finding.found and HOP_ERROR in finding.found
    assert "ssomanage -serverall SSOCLUSTER on BTS1" in finding.expected and "second hop" in finding.expected


def test_the_owner_is_still_judged_by_its_own_answer():
    s = snapshot("NODE1", NODE1=seen("NODE1", "SSOCLUSTER", None, "ERROR: 0xC0002A1F : secret is not available"))
    finding = gate.sso_server_uses_cluster(s, "NODE1", PLAN)  # type: ignore[arg-type]
    assert finding is not None and "0xC0002A1F" in finding.found


def test_an_answer_through_delegation_is_still_judged():
    # with credssp the remote server answers: a wrong secret server is a finding as before
    s = snapshot("NODE1", BTS1=seen("BTS1", "SSOCLUSTER", "NODE1"))
    finding = gate.sso_server_uses_cluster(s, "BTS1", PLAN)  # type: ignore[arg-type]
    assert finding is not None and "secret server 'NODE1'" in finding.found


@pytest.mark.parametrize("owner, primary, refused", [("NODE1", "NODE1", False), ("node1", "NODE1", False),
                                                      ("NODE2", "NODE1", True), (None, "NODE1", False)])
def test_the_primary_must_own_the_group_before_the_change(owner, primary, refused):
    s = snapshot(owner)
    plan = SimpleNamespace(cluster_name="SSOCLUSTER", group="SSO", primary_node=lambda: primary)
    finding = gate.primary_owns_group(s, plan)  # type: ignore[arg-type]
    assert (finding is not None) is refused
    if refused:
        assert finding is not None and "second hop" in finding.found and "Move-ClusterGroup SSO -Node NODE1" in finding.expected


def test_the_labs_second_hop_text_is_the_published_error_form_and_keeps_the_server_line():
    from entsso.lab import texts

    out = texts.tool_error("SSOCLUSTER", "BTS1", texts.SECOND_HOP)
    db = sso.parse_displaydb(out)
    assert out.startswith("Using SSO server : SSOCLUSTER\r\nERROR: 0xC0002A0F : Could not contact the SSO server")
    assert (sso.tools_server_of(db, "BTS1"), db.secret_server, db.error_line()) == ("SSOCLUSTER", None, HOP_ERROR)
