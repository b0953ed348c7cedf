"""The lab's estate model (entsso.lab.model.Estate) driven directly, without WinRM: the default
scenario's facts, the runbook's happy path in phases.py's order, and the places where the real
estate refuses (ENTSSO without its MSS, an MSS without the secret, a restore before the resource was
cycled, ssomanage with no SSO server), reboots, and the read-only and idempotence guarantees."""
from __future__ import annotations

import base64
import threading
from typing import Any

import pytest

from entsso.domain import biztalk, cluster, sso
from entsso.lab.clock import Clock
from entsso.lab.model import Estate, PSError, adapter_configs
from entsso.lab.server import _merge, load_scenario

SPEED = 2000.0
PASSWORD = "Secret-Pw-1"
BACKUP = "C:\\SSOBackup\\ENTSSO-CHG1.bak"
CLUSTER = {"network_name": "SSOCLUSTER", "group": "SSO", "resource": "ENTSSO"}


class FakeSql:
    """SSODB's gi_SecretServer and SQL Server's availability: all the model uses of the SQL engine."""

    server = "SQL1"

    def __init__(self, secret_server: str) -> None:
        self._secret_server = secret_server
        self.available = True
        self._lock = threading.Lock()

    def estate_name(self, database: str) -> str:  # the default names (no sql.database_names)
        return database

    def get_secret_server(self) -> str:
        with self._lock:
            if not self.available:
                raise ConnectionError("SQL Server unavailable")
            return self._secret_server

    def set_secret_server(self, name: str) -> None:
        with self._lock:
            self._secret_server = name


# the default scenario's media path (manual mode); the package scenarios use an .msp at another path
PACKAGE = load_scenario("default")["upgrade"]["package"]["path"]


def make(scenario: str = "default", **overrides: Any) -> Estate:
    doc = load_scenario(scenario)
    if overrides:
        doc = _merge(doc, overrides)
    return Estate(doc, Clock(SPEED), FakeSql(doc["sso"]["secret_server"]))


def facts(e: Estate, host: str, **extra: Any) -> dict[str, Any]:
    is_node = host.startswith("NODE")
    params = {"cluster": CLUSTER if is_node else None,
              "services": ["ENTSSO"] + ([] if is_node else ["RuleEngineUpdateService"]),
              "biztalk": not is_node, "package": None, "backup_folder": None, "secret_backup_file": None}
    params.update(extra)
    return e.invoke(host, "Get-HostFacts", params)


def sso_seen(e: Estate, host: str) -> sso.SsoServer:
    """What the suite reads from the lab's Get-HostFacts: the raw -displaydb text through entsso.domain.sso."""
    return sso.parse_sso(host, facts(e, host))


def services(e: Estate, host: str, *wanted: tuple[str, str]) -> dict[str, Any]:
    return e.invoke(host, "Set-ServiceState",
                    {"services": [{"name": n, "status": s} for n, s in wanted], "timeout_sec": 300})


def resource(e: Estate, host: str, state: str) -> dict[str, Any]:
    return e.invoke(host, "Set-ClusterResourceState", {"resource": "ENTSSO", "state": state, "timeout_sec": 300})


def move(e: Estate, host: str, node: str, states_after_move: dict[str, Any] | None = None,
         timeout: float = 300) -> dict[str, Any]:
    table = states_after_move or {k: list(v) for k, v in cluster.STATES_AFTER_MOVE.items()}
    return e.invoke(host, "Move-ClusterGroup", {"group": "SSO", "node": node, "timeout_sec": timeout,
                                                "states_after_move": table})


class _LabHost:
    """A WindowsHost's invoke() on the model itself, so the suite's own decision code reads the lab's text."""

    def __init__(self, e: Estate, name: str) -> None:
        self.e, self.name = e, name

    def invoke(self, operation: str, params: dict[str, Any], timeout: float = 0) -> dict[str, Any]:
        return self.e.invoke(self.name, operation, params)


def tools(e: Estate, host: str, server: str) -> dict[str, Any]:
    """Set-SsoServer through sso.ensure_tools_server (which reads ssomanage's server line before and after)."""
    done = sso.ensure_tools_server(_LabHost(e, host), server)  # type: ignore[arg-type]
    return {**done.evidence, "changed": done.changed}


def updatedb(e: Estate, host: str, name: str) -> dict[str, Any]:
    return e.invoke(host, "Update-SsoDatabase", {"secret_server": name})


def handlers(e: Estate, host: str, flags: int = biztalk.SSO_FLAG_RUNTIME) -> list[dict[str, Any]]:
    """Get-AdapterHandlers as phase 6 calls it (the configs BizTalkMgmtDb lists), through its Python parser."""
    configs = tuple(biztalk.HandlerConfig(c["kind"], c["adapter"], c["host"], c["config_id"])
                    for c in adapter_configs(e.bt_cfg))
    doc = e.invoke(host, "Get-AdapterHandlers", {
        "flags": flags, "configs": [{"application": c.adapter, "identifier": c.config_id} for c in configs]})
    return [h.__dict__ for h in biztalk.parse_adapter_reads(host, configs, doc)]


def wait_until(e: Estate, done: Any, estate_sec: float) -> bool:
    end = e.clock.elapsed() + estate_sec
    while e.clock.elapsed() < end:
        if done():
            return True
        e.clock.sleep(1)
    return done()


def uncluster(e: Estate) -> None:
    """phases.uncluster on the default estate (primary NODE1)."""
    tools(e, "NODE1", "SSOCLUSTER")
    updatedb(e, "NODE1", "NODE1")
    resource(e, "NODE1", "Offline")
    services(e, "NODE1", ("ENTSSO", "Running"))
    tools(e, "NODE1", "NODE1")
    tools(e, "NODE2", "NODE1")
    services(e, "NODE2", ("ENTSSO", "Running"))


# --- the default scenario's facts ---------------------------------------------------------------------
def test_default_node1_owns_the_online_group_and_resource():
    c = facts(make(), "NODE1")["cluster"]
    assert c["group"] == {"name": "SSO", "state": "Online", "owner_node": "NODE1",
                          "preferred_owners": [], "auto_failback_type": 0}
    assert c["resource"]["state"] == "Online" and c["resource"]["owner_node"] == "NODE1"
    assert c["resource"]["use_network_name"] is True and c["resource"]["possible_owners"] == ["NODE1", "NODE2"]


