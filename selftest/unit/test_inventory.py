"""The inventory: a valid estate loads and exposes what the suite uses; every mistake an operator can
make is refused with one message that names the field and says what to do."""
from __future__ import annotations

import copy
import getpass
import hashlib
import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml

from entsso.inventory import InventoryError, load_inventory
from entsso.lab.inventory import lab_inventory

ROOT = Path(__file__).resolve().parents[2]
CANARY = "canary-Secr3t-value-4711"
ENV = ("ENTSSO_WINRM_PASSWORD", "ENTSSO_SQL_PASSWORD", "ENTSSO_SECRET_PASSWORD")

BASE: dict[str, Any] = {
    "environment": "TEST",
    "cluster": {"network_name": "SSOCLUSTER", "group": "SSO", "resource": "ENTSSO",
                "nodes": ["NODE1", {"name": "NODE2", "address": "10.0.0.12"}], "primary": "NODE1"},
    "biztalk_servers": ["BTS1", {"name": "BTS2", "address": "bts2.corp.example"}],
    "sql": {"server": "SQL1", "auth": "sql", "username": "entsso", "password_env": "ENTSSO_SQL_PASSWORD",
            "jobs": ["Backup BizTalk Server (BizTalkMgmtDb)", "MessageBox_UpdateStats_BizTalkMsgBoxDb"]},
    "winrm": {"transport": "ntlm", "https": True, "username": "CORP\\svc-entsso",
              "password_env": "ENTSSO_WINRM_PASSWORD"},
    "secret_backup": {"folder": "C:\\SSOBackup", "password_env": "ENTSSO_SECRET_PASSWORD"},
    "upgrade": {"target_version": "10.0.2000.0", "mode": "manual", "package_path": "C:\\Updates\\EntSSO-CU.msp",
                "nodes": {"NODE2": {"mode": "package", "arguments": "/qn"}}},
    "timeouts": {"service_start": 60, "service_stop": 60, "group_move": 120, "backup_job": 900, "upgrade": 1800,
                 "reboot": 600},
}


@pytest.fixture(autouse=True)
def secrets_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENV:
        monkeypatch.setenv(name, f"{CANARY}-{name}")