def test_default_every_hosts_tools_use_the_cluster_and_only_the_owner_answers_without_a_second_hop():
    e = make()
    for host in e.hosts:
        assert sso_seen(e, host).tools_server == "SSOCLUSTER", host
    owner = sso_seen(e, "NODE1")  # the cluster name is NODE1 itself: one hop
    assert owner.secret_server == "SSOCLUSTER" and owner.displaydb_error is None
    for host in ("NODE2", "BTS1", "BTS2"):  # their tools ask another machine's SSO server as the NTLM logon
        seen = sso_seen(e, host)
        assert seen.secret_server is None
        assert seen.displaydb_error == ("ERROR: 0xC0002A0F : Could not contact the SSO server 'SSOCLUSTER'. Check "
                                        "that SSO is configured and that the SSO service is running on that server. "
                                        "(RPC: 0x80070005: Access is denied.)"), host


def test_updatedb_through_another_machines_sso_server_is_a_second_hop_and_changes_nothing():
    e = make()
    answer = sso.parse_tool_answer(**updatedb(e, "NODE2", "NODE2"))  # NODE2's tools: SSOCLUSTER, owned by NODE1
    assert answer.error_code == "0xC0002A0F" and answer.error.endswith("(RPC: 0x80070005: Access is denied.)")
    assert e.sql.get_secret_server() == "SSOCLUSTER" and e.changes == 0


def test_default_entsso_runs_on_the_owner_only_among_nodes():
    e = make()
    assert facts(e, "NODE1")["services"]["ENTSSO"] == {"exists": True, "status": "Running", "start_type": "Manual",
                                                       "logon_account": "LAB\\svc-sso"}
    assert facts(e, "NODE2")["services"]["ENTSSO"]["status"] == "Stopped"


def test_entsso_logon_account_and_start_type_per_host():
    """sso.service_account for every host, sso.hosts.<HOST>.service_account / start_type for one: what
    Win32_Service.StartName and the SCM's start type report."""
    e = make(sso={"service_account": "CONTOSO\\svc-sso",
                  "hosts": {"node2": {"service_account": ".\\ssoadmin", "start_type": "Automatic"}}})
    one, two = facts(e, "NODE1")["services"]["ENTSSO"], facts(e, "NODE2")["services"]["ENTSSO"]
    assert (one["logon_account"], one["start_type"]) == ("CONTOSO\\svc-sso", "Manual")
    assert (two["logon_account"], two["start_type"]) == (".\\ssoadmin", "Automatic")
    assert facts(e, "BTS1")["services"]["ENTSSO"]["logon_account"] == "CONTOSO\\svc-sso"


def test_default_host_instances_and_their_services():
    doc = facts(make(), "BTS1")
    states = {h.host_name: h.state for h in biztalk.parse_host_instances("BTS1", doc)}
    assert states["OrchestrationHost"] == "Stopped" and states["ReceiveHost"] == "Running"
    assert doc["services"]["BTSSvc$ReceiveHost"]["status"] == "Running"
    assert "BTSSvc$BizTalkServerIsolatedHost" not in doc["services"] and "BizTalkServerIsolatedHost" not in states
    assert "host_instances" not in doc  # no BizTalk WMI: the services are the host instances


def test_default_adapter_handlers_are_readable_on_the_owner():
    hs = handlers(make(), "NODE1")
    assert len(hs) == 4 and all(h["readable"] and h["property_count"] == 3 for h in hs)


def test_unknown_service_is_object_not_found():
    with pytest.raises(PSError, match="Service 'Nope' was not found on BTS1") as exc:
        services(make(), "BTS1", ("Nope", "Stopped"))
    assert exc.value.category == "ObjectNotFound"


# --- every scenario loads ---------------------------------------------------------------------------
@pytest.mark.parametrize("scenario", ["default", "prepared", "node-down", "group-offline", "ssodb-names-node",
                                      "package-missing", "version-not-newer", "fast"])
def test_every_bundled_scenario_gives_facts_for_every_reachable_host(scenario):
    e = make(scenario)
    for host in e.hosts:
        if e.is_reachable(host):
            assert facts(e, host)["computer_name"] == host
    assert e.changes == 0


def test_node_down_scenario_makes_node2_unreachable_and_down():
    e = make("node-down")
    assert not e.is_reachable("NODE2")
    assert {"name": "NODE2", "state": "Down"} in facts(e, "NODE1")["cluster"]["nodes"]


def test_group_offline_scenario_reports_offline_and_no_displaydb():
    e = make("group-offline")
    c = facts(e, "NODE1")["cluster"]
    assert c["group"]["state"] == "Offline" and c["resource"]["state"] == "Offline"
    assert sso_seen(e, "BTS1").displaydb_error == (
        "ERROR: 0xC0002A0F : Could not contact the SSO server 'SSOCLUSTER'. Check that SSO is configured and that "
        "the SSO service is running on that server. (RPC: 0x800706BA: The RPC server is unavailable.)")


def test_package_missing_on_node2_only():
    e = make("package-missing")
    pkg = {"path": PACKAGE}
    assert facts(e, "NODE1", package=pkg)["package"]["exists"] is True
    assert facts(e, "NODE2", package=pkg)["package"] == {"path": pkg["path"], "exists": False, "file_version": None}


def test_prepared_scenario_has_the_changes_backup_on_the_primary(monkeypatch):
    monkeypatch.setenv("ENTSSO_SECRET_PASSWORD", PASSWORD)
    e = make("prepared")
    path = "C:\\SSOBackup\\ENTSSO-CHG-PREPARED.bak"
    b = facts(e, "NODE1", secret_backup_file=path)["secret_backup"]
    assert b["exists"] and b["size"] > 0
    assert facts(e, "BTS1")["services"]["ENTSSO"]["status"] == "Stopped"


# --- read-only and idempotence ------------------------------------------------------------------------
def test_read_only_operations_change_nothing():
    e = make()
    for host in e.hosts:
        facts(e, host, package={"path": PACKAGE}, backup_folder="C:\\SSOBackup",
              secret_backup_file=BACKUP)
        handlers(e, host)
        with pytest.raises(PSError):
            e.invoke(host, "Read-File", {"path": BACKUP})
    assert e.changes == 0


def test_second_identical_operation_is_unchanged_and_not_counted():
    e = make()
    services(e, "BTS2", ("BTSSvc$BizTalkServerApplication", "Stopped"), ("BTSSvc$ReceiveHost", "Stopped"), ("BTSSvc$SendHost", "Stopped"))  # its dependents first, as phase 1
    first = services(e, "BTS2", ("RuleEngineUpdateService", "Stopped"), ("ENTSSO", "Stopped"))
    assert [s["changed"] for s in first["services"]] == [False, True]
    n = e.changes
    again = services(e, "BTS2", ("ENTSSO", "Stopped"))
    assert again["services"][0]["changed"] is False and e.changes == n
    assert tools(e, "NODE1", "SSOCLUSTER")["changed"] is False
    assert not sso.parse_tool_answer(**updatedb(e, "NODE1", "SSOCLUSTER")).failed
    assert move(e, "NODE1", "NODE1")["changed"] is False
    assert resource(e, "NODE1", "Online")["changed"] is False
    assert e.changes == n


# --- SSO rules ----------------------------------------------------------------------------------------
def test_entsso_start_fails_when_its_mss_is_unreachable():
    e = make()
    resource(e, "NODE1", "Offline")  # SSODB still names SSOCLUSTER, now offline
    t0 = e.clock.elapsed()
    with pytest.raises(PSError, match=r"Cannot start service ENTSSO on computer '\.'.*SSOCLUSTER"):
        services(e, "NODE2", ("ENTSSO", "Running"))
    assert e.clock.elapsed() - t0 >= 55  # ENTSSO retried about a minute
    assert e.services_of("NODE2")["ENTSSO"] == "Stopped"


def test_running_sso_servers_keep_their_cached_secret_when_the_mss_goes():
    e = make()
    resource(e, "NODE1", "Offline")
    # BTS1's SSO server still decrypts (its tools point at the cluster name, so point them at itself)
    tools(e, "BTS1", "BTS1")
    assert all(h["readable"] for h in handlers(e, "BTS1"))


def test_mss_without_the_secret_cannot_serve_it():
    e = make(sso={"secret_on": []})
    hs = handlers(e, "NODE1")
    assert {h["error_code"] for h in hs} == {"0xC0002A1F"}
    assert "secret is not available" in hs[0]["error"]


def test_adapter_handlers_unreadable_when_no_sso_server_answers():
    e = make()
    resource(e, "NODE1", "Offline")
    hs = handlers(e, "NODE1")  # the read is NODE1's own SSO service, stopped with the resource
    assert hs[0]["error_code"] == "0xC0002A0F" and "'NODE1'" in hs[0]["error"]
    assert not any(h["readable"] for h in hs)


def test_updatedb_fails_with_no_running_sso_server():
    e = make()
    resource(e, "NODE1", "Offline")
    answer = sso.parse_tool_answer(**updatedb(e, "NODE1", "NODE1"))
    assert answer.sso_server == "SSOCLUSTER" and answer.error_code == "0xC0002A0F"
    assert answer.error.endswith("(RPC: 0x800706BA: The RPC server is unavailable.)")
    assert e.sql.get_secret_server() == "SSOCLUSTER"


def test_backup_only_on_the_mss_holding_the_secret():
    e = make()
    with pytest.raises(PSError):
        e.invoke("BTS1", "Backup-MasterSecret", {"file": BACKUP, "password": PASSWORD, "reminder": "r"})
    doc = e.invoke("NODE1", "Backup-MasterSecret", {"file": BACKUP, "password": PASSWORD, "reminder": "r"})
    assert doc["size"] > 0
    data = base64.b64decode(e.invoke("NODE1", "Read-File", {"path": BACKUP})["content_b64"])
    assert PASSWORD.encode() not in data


def test_backup_never_overwrites_an_existing_file_and_says_so_as_the_script_does():
    e = make()
    e.invoke("NODE1", "Backup-MasterSecret", {"file": BACKUP, "password": PASSWORD, "reminder": "r"})
    first = e.invoke("NODE1", "Read-File", {"path": BACKUP})
    changes = e.changes
    with pytest.raises(PSError) as exc:
        e.invoke("NODE1", "Backup-MasterSecret", {"file": BACKUP.lower(), "password": PASSWORD, "reminder": "r"})
    # Backup-MasterSecret.ps1's own text (Test-Path is case-insensitive on NTFS)
    assert str(exc.value) == (f"Secret backup file '{BACKUP.lower()}' already exists on NODE1; it is never "
                              "overwritten. Move it away or choose another file name, then re-run.")
    assert e.invoke("NODE1", "Read-File", {"path": BACKUP}) == first
    assert e.changes == changes


def test_scm_stop_of_the_clustered_entsso_is_noticed_and_restarted():
    e = make()
    services(e, "NODE1", ("ENTSSO", "Stopped"))

    def failed() -> list[str]:
        return [ev["what"] for ev in e.dump()["events"] if "Failed" in ev["what"]]

    assert wait_until(e, lambda: bool(failed()), 30)
    assert "stopped outside the cluster" in failed()[0]
    assert wait_until(e, lambda: facts(e, "NODE1")["cluster"]["resource"]["state"] == "Online", 120)
    assert e.services_of("NODE1")["ENTSSO"] == "Running"


def test_resource_online_around_an_scm_started_entsso_keeps_the_node_name():
    e = make()
    uncluster(e)
    updatedb(e, "NODE1", "SSOCLUSTER")
    resource(e, "NODE1", "Online")  # without stopping the SCM-started ENTSSO first
    assert e.dump()["cluster"]["clustered_entsso"]["running_as"] == "NODE1"
    tools(e, "NODE1", "SSOCLUSTER")
    assert sso_seen(e, "NODE1").displaydb_error is not None
    # the tools cannot reach SSOCLUSTER, but a run-time read asks NODE1's own service, which decrypts
    assert all(h["readable"] for h in handlers(e, "NODE1"))


def test_move_to_a_down_node_is_refused():
    e = make("node-down")
    with pytest.raises(PSError, match="An error occurred while moving the clustered role 'SSO'"):
        move(e, "NODE1", "NODE2")


# --- restore and the offline/online cycle ---------------------------------------------------------------
def _to_recluster_point(e: Estate) -> None:
    e.invoke("NODE1", "Backup-MasterSecret", {"file": BACKUP, "password": PASSWORD, "reminder": "r"})
    uncluster(e)
    updatedb(e, "NODE1", "SSOCLUSTER")
    services(e, "NODE1", ("ENTSSO", "Stopped"))
    services(e, "NODE2", ("ENTSSO", "Stopped"))