def write(tmp_path: Path, doc: Any, name: str = "prod.yml") -> Path:
    path = tmp_path / name
    path.write_text(doc if isinstance(doc, str) else yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return path


def doc_with(**changes: Any) -> dict[str, Any]:
    """BASE with dotted-path changes: doc_with(**{"winrm.port": "abc"}); a value of DELETE removes the key."""
    doc = copy.deepcopy(BASE)
    for dotted, value in changes.items():
        *parents, last = dotted.split(".")
        target = doc
        for p in parents:
            target = target[p]
        if value is DELETE:
            del target[last]
        else:
            target[last] = value
    return doc


DELETE = object()


def refused(tmp_path: Path, doc: Any) -> str:
    with pytest.raises(InventoryError) as info:
        load_inventory(write(tmp_path, doc))
    return str(info.value)


# --- a valid inventory -----------------------------------------------------------------------------------
def test_example_inventory_loads_when_its_variables_are_set() -> None:
    inv = load_inventory(ROOT / "inventory" / "example.yml")
    assert inv.environment == "PROD"
    assert [n.name for n in inv.cluster.nodes] == ["NODE1", "NODE2"]
    assert inv.upgrade_for("NODE2").mode == "package"
    assert inv.sql.auth == "kerberos" and inv.secrets.sql_password is None


def test_valid_inventory_exposes_the_estate(tmp_path: Path) -> None:
    path = write(tmp_path, BASE)
    inv = load_inventory(path)
    assert inv.path == path and inv.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert [(h.name, h.address) for h in inv.hosts()] == [
        ("NODE1", "NODE1"), ("NODE2", "10.0.0.12"), ("BTS1", "BTS1"), ("BTS2", "bts2.corp.example")]
    assert (inv.cluster.network_name, inv.cluster.group, inv.cluster.resource, inv.cluster.primary) == (
        "SSOCLUSTER", "SSO", "ENTSSO", "NODE1")
    assert [b.name for b in inv.biztalk_servers] == ["BTS1", "BTS2"]
    assert inv.sql.jobs[0] == "Backup BizTalk Server (BizTalkMgmtDb)"
    assert inv.sql.backup_job == "Backup BizTalk Server (BizTalkMgmtDb)"
    assert (inv.sql.driver, inv.sql.encrypt, inv.sql.trust_server_certificate) == (
        "ODBC Driver 18 for SQL Server", True, False)
    assert inv.sql.databases.ssodb == "SSODB"
    assert inv.lab is None
    assert inv.timeouts.group_move == 120
    assert inv.secret_backup.reminder.format(ticket="CHG1", run="r1").endswith("CHG1 (run r1)")


def test_winrm_defaults_are_https_5986_with_validation(tmp_path: Path) -> None:
    w = load_inventory(write(tmp_path, BASE)).winrm
    assert (w.https, w.port, w.server_cert_validation, w.allow_insecure) == (True, 5986, "validate", False)
    assert w.read_timeout > w.operation_timeout


def test_http_port_defaults_to_5985_and_ntlm_over_http_is_allowed(tmp_path: Path) -> None:
    w = load_inventory(write(tmp_path, doc_with(**{"winrm.https": False}))).winrm
    assert (w.transport, w.https, w.port) == ("ntlm", False, 5985)


def test_upgrade_for_merges_node_overrides_with_the_default(tmp_path: Path) -> None:
    inv = load_inventory(write(tmp_path, BASE))
    one, two = inv.upgrade_for("NODE1"), inv.upgrade_for("node2")
    assert (one.mode, one.arguments, one.target_version) == ("manual", "/quiet /norestart", "10.0.2000.0")
    assert (two.mode, two.arguments, two.package_path) == ("package", "/qn", "C:\\Updates\\EntSSO-CU.msp")
    assert two.log_path == "C:\\Windows\\Temp\\entsso-update.log"


# --- the file itself -------------------------------------------------------------------------------------
def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(InventoryError, match=r"nope\.yml: no such file"):
        load_inventory(tmp_path / "nope.yml")


def test_not_yaml_names_the_line(tmp_path: Path) -> None:
    message = refused(tmp_path, "environment: PROD\ncluster: [NODE1\n  nodes: x: y\n")
    assert "is not valid YAML" in message and "line " in message


def test_top_level_list_is_refused(tmp_path: Path) -> None:
    assert "the top level is a list, not a mapping" in refused(tmp_path, "- NODE1\n- NODE2\n")


def test_key_written_twice_is_refused(tmp_path: Path) -> None:
    text = yaml.safe_dump(BASE, sort_keys=False) + "environment: OTHER\n"
    assert "'environment' is written twice" in refused(tmp_path, text)


# --- shapes and types ------------------------------------------------------------------------------------
def test_unknown_key_suggests_the_closest_known_key(tmp_path: Path) -> None:
    message = refused(tmp_path, doc_with(**{"winrm.transprot": "ntlm"}))
    assert "winrm.transprot: unknown key; did you mean `transport`?" in message


def test_port_that_is_not_a_number_is_refused(tmp_path: Path) -> None:
    message = refused(tmp_path, doc_with(**{"winrm.port": "abc"}))
    assert "winrm.port: 'abc' is not a whole number" in message


def test_missing_required_field_is_named(tmp_path: Path) -> None:
    message = refused(tmp_path, doc_with(**{"cluster.network_name": DELETE}))
    assert "cluster.network_name: missing; add it (the cluster's network name" in message


def test_missing_environment_is_named(tmp_path: Path) -> None:
    assert "environment: missing; add it" in refused(tmp_path, doc_with(environment=DELETE))


def test_several_mistakes_are_listed_each_with_its_field(tmp_path: Path) -> None:
    message = refused(tmp_path, doc_with(**{"winrm.port": "abc", "timeouts.reboot": 0}))
    assert "2 problems" in message
    assert re.search(r"\n  - line \d+: winrm\.port:", message) and re.search(r"\n  - line \d+: timeouts\.reboot:", message)


# --- the cluster and the hosts ---------------------------------------------------------------------------
def test_primary_that_is_not_a_node_is_refused(tmp_path: Path) -> None:
    message = refused(tmp_path, doc_with(**{"cluster.primary": "NODE3"}))
    assert message.endswith("prod.yml: line 10: cluster.primary: 'NODE3' is not one of the cluster's nodes (NODE1, NODE2); "
                            "set it to one of them or remove it")


def test_node_listed_twice_is_refused(tmp_path: Path) -> None:
    message = refused(tmp_path, doc_with(**{"cluster.nodes": ["NODE1", "NODE2", "node1"]}))
    assert "cluster.nodes[2]: 'node1' is listed twice" in message


def test_host_both_node_and_biztalk_server_is_refused(tmp_path: Path) -> None:
    message = refused(tmp_path, doc_with(biztalk_servers=["BTS1", "NODE2"]))
    assert "biztalk_servers[1]: 'NODE2' is also a cluster node" in message


@pytest.mark.parametrize("name", ["NODE 1", "CORP\\NODE1", "-node", "THISNAMEISTOOLONGFORNETBIOS"])
def test_invalid_host_name_is_refused(tmp_path: Path, name: str) -> None:
    message = refused(tmp_path, doc_with(**{"cluster.nodes": ["NODE1", name]}))
    assert "cluster.nodes[1].name:" in message and repr(name) in message


# --- secrets ---------------------------------------------------------------------------------------------
def test_missing_secret_variable_names_the_variable_and_the_field(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ENTSSO_WINRM_PASSWORD")
    message = refused(tmp_path, BASE)
    assert "winrm.password_env: names the environment variable ENTSSO_WINRM_PASSWORD, which is not set" in message
    assert "export ENTSSO_WINRM_PASSWORD" in message


@pytest.mark.parametrize("where", ["winrm", "sql", "secret_backup"])
def test_password_written_in_the_file_is_refused(tmp_path: Path, where: str) -> None:
    message = refused(tmp_path, doc_with(**{f"{where}.password": CANARY}))
    assert f"{where}.password: a secret written into the file is refused" in message
    assert "password_env" in message
    assert CANARY not in message


def test_secrets_come_from_the_environment_and_never_show(tmp_path: Path) -> None:
    inv = load_inventory(write(tmp_path, BASE))
    assert inv.secrets.winrm_password.get_secret_value() == f"{CANARY}-ENTSSO_WINRM_PASSWORD"
    assert inv.secrets.sql_password.get_secret_value() == f"{CANARY}-ENTSSO_SQL_PASSWORD"
    assert inv.secrets.secret_password.get_secret_value() == f"{CANARY}-ENTSSO_SECRET_PASSWORD"
    for text in (repr(inv), str(inv), repr(inv.secrets), str(inv.secrets), repr(inv.winrm), repr(inv.sql)):
        assert CANARY not in text


def test_error_messages_never_show_secret_values(tmp_path: Path) -> None:
    message = refused(tmp_path, doc_with(**{"winrm.port": "abc", "cluster.primary": "NODE3"}))
    assert CANARY not in message


def test_prompt_asks_with_getpass_for_an_unset_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ENTSSO_SECRET_PASSWORD")
    asked: list[str] = []
    monkeypatch.setattr(getpass, "getpass", lambda prompt="": asked.append(prompt) or "typed-secret")
    inv = load_inventory(write(tmp_path, BASE), prompt=True)
    assert inv.secrets.secret_password.get_secret_value() == "typed-secret"
    assert len(asked) == 1 and "ENTSSO_SECRET_PASSWORD" in asked[0]


def test_without_a_terminal_getpass_is_never_called(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ENTSSO_SECRET_PASSWORD")
    monkeypatch.setattr(getpass, "getpass", lambda prompt="": pytest.fail("getpass called without a terminal"))
    assert "secret_backup.password_env" in refused(tmp_path, BASE)


# --- WinRM -----------------------------------------------------------------------------------------------
def test_basic_over_http_needs_allow_insecure(tmp_path: Path) -> None:
    message = refused(tmp_path, doc_with(**{"winrm.transport": "basic", "winrm.https": False}))
    assert "winrm.transport: basic over http" in message and "allow_insecure: true" in message


def test_basic_over_http_loads_with_allow_insecure(tmp_path: Path) -> None:
    doc = doc_with(**{"winrm.transport": "basic", "winrm.https": False, "winrm.allow_insecure": True})
    assert load_inventory(write(tmp_path, doc)).winrm.allow_insecure is True


def test_unknown_transport_is_refused(tmp_path: Path) -> None:
    message = refused(tmp_path, doc_with(**{"winrm.transport": "negotiate"}))
    assert "winrm.transport: 'negotiate' is not one of 'ntlm', 'kerberos', 'credssp' or 'basic'" in message


def test_a_winrm_proxy_is_taken_when_named(tmp_path: Path) -> None:
    assert load_inventory(write(tmp_path, doc_with(**{"winrm.proxy": "http://proxy.corp.example:8080"}))
                          ).winrm.proxy == "http://proxy.corp.example:8080"
    assert load_inventory(write(tmp_path, BASE)).winrm.proxy is None  # default: straight to the hosts


def test_a_proxy_that_is_not_a_url_is_refused(tmp_path: Path) -> None:
    message = refused(tmp_path, doc_with(**{"winrm.proxy": "proxy.corp.example:8080"}))
    assert "winrm.proxy: 'proxy.corp.example:8080' is not a proxy URL" in message and "http://" in message


def test_a_proxy_url_with_a_password_is_refused_without_echoing_it(tmp_path: Path) -> None:
    message = refused(tmp_path, doc_with(**{"winrm.proxy": f"http://me:{CANARY}@proxy:8080"}))
    assert "winrm.proxy" in message and "password" in message and CANARY not in message


def test_read_timeout_must_exceed_operation_timeout(tmp_path: Path) -> None:
    message = refused(tmp_path, doc_with(**{"winrm.read_timeout": 20, "winrm.operation_timeout": 20}))
    assert "winrm.read_timeout: 20 must be greater than winrm.operation_timeout" in message


# --- SQL Server ------------------------------------------------------------------------------------------
def test_sql_auth_without_username_is_refused(tmp_path: Path) -> None:
    assert "sql.username: missing; `auth: sql`" in refused(tmp_path, doc_with(**{"sql.username": DELETE}))


def test_kerberos_with_a_password_variable_is_a_contradiction(tmp_path: Path) -> None:
    message = refused(tmp_path, doc_with(**{"sql.auth": "kerberos", "sql.username": DELETE}))
    assert "sql.password_env: set to 'ENTSSO_SQL_PASSWORD' but `auth: kerberos`" in message


def test_empty_job_list_is_refused(tmp_path: Path) -> None:
    assert "sql.jobs: the list is empty" in refused(tmp_path, doc_with(**{"sql.jobs": []}))


def test_backup_job_must_be_among_the_jobs(tmp_path: Path) -> None:
    message = refused(tmp_path, doc_with(**{"sql.backup_job": "Backup BizTalk Server (OtherMgmtDb)"}))
    assert "sql.backup_job: 'Backup BizTalk Server (OtherMgmtDb)' is not in sql.jobs" in message


@pytest.mark.parametrize("driver", ["FreeTDS", "ODBC Driver 17 for SQL Server"])
def test_strict_encryption_needs_driver_18(tmp_path: Path, driver: str) -> None:
    message = refused(tmp_path, doc_with(**{"sql.encrypt": "strict", "sql.driver": driver}))
    assert f"sql.encrypt: strict (TDS 8.0) needs ODBC Driver 18 for SQL Server; {driver}" in message
    assert "set `driver: ODBC Driver 18 for SQL Server`, or `encrypt: true`" in message


def test_strict_encryption_loads_with_driver_18_and_nothing_else_is_a_word_for_it(tmp_path: Path) -> None:
    inv = load_inventory(write(tmp_path, doc_with(**{"sql.encrypt": "strict"})))
    assert inv.sql.encrypt == "strict" and inv.sql.driver == "ODBC Driver 18 for SQL Server"
    assert "sql.encrypt" in refused(tmp_path, doc_with(**{"sql.encrypt": "mandatory"}))


def test_a_ca_file_with_trust_server_certificate_is_a_contradiction(tmp_path: Path) -> None:
    message = refused(tmp_path, doc_with(**{"sql.ca_file": "/etc/entsso/sql-ca.pem",
                                            "sql.trust_server_certificate": True}))
    assert "sql.ca_file: has no effect with `trust_server_certificate: true`" in message


# --- the update, the backup folder, timeouts -------------------------------------------------------------
def test_package_mode_without_package_path_is_refused(tmp_path: Path) -> None:
    message = refused(tmp_path, doc_with(**{"upgrade.package_path": DELETE}))
    assert "upgrade.nodes.NODE2.package_path: missing; NODE2 uses `mode: package`" in message


def test_default_package_mode_without_package_path_is_refused(tmp_path: Path) -> None:
    message = refused(tmp_path, doc_with(**{"upgrade.package_path": DELETE, "upgrade.mode": "package",
                                            "upgrade.nodes": {}}))
    assert "upgrade.package_path: missing; `mode: package`" in message


@pytest.mark.parametrize("version", ["10.0", "latest", "10.0.2000"])
def test_target_version_must_be_dotted(tmp_path: Path, version: str) -> None:
    message = refused(tmp_path, doc_with(**{"upgrade.target_version": version}))
    assert f"upgrade.target_version: {version!r} is not a dotted version" in message


def test_unquoted_float_version_asks_for_quotes(tmp_path: Path) -> None:
    message = refused(tmp_path, doc_with(**{"upgrade.target_version": 10.0}))
    assert "upgrade.target_version: 10.0 is not text (put it in quotes)" in message


@pytest.mark.parametrize("value", [0, -5])
def test_timeouts_must_be_positive(tmp_path: Path, value: int) -> None:
    message = refused(tmp_path, doc_with(**{"timeouts.upgrade": value}))
    assert f"timeouts.upgrade: {value} is not allowed; it must be a positive number of seconds" in message


def test_upgrade_override_for_a_host_that_is_not_a_node_is_refused(tmp_path: Path) -> None:
    message = refused(tmp_path, doc_with(**{"upgrade.nodes": {"BTS1": {"mode": "package"}}}))
    assert "upgrade.nodes.BTS1: 'BTS1' is not one of the cluster's nodes (NODE1, NODE2)" in message


@pytest.mark.parametrize("folder", ["SSOBackup", "/tmp/sso", "C:SSOBackup", "\\\\server"])
def test_backup_folder_must_be_an_absolute_windows_path(tmp_path: Path, folder: str) -> None:
    message = refused(tmp_path, doc_with(**{"secret_backup.folder": folder}))
    assert f"secret_backup.folder: {folder!r} is not an absolute Windows path" in message


def test_unc_backup_folder_is_accepted(tmp_path: Path) -> None:
    inv = load_inventory(write(tmp_path, doc_with(**{"secret_backup.folder": "\\\\fs1\\backup\\SSO"})))
    assert inv.secret_backup.folder == "\\\\fs1\\backup\\SSO"


# --- the lab's inventory ---------------------------------------------------------------------------------
def fake_lab() -> SimpleNamespace:
    scenario = yaml.safe_load((ROOT / "entsso" / "lab" / "scenarios" / "default.yml").read_text())
    hosts = [n["name"] for n in scenario["cluster"]["nodes"]] + [b["name"] for b in scenario["biztalk"]["servers"]]
    return SimpleNamespace(scenario=scenario, addresses={h: f"127.0.0.{2 + i}" for i, h in enumerate(hosts)},
                           winrm_port=45985, sql_address="127.0.0.6", sql_endpoint=SimpleNamespace(port=41433),
                           username="LAB\\svc-entsso", sql_username="entsso", control_url="http://127.0.0.1:40000",
                           ca_path=Path("/tmp/entsso-lab-ca/ca.pem"))


def test_lab_inventory_of_the_default_scenario_loads(tmp_path: Path) -> None:
    inv = load_inventory(write(tmp_path, lab_inventory(fake_lab()), "lab-inventory.yml"))
    assert [(n.name, n.address) for n in inv.cluster.nodes] == [("NODE1", "127.0.0.2"), ("NODE2", "127.0.0.3")]
    assert [b.name for b in inv.biztalk_servers] == ["BTS1", "BTS2"]
    assert (inv.cluster.network_name, inv.cluster.primary) == ("SSOCLUSTER", "NODE1")
    assert (inv.winrm.transport, inv.winrm.https, inv.winrm.port) == ("ntlm", False, 45985)
    assert len(inv.sql.jobs) == 13 and inv.sql.backup_job == "Backup BizTalk Server (BizTalkMgmtDb)"
    assert (inv.lab.sql_address, inv.lab.sql_port, inv.lab.control_url) == (
        "127.0.0.6", 41433, "http://127.0.0.1:40000")
    # the lab's SQL Server is reached as an estate's: FreeTDS, TLS, its certificate checked against the lab CA
    assert (inv.sql.driver, inv.sql.encrypt, inv.sql.trust_server_certificate, inv.sql.ca_file) == (
        "FreeTDS", True, False, "/tmp/entsso-lab-ca/ca.pem")
    assert inv.upgrade_for("NODE2").target_version == "10.0.2000.0"
    assert inv.secret_backup.folder == "C:\\SSOBackup"
    assert inv.environment == "LAB"


def test_lab_inventory_carries_per_node_upgrade_overrides(tmp_path: Path) -> None:
    lab = fake_lab()
    lab.scenario["upgrade"]["nodes"] = {"NODE2": {"mode": "package", "exit_code": 3010}}
    inv = load_inventory(write(tmp_path, lab_inventory(lab), "lab-inventory.yml"))
    assert (inv.upgrade_for("NODE1").mode, inv.upgrade_for("NODE2").mode) == ("manual", "package")
    assert inv.upgrade_for("NODE2").package_path == lab.scenario["upgrade"]["package"]["path"]


def test_a_secret_written_as_the_variable_name_is_not_echoed(tmp_path: Path) -> None:
    message = refused(tmp_path, doc_with(**{"winrm.password_env": f"{CANARY} x"}))
    assert "winrm.password_env: is not an environment variable name" in message
    assert CANARY not in message