def test_restore_needs_the_resource_cycled_on_the_node_since_the_secret_server_changed():
    e = make()
    e.invoke("NODE1", "Backup-MasterSecret", {"file": BACKUP, "password": PASSWORD, "reminder": "r"})
    resource(e, "NODE1", "Offline")
    resource(e, "NODE1", "Online")  # cycled before the change: does not count
    tools(e, "NODE1", "SSOCLUSTER")
    updatedb(e, "NODE1", "NODE2")
    updatedb(e, "NODE1", "SSOCLUSTER")  # the secret server changed (and back)
    with pytest.raises(PSError, match="offline and brought online"):
        e.invoke("NODE1", "Restore-MasterSecret", {"file": BACKUP, "password": PASSWORD})
    resource(e, "NODE1", "Offline")
    resource(e, "NODE1", "Online")
    assert e.invoke("NODE1", "Restore-MasterSecret", {"file": BACKUP, "password": PASSWORD})["holds_secret"]


def test_restore_with_the_wrong_password_fails():
    e = make()
    _to_recluster_point(e)
    resource(e, "NODE1", "Online")
    with pytest.raises(PSError, match="password"):
        e.invoke("NODE1", "Restore-MasterSecret", {"file": BACKUP, "password": "wrong"})


def test_restore_of_a_missing_file_fails():
    e = make()
    with pytest.raises(PSError, match="Cannot find file"):
        e.invoke("NODE2", "Restore-MasterSecret", {"file": BACKUP, "password": PASSWORD})


# --- the happy path in phases.py's order ----------------------------------------------------------------
def test_the_runbook_happy_path_ends_reclustered_with_the_secret_everywhere():
    e = make()
    # silence
    for bts, insts in (("BTS1", ["BizTalkServerApplication", "BizTalkServerIsolatedHost", "ReceiveHost", "SendHost",
                                 "OrchestrationHost"]),
                       ("BTS2", ["BizTalkServerApplication", "ReceiveHost", "SendHost", "TrackingHost"])):
        services(e, bts, *[(f"BTSSvc${n}", "Stopped") for n in insts if n != "BizTalkServerIsolatedHost"])
        services(e, bts, ("RuleEngineUpdateService", "Stopped"), ("ENTSSO", "Stopped"))
    # back up
    e.invoke("NODE1", "Backup-MasterSecret", {"file": BACKUP, "password": PASSWORD, "reminder": "r"})
    content = e.invoke("NODE1", "Read-File", {"path": BACKUP})["content_b64"]
    # uncluster
    uncluster(e)
    assert e.sql.get_secret_server() == "NODE1"
    assert sso_seen(e, "NODE2").tools_server == "NODE1"  # asking NODE1 from NODE2 would be a second hop
    # upgrade: the operator upgrades NODE1, a package NODE2
    e.operator_instruct("NODE1", "10.0.2000.0")
    assert wait_until(e, lambda: facts(e, "NODE1")["sso"]["version"] == "10.0.2000.0", 400)
    services(e, "NODE1", ("ENTSSO", "Running"))
    out = e.invoke("NODE2", "Install-SsoUpdate", {"path": PACKAGE, "arguments": "/quiet",
                                                  "log_path": "C:\\Windows\\Temp\\u.log", "timeout_sec": 1800})
    assert out["exit_code"] == 0 and out["version_after"] == "10.0.2000.0"
    services(e, "NODE2", ("ENTSSO", "Running"))
    # recluster
    updatedb(e, "NODE1", "SSOCLUSTER")
    services(e, "NODE1", ("ENTSSO", "Stopped"))
    services(e, "NODE2", ("ENTSSO", "Stopped"))
    for node in ("NODE2", "NODE1"):
        move(e, "NODE1", node)
        resource(e, node, "Offline")
        resource(e, node, "Online")
        if node == "NODE2":
            e.invoke(node, "Write-File", {"path": BACKUP, "content_b64": content})
        assert e.invoke(node, "Restore-MasterSecret", {"file": BACKUP, "password": PASSWORD})["holds_secret"]
    for node in ("NODE1", "NODE2"):
        tools(e, node, "SSOCLUSTER")
    assert e.sql.get_secret_server() == "SSOCLUSTER"
    c = facts(e, "NODE2")["cluster"]
    assert c["resource"]["state"] == "Online" and (c["group"]["state"], c["group"]["owner_node"]) == ("Online", "NODE1")
    for node in ("NODE1", "NODE2"):
        seen = sso_seen(e, node)
        assert seen.holds_secret and seen.tools_server == "SSOCLUSTER"
    assert sso_seen(e, "NODE1").secret_server == "SSOCLUSTER"  # the owner answers as the cluster: one hop
    # fail over: each node owns the group and reads the handlers
    for node in ("NODE2", "NODE1"):
        assert move(e, node, node)["state"] == "Online"
        assert all(h["readable"] for h in handlers(e, node)), node
    # resume
    services(e, "BTS1", ("ENTSSO", "Running"), ("RuleEngineUpdateService", "Running"))
    services(e, "BTS1", ("BTSSvc$ReceiveHost", "Running"))
    assert facts(e, "BTS1")["services"]["BTSSvc$ReceiveHost"]["status"] == "Running"
    assert all(h["readable"] for h in handlers(e, "BTS1"))


def test_btssvc_start_through_the_scm_with_entsso_stopped_fails_with_1068():
    e = make()
    services(e, "BTS2", ("BTSSvc$BizTalkServerApplication", "Stopped"), ("BTSSvc$ReceiveHost", "Stopped"), ("BTSSvc$SendHost", "Stopped"), ("ENTSSO", "Stopped"))
    with pytest.raises(PSError) as exc:
        services(e, "BTS2", ("BTSSvc$SendHost", "Running"))
    assert str(exc.value).startswith("Service 'BTSSvc$SendHost' cannot be started due to the following error: "
                                     "Cannot start service BTSSvc$SendHost on computer '.'. (The dependency "
                                     "service or group failed to start.")
    assert e.services_of("BTS2")["ENTSSO"] == "Stopped" and e.services_of("BTS2")["BTSSvc$SendHost"] == "Stopped"


DRAINING = {"biztalk": {"servers": [{"name": "BTS1", "host_instances": [
    {"host": "ReceiveHost", "state": "Running", "stop_sec": 2000},
    {"host": "SendHost", "state": "Running"}]}]}}


def _stop_instances(e: Estate, *names: str, timeout: float = 60) -> dict[str, Any]:
    """Stop BTS1's host instances as the suite does: their BTSSvc$ services through the SCM (Set-ServiceState),
    waiting `timeout` estate seconds (the suite passes real seconds: the lab multiplies by its speed)."""
    return e.invoke("BTS1", "Set-ServiceState", {"services": [{"name": f"BTSSvc${n}", "status": "Stopped"}
                                                             for n in names], "timeout_sec": timeout / e.clock.speed})


def test_host_instance_that_drains_longer_than_the_wait_stays_stop_pending_and_goes_on_stopping():
    e = make(**DRAINING)
    began = e.clock.elapsed()
    with pytest.raises(PSError, match=r"BTSSvc\$ReceiveHost on BTS1 did not reach Stopped within 60 s "
                                      r"\(last state: StopPending\)") as exc:
        _stop_instances(e, "ReceiveHost", "SendHost")
    assert biztalk.draining_instance(str(exc.value), [("ReceiveHost", "Stopped"), ("SendHost", "Stopped")]) == "ReceiveHost"
    assert 60 <= e.clock.elapsed() - began < 2000  # the script's wait, not the drain
    assert e.services_of("BTS1")["BTSSvc$ReceiveHost"] == "StopPending"  # it goes on draining
    assert e.services_of("BTS1")["BTSSvc$SendHost"] == "Running"  # the script threw before it
    assert wait_until(e, lambda: e.services_of("BTS1")["BTSSvc$ReceiveHost"] == "Stopped", 2000)


def test_a_stop_pending_host_instance_gets_no_second_stop_the_call_waits_for_it():
    e = make(**DRAINING)
    with pytest.raises(PSError):
        _stop_instances(e, "ReceiveHost")
    out = _stop_instances(e, "ReceiveHost", "SendHost", timeout=3000)["services"]
    assert [(o["name"], o["status_before"], o["status"]) for o in out] == [
        ("BTSSvc$ReceiveHost", "StopPending", "Stopped"), ("BTSSvc$SendHost", "Running", "Stopped")]
    requested = [x["what"] for x in e.dump()["events"] if x["what"] == "BTSSvc$ReceiveHost stop requested"]
    assert len(requested) == 1


def test_disabled_host_instance_cannot_start():
    e = make()
    with pytest.raises(PSError, match="disabled"):
        services(e, "BTS2", ("BTSSvc$TrackingHost", "Running"))
    assert e.services_of("BTS2")["BTSSvc$TrackingHost"] == "Stopped"


# --- upgrade packages and reboots -------------------------------------------------------------------------
def _install(e: Estate, node: str) -> dict[str, Any]:
    return e.invoke(node, "Install-SsoUpdate", {"path": PACKAGE, "arguments": "/quiet",
                                                "log_path": "C:\\Windows\\Temp\\u.log", "timeout_sec": 1800})


def test_package_3010_then_restart_brings_the_target_version():
    e = make(upgrade={"package": {"exit_code": 3010}})
    out = _install(e, "NODE2")
    assert out["exit_code"] == 3010 and out["version_after"] == "10.0.1000.0"
    assert e.invoke("NODE2", "Restart-Node", {}) == {"restarting": True}
    assert wait_until(e, lambda: not e.is_reachable("NODE2"), 30)
    assert wait_until(e, lambda: e.is_reachable("NODE2"), 200)
    assert facts(e, "NODE2")["sso"]["version"] == "10.0.2000.0"
    assert e.services_of("NODE2")["ENTSSO"] == "Stopped"  # Manual start type


def test_restart_of_the_owner_fails_the_group_over():
    e = make()
    e.invoke("NODE1", "Restart-Node", {})
    assert wait_until(e, lambda: not e.is_reachable("NODE1"), 30)
    assert wait_until(e, lambda: facts(e, "NODE2")["cluster"]["resource"]["state"] == "Online", 60)
    assert facts(e, "NODE2")["cluster"]["group"]["owner_node"] == "NODE2"


def test_package_1603_rolls_back_version_kept_and_the_stopped_entsso_started_again():
    e = make(upgrade={"nodes": {"NODE2": {"exit_code": 1603}}})
    e.invoke("NODE2", "Set-ServiceState", {"services": [{"name": "ENTSSO", "status": "Running"}], "timeout_sec": 120})
    assert e.services_of("NODE2")["ENTSSO"] == "Running"
    out = _install(e, "NODE2")
    assert out["exit_code"] == 1603 and out["version_after"] == "10.0.1000.0"
    events = [x["what"] for x in e.dump()["events"] if x["host"] == "NODE2"]
    assert "ENTSSO stopped (the update package stops ENTSSO)" in events  # it did run, and stopped ENTSSO
    assert any(x.startswith("update package rolled back (exit code 1603)") for x in events)
    assert wait_until(e, lambda: e.services_of("NODE2")["ENTSSO"] == "Running", 60)  # as before the install
    assert facts(e, "NODE2")["sso"]["version"] == "10.0.1000.0"
    assert e.invoke("NODE2", "Read-File", {"path": "C:\\Windows\\Temp\\u.log"})["size"] > 0


def test_package_1603_leaves_a_stopped_entsso_stopped():
    e = make(upgrade={"nodes": {"NODE2": {"exit_code": 1603}}})
    assert e.services_of("NODE2")["ENTSSO"] == "Stopped"
    assert _install(e, "NODE2")["exit_code"] == 1603
    e.clock.sleep(60)
    assert e.services_of("NODE2")["ENTSSO"] == "Stopped"


@pytest.mark.parametrize("code", [1618, 1619, 1638])
def test_installer_refusal_returns_at_once_and_changes_nothing(code):
    e = make(upgrade={"setup_sec": 100000, "nodes": {"NODE2": {"exit_code": code}}})
    e.invoke("NODE2", "Set-ServiceState", {"services": [{"name": "ENTSSO", "status": "Running"}], "timeout_sec": 120})
    changes, began = e.changes, e.clock.elapsed()
    out = _install(e, "NODE2")
    assert out["exit_code"] == code and out["version_after"] == "10.0.1000.0"
    assert e.clock.elapsed() - began < 1000  # not setup_sec (100000 estate seconds): at once
    assert e.changes == changes  # ENTSSO never stopped, nothing installed
    assert e.services_of("NODE2")["ENTSSO"] == "Running"
    assert facts(e, "NODE2")["sso"]["version"] == "10.0.1000.0"


def test_package_missing_is_refused_by_the_script_before_msiexec():
    e = make("package-missing")
    with pytest.raises(PSError, match=r"Update package '.*' was not found on NODE2; copy it there"):
        _install(e, "NODE2")


def test_operator_upgrade_now_sets_the_version():
    e = make()
    e.operator_upgrade_now("NODE2", "10.0.2000.0")
    assert facts(e, "NODE2")["sso"]["version"] == "10.0.2000.0" and e.changes == 1


def test_dump_is_json_serialisable():
    import json

    e = make()
    services(e, "BTS2", ("BTSSvc$SendHost", "Stopped"))
    doc = json.loads(json.dumps(e.dump()))
    assert doc["changes"] == e.changes and doc["events"]
    assert doc["cluster"]["clustered_entsso"]["host"] == "NODE1"


def test_package_1641_restarts_the_node_by_itself():
    e = make(upgrade={"nodes": {"NODE2": {"exit_code": 1641}}})
    assert _install(e, "NODE2")["exit_code"] == 1641
    assert wait_until(e, lambda: not e.is_reachable("NODE2"), 30)
    assert wait_until(e, lambda: e.is_reachable("NODE2"), 200)
    assert facts(e, "NODE2")["sso"]["version"] == "10.0.2000.0"


def test_moving_a_group_whose_resource_is_offline_leaves_it_partially_online():
    e = make()
    resource(e, "NODE1", "Offline")
    out = move(e, "NODE1", "NODE2")
    assert out["owner_node"] == "NODE2" and out["state"] == "PartialOnline"
    assert facts(e, "NODE2")["cluster"]["resource"]["state"] == "Offline"


# --- Move-ClusterGroup keeps the group's state (MoveClusterGroup remarks) --------------------------------
def test_a_moved_group_with_its_entsso_resource_offline_stays_partial_online():
    e = make()
    resource(e, "NODE1", "Offline")
    assert facts(e, "NODE1")["cluster"]["group"]["state"] == "PartialOnline"
    out = move(e, "NODE1", "NODE2")
    assert (out["owner_node"], out["state_before"], out["state"], out["changed"]) == \
        ("NODE2", "PartialOnline", "PartialOnline", True)
    c = facts(e, "NODE2")["cluster"]
    assert c["group"] == {"name": "SSO", "state": "PartialOnline", "owner_node": "NODE2",
                          "preferred_owners": [], "auto_failback_type": 0}
    assert c["resource"]["state"] == "Offline"  # the move does not bring the resource online


def test_a_wait_for_online_after_moving_a_partial_online_group_times_out_naming_both_states():
    e = make()
    resource(e, "NODE1", "Offline")
    with pytest.raises(PSError) as info:
        # 0.05 suite seconds are 100 estate seconds: the move itself takes 20
        move(e, "NODE1", "NODE2", {"PartialOnline": ["Online"]}, timeout=0.05)
    assert "did not reach Online within 100 s" in str(info.value)
    assert "state before the move: PartialOnline; last state: PartialOnline on NODE2" in str(info.value)


def test_a_moved_online_group_comes_back_online_on_its_new_owner():
    e = make()
    out = move(e, "NODE1", "NODE2")
    assert (out["owner_node"], out["state_before"], out["state"]) == ("NODE2", "Online", "Online")
    assert facts(e, "NODE2")["cluster"]["resource"]["state"] == "Online"


def test_a_partial_online_group_already_on_the_node_is_left_alone():
    e = make()
    resource(e, "NODE1", "Offline")
    changes = e.changes
    out = move(e, "NODE1", "NODE1")
    assert (out["state"], out["changed"]) == ("PartialOnline", False) and e.changes == changes


def test_a_group_in_a_state_without_an_entry_is_not_moved():
    e = make("group-offline")
    with pytest.raises(PSError, match="is Offline on NODE1: it is moved only from a state in states_after_move "
                                      r"\(Online, PartialOnline\)"):
        move(e, "NODE1", "NODE2")
    assert facts(e, "NODE1")["cluster"]["group"]["owner_node"] == "NODE1"


def test_restart_node_keeps_answering_for_the_restart_delay_then_goes_and_comes_back_with_a_new_boot_time():
    e = make(upgrade={"restart_delay_sec": 60})
    booted = facts(e, "NODE2")["last_boot_utc"]
    started = e.clock.elapsed()
    e.invoke("NODE2", "Restart-Node", {})
    e.clock.sleep(30)  # shutdown /t 60: half-way through the time-out the node still answers, not restarted
    assert e.is_reachable("NODE2") and facts(e, "NODE2")["last_boot_utc"] == booted
    assert wait_until(e, lambda: not e.is_reachable("NODE2"), 60)
    assert e.clock.elapsed() - started >= 60
    assert wait_until(e, lambda: e.is_reachable("NODE2"), 200)
    assert facts(e, "NODE2")["last_boot_utc"] > booted


def test_a_second_restart_node_while_one_is_pending_restarts_once():
    e = make(upgrade={"restart_delay_sec": 20})
    e.invoke("NODE2", "Restart-Node", {})
    before = e.changes
    assert e.invoke("NODE2", "Restart-Node", {}) == {"restarting": True}  # shutdown.exe 1190: already scheduled
    assert e.changes == before
    assert wait_until(e, lambda: not e.is_reachable("NODE2"), 40)
    assert wait_until(e, lambda: e.is_reachable("NODE2"), 200)
    downs = [ev for ev in e.dump()["events"] if ev["host"] == "NODE2" and ev["what"] == "restarting: down"]
    assert len(downs) == 1


def test_package_1641_leaves_the_node_answering_until_the_restart_delay_ends():
    e = make(upgrade={"restart_delay_sec": 40, "nodes": {"NODE2": {"exit_code": 1641}}})
    assert _install(e, "NODE2")["exit_code"] == 1641
    assert e.is_reachable("NODE2") and e.dump()["hosts"]["NODE2"]["restart_pending"] is True
    assert wait_until(e, lambda: not e.is_reachable("NODE2"), 60)


def test_a_pending_reboot_shows_in_the_registry_markers_until_the_node_restarts():
    e = make("node-pending-reboot", upgrade={"restart_delay_sec": 5})
    assert facts(e, "NODE2")["pending_restart"]["cbs_reboot_pending"] is True
    assert facts(e, "NODE1")["pending_restart"]["cbs_reboot_pending"] is False
    e.invoke("NODE2", "Restart-Node", {})
    assert wait_until(e, lambda: not e.is_reachable("NODE2"), 30)
    assert wait_until(e, lambda: e.is_reachable("NODE2"), 200)
    assert facts(e, "NODE2")["pending_restart"]["cbs_reboot_pending"] is False


def test_a_paused_node_cannot_receive_the_group():
    e = make("node-paused")
    with pytest.raises(PSError, match="Paused"):
        move(e, "NODE1", "NODE2")
    assert facts(e, "NODE1")["cluster"]["group"]["owner_node"] == "NODE1"


def test_entsso_is_not_stopped_while_a_host_instance_still_runs_or_drains():
    e = make(**DRAINING)
    services(e, "BTS1", ("ENTSSO", "Running"))
    with pytest.raises(PSError, match=r"Service 'ENTSSO' on BTS1 has running dependent services "
                                      r"\(BTSSvc\$ReceiveHost, BTSSvc\$SendHost\); stop them first"):
        services(e, "BTS1", ("ENTSSO", "Stopped"))
    with pytest.raises(PSError):
        _stop_instances(e, "ReceiveHost")  # the wait ends: ReceiveHost still StopPending
    _stop_instances(e, "SendHost")
    with pytest.raises(PSError, match=r"running dependent services \(BTSSvc\$ReceiveHost\)"):
        services(e, "BTS1", ("ENTSSO", "Stopped"))  # a StopPending dependent blocks it too
    assert e.services_of("BTS1")["ENTSSO"] == "Running"
    assert wait_until(e, lambda: e.services_of("BTS1")["BTSSvc$ReceiveHost"] == "Stopped", 2000)
    assert services(e, "BTS1", ("ENTSSO", "Stopped"))["services"][0]["status"] == "Stopped"



def _scm_stop_and_settle(e: Estate, node: str) -> dict[str, Any]:
    """Stop ENTSSO on `node` through the SCM behind the cluster's back; what the cluster made of it."""
    services(e, node, ("ENTSSO", "Stopped"))
    # notice (3 s), restart delay (2 s), resource online (10 s): settled within 15 estate s, if loaded later
    assert wait_until(e, lambda: e.dump()["cluster"]["resource"]["state"] in ("Online",) and not any(
        "cluster" in p["what"] or "resource" in p["what"] for p in e.dump()["pending"]), 300)
    return e.dump()["cluster"]


def slow(**overrides: Any) -> Estate:
    """The default estate at speed 200: RestartPeriod (900 estate s) outlasts a loaded test's real delays."""
    doc = _merge(load_scenario("default"), overrides)
    return Estate(doc, Clock(200.0), FakeSql(doc["sso"]["secret_server"]))


def test_restart_policy_restarts_on_the_node_then_fails_the_group_over_then_leaves_it_failed():
    # RestartThreshold 1 within RestartPeriod, FailoverThreshold 1 (Learn, MSCS common properties)
    e = slow(cluster={"restart_threshold": 1, "failover_threshold": 1})
    c = _scm_stop_and_settle(e, "NODE1")
    assert (c["group"]["owner"], c["resource"]["state"]) == ("NODE1", "Online")  # restarted where it was
    c = _scm_stop_and_settle(e, "NODE1")
    assert (c["group"]["owner"], c["resource"]["state"]) == ("NODE2", "Online")  # past the threshold: failover
    assert e.dump()["hosts"]["NODE2"]["sso"]["running_as"] == "SSOCLUSTER"
    c = _scm_stop_and_settle(e, "NODE2")  # the count starts again on the new owner
    assert (c["group"]["owner"], c["resource"]["state"]) == ("NODE2", "Online")
    services(e, "NODE2", ("ENTSSO", "Stopped"))
    assert wait_until(e, lambda: "left Failed" in (e.dump()["cluster"]["restart_policy"]["actions"] or [{}])[-1]
                      .get("what", ""), 60)
    c = e.dump()["cluster"]
    assert (c["group"]["owner"], c["group"]["state"], c["resource"]["state"]) == ("NODE2", "Failed", "Failed")
    assert [a["what"].split(":")[0].split(" (")[0] for a in c["restart_policy"]["actions"]] == [
        "restart 1 of 1 within 900 s on NODE1", "restart threshold 1 passed on NODE1",
        "restart 1 of 1 within 900 s on NODE2", "restart threshold 1 passed on NODE2; group SSO left Failed"]
    assert not wait_until(e, lambda: e.dump()["cluster"]["resource"]["state"] != "Failed", 60)  # nothing else tries


def test_restart_policy_defaults_restart_three_times_then_fail_over():
    e = slow()  # RestartThreshold 3, RestartPeriod 900 s, FailoverThreshold nodes - 1
    for _ in range(3):
        assert _scm_stop_and_settle(e, "NODE1")["group"]["owner"] == "NODE1"
    c = _scm_stop_and_settle(e, "NODE1")
    assert (c["group"]["owner"], c["resource"]["state"]) == ("NODE2", "Online")
    assert c["restart_policy"]["failovers_in_period"] == 1


def test_restart_policy_restarts_count_only_within_the_restart_period():
    e = slow(cluster={"restart_threshold": 1, "restart_period_sec": 30})
    assert _scm_stop_and_settle(e, "NODE1")["group"]["owner"] == "NODE1"
    e.clock.sleep(31)  # the earlier restart falls out of RestartPeriod
    assert _scm_stop_and_settle(e, "NODE1")["group"]["owner"] == "NODE1"


def test_taking_the_resource_offline_through_the_cluster_trips_no_restart_policy():
    e = make(cluster={"restart_threshold": 0})
    uncluster(e)  # the resource taken offline through the cluster, then ENTSSO started through the SCM
    services(e, "NODE1", ("ENTSSO", "Stopped"))  # the SCM instance, not the cluster's
    e.clock.sleep(30)
    c = e.dump()["cluster"]
    assert (c["group"]["owner"], c["resource"]["state"], c["restart_policy"]["actions"]) == ("NODE1", "Offline", [])


def test_the_restart_policy_fails_over_only_to_a_possible_owner():
    e = make(cluster={"restart_threshold": 0, "possible_owners": ["NODE1"]})
    services(e, "NODE1", ("ENTSSO", "Stopped"))
    assert wait_until(e, lambda: e.dump()["cluster"]["restart_policy"]["actions"], 30)
    assert "left Failed (no other node can own it)" in e.dump()["cluster"]["restart_policy"]["actions"][0]["what"]
    assert facts(e, "NODE1")["cluster"]["resource"]["possible_owners"] == ["NODE1"]
    resource(e, "NODE1", "Offline")
    with pytest.raises(PSError, match=r"'NODE2' cannot own it \(not a possible owner of resource 'ENTSSO': NODE1\)"):
        move(e, "NODE1", "NODE2")


def test_failback_allowed_takes_the_group_back_to_its_preferred_owner_when_it_returns():
    e = make(cluster={"preferred_owners": ["NODE1", "NODE2"], "auto_failback": True})
    g = facts(e, "NODE2")["cluster"]["group"]
    assert (g["preferred_owners"], g["auto_failback_type"]) == (["NODE1", "NODE2"], 1)
    e.invoke("NODE1", "Restart-Node", {})
    assert wait_until(e, lambda: e.dump()["cluster"]["group"]["owner"] == "NODE2", 60)  # failed over
    assert wait_until(e, lambda: e.dump()["cluster"]["group"]["owner"] == "NODE1"
                      and e.dump()["cluster"]["resource"]["state"] == "Online", 400)  # and back once NODE1 is up


def test_failback_prevented_by_default_leaves_the_group_where_it_failed_over():
    e = make(cluster={"preferred_owners": ["NODE1", "NODE2"]})
    assert facts(e, "NODE2")["cluster"]["group"]["auto_failback_type"] == 0
    e.invoke("NODE1", "Restart-Node", {})
    assert wait_until(e, lambda: not e.dump()["hosts"]["NODE1"]["rebooting"]
                      and e.dump()["hosts"]["NODE1"]["last_boot_utc"] != facts(e, "NODE2")["last_boot_utc"], 400)
    e.clock.sleep(60)
    assert e.dump()["cluster"]["group"]["owner"] == "NODE2"


def test_without_use_network_name_the_clustered_entsso_answers_as_the_node():
    e = make(cluster={"use_network_name": False})
    assert facts(e, "NODE1")["cluster"]["resource"]["use_network_name"] is False
    assert e.dump()["hosts"]["NODE1"]["sso"]["running_as"] == "NODE1"
    assert sso_seen(e, "BTS1").displaydb_error is not None  # nothing answers as SSOCLUSTER


def test_the_witness_state_is_reported_as_get_clusterquorum_gives_it():
    assert facts(make(), "NODE1")["cluster"]["quorum"] == {
        "type": "Majority", "witness": {"name": "File Share Witness", "state": "Online"}}
    assert facts(make(cluster={"witness": "Offline"}), "NODE2")["cluster"]["quorum"]["witness"]["state"] == "Offline"


def test_a_node_paused_mid_run_keeps_what_it_owns_and_receives_no_group():
    e = make()
    e.pause_node("NODE1")  # the owner: the group stays, Online
    c = facts(e, "NODE2")["cluster"]
    assert [n["state"] for n in c["nodes"]] == ["Paused", "Up"] and c["group"]["owner_node"] == "NODE1"
    assert c["group"]["state"] == "Online"
    move(e, "NODE1", "NODE2")
    e.pause_node("NODE2")
    with pytest.raises(PSError, match=r"The node 'NODE1' cannot own it \(state Paused\)"):
        move(e, "NODE2", "NODE1")


def test_adapter_handlers_are_read_through_the_local_sso_service_only():
    # run-time mode: the owner's own ENTSSO decrypts; a node that does not own the group has no running
    # ENTSSO to ask (its clustered service is stopped there), whatever its tools point at
    e = make()
    assert all(h["readable"] and h["property_count"] == 3 for h in handlers(e, "NODE1"))
    assert {h["error_code"] for h in handlers(e, "NODE2")} == {"0xC0002A0F"}
    # no BizTalk needed on the node: the read is SSO's (the WMI provider is not asked)
    e = make(biztalk={"admin_tools_on_nodes": False})
    assert all(h["readable"] for h in handlers(e, "NODE1"))


def test_an_admin_mode_read_through_a_remote_sso_server_is_a_second_hop_and_is_refused():
    # admin mode asks the SSO server the machine's registry names: BTS1's tools point at SSOCLUSTER, another
    # machine, which sees the WinRM NTLM logon's outbound call as anonymous and refuses it
    e = make()
    hs = handlers(e, "BTS1", flags=0)
    assert {(h["error_code"], h["error"]) for h in hs} == {("0x80070005", "Access is denied.")}
    # on the owner the cluster name is its own clustered ENTSSO: admin mode is one hop there
    assert all(h["readable"] for h in handlers(e, "NODE1", flags=0))
    move(e, "NODE1", "NODE2")  # now NODE1's tools ask SSOCLUSTER on NODE2
    assert {h["error_code"] for h in handlers(e, "NODE1", flags=0)} == {"0x80070005"}


def test_a_config_sso_does_not_hold_is_an_invalid_argument():
    e = make()
    doc = e.invoke("NODE1", "Get-AdapterHandlers", {"flags": 4, "configs": [
        {"application": "FILE", "identifier": "{00000000-0000-0000-0000-000000000000}"}]})
    assert doc["reads"] == [{"application": "FILE", "identifier": "{00000000-0000-0000-0000-000000000000}",
                             "property_count": None, "hresult": "0x80070057", "error": "The parameter is incorrect."}]


def test_esso_setup_under_the_online_resource_exhausts_its_restarts_and_the_group_fails_over():
    # what the runbook avoids by taking the resource offline first (phase 3): Setup stops the cluster's
    # ENTSSO, each restart fails while Setup runs, and past RestartThreshold the role moves to NODE2
    e = slow()
    e.operator_instruct("NODE1", "10.0.2000.0")
    assert wait_until(e, lambda: e.dump()["cluster"]["group"]["owner"] == "NODE2", 300)
    actions = [a["what"] for a in e.dump()["cluster"]["restart_policy"]["actions"]]
    assert actions[:3] == [f"restart {n} of 3 within 900 s on NODE1 (" + ("ENTSSO stopped outside the cluster "
                           "(ESSO Setup stops ENTSSO))" if n == 1 else "ENTSSO cannot start while ESSO Setup runs)")
                           for n in (1, 2, 3)]
    assert actions[3].startswith("restart threshold 3 passed on NODE1: group SSO failed over to NODE2")
