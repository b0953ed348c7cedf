"""The admin box doctor (`python -m entsso doctor`) and the same checks at a run's start: each finding
probes the real thing on this machine (pyodbc's driver list, the Kerberos and CredSSP modules pywinrm
imports, the ticket cache, the CA file) and names the command that fixes it on Debian/Ubuntu, RHEL and
Windows. The expected outcome follows what this machine really has, so each test can fail both ways."""
from __future__ import annotations

import copy
import datetime
import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from entsso.tools import doctor
from entsso.inventory import DRIVERS
from entsso.lab.pki import LabCA
from selftest.e2e.suite import ROOT, run_suite

BASE: dict[str, Any] = {
    "environment": "TEST",
    "cluster": {"network_name": "SSOCLUSTER", "nodes": ["NODE1", "NODE2"], "primary": "NODE1"},
    "biztalk_servers": ["BTS1"],
    "sql": {"server": "SQL1", "auth": "sql", "username": "entsso", "password_env": "ENTSSO_SQL_PASSWORD"},
    "winrm": {"transport": "ntlm", "https": True, "username": "CORP\\svc-entsso", "password_env": "ENTSSO_WINRM_PASSWORD"},
    "secret_backup": {"folder": "C:\\SSOBackup", "password_env": "ENTSSO_SECRET_PASSWORD"},
    "upgrade": {"target_version": "10.0.2000.0", "mode": "manual"},
}


def installed_drivers() -> list[str]:
    import pyodbc

    return list(pyodbc.drivers())


def inventory(tmp_path: Path, *, sql: dict[str, Any] | None = None, winrm: dict[str, Any] | None = None) -> Path:
    doc = copy.deepcopy(BASE)
    doc["sql"].update(sql or {})
    doc["winrm"].update(winrm or {})
    path = tmp_path / "estate.yml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return path


def run_doctor(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "entsso", "doctor", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=60, env={**os.environ, **(env or {})})


def absent_driver() -> str:
    absent = [d for d in DRIVERS if d not in installed_drivers()]
    if not absent:
        pytest.skip("every driver the inventory may name is installed here")
    return absent[0]


def test_a_driver_this_machine_lacks_is_named_with_its_install_commands(tmp_path):
    driver = absent_driver()
    done = run_doctor(f"--inventory={inventory(tmp_path, sql={'driver': driver})}")
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"MISSING  ODBC driver: {driver!r} (sql.driver) is not installed; pyodbc.drivers() lists" in done.stdout
    for platform in ("Debian/Ubuntu:", "RHEL:", "Windows:"):
        assert platform in done.stdout
    if driver.startswith("ODBC Driver"):
        n = driver.split()[2]
        assert f"sudo ACCEPT_EULA=Y apt-get install -y msodbcsql{n}" in done.stdout
        assert f"sudo ACCEPT_EULA=Y dnf install -y msodbcsql{n}" in done.stdout
        assert "IACCEPTMSODBCSQLLICENSETERMS=YES" in done.stdout
    else:
        assert "sudo apt-get install -y tdsodbc" in done.stdout


def test_a_driver_this_machine_has_is_ok_and_nothing_is_missing(tmp_path):
    present = [d for d in DRIVERS if d in installed_drivers()]
    if not present:
        pytest.skip("no driver the inventory may name is installed here")
    done = run_doctor(f"--inventory={inventory(tmp_path, sql={'driver': present[0]})}")
    assert f"ok       ODBC driver: {present[0]!r} is installed" in done.stdout
    assert done.returncode == 0 and "nothing missing" in done.stdout, done.stdout


def test_kerberos_transport_needs_pywinrms_kerberos_module(tmp_path):
    path = inventory(tmp_path, winrm={"transport": "kerberos", "password_env": None})
    finding = next(f for f in doctor.check(_load(path)) if f.check == "Kerberos for WinRM")
    have = importlib.util.find_spec("kerberos") or importlib.util.find_spec("winkerberos")
    assert finding.ok == bool(have)
    if not have:
        assert "needs pykerberos" in finding.detail
        assert finding.fixes["Debian/Ubuntu"] == ("sudo apt-get install -y gcc python3-dev libkrb5-dev krb5-user && "
                                                  "pip install 'entsso-upgrade[kerberos]'")
        assert "krb5-devel" in finding.fixes["RHEL"] and "entsso-upgrade[kerberos]" in finding.fixes["Windows"]


def test_a_missing_kerberos_ticket_is_found_for_sql_kerberos_auth(tmp_path, monkeypatch):
    monkeypatch.setenv("KRB5CCNAME", f"FILE:{tmp_path / 'no-such-ccache'}")  # an empty ticket cache
    path = inventory(tmp_path, sql={"auth": "kerberos", "username": None, "password_env": None})
    finding = next(f for f in doctor.check(_load(path)) if f.check == "Kerberos ticket")
    assert not finding.ok and not finding.warning
    if importlib.util.find_spec("gssapi"):
        assert finding.detail.startswith("no usable Kerberos ticket")
    elif shutil.which("klist"):
        assert finding.detail == "no Kerberos ticket, or only expired ones (klist -s)"
    else:
        assert finding.detail.startswith("klist is not installed")
        assert finding.fixes["Debian/Ubuntu"] == "sudo apt-get install -y krb5-user"


def test_credssp_transport_needs_requests_credssp(tmp_path):
    path = inventory(tmp_path, winrm={"transport": "credssp"})
    finding = next(f for f in doctor.check(_load(path)) if f.check == "CredSSP for WinRM")
    assert finding.ok == bool(importlib.util.find_spec("requests_credssp"))
    if not finding.ok:
        assert finding.fixes["Debian/Ubuntu"] == "pip install 'entsso-upgrade[credssp]'"


def test_ntlm_over_https_needs_neither_kerberos_nor_credssp(tmp_path):
    checks = {f.check for f in doctor.check(_load(inventory(tmp_path)))}
    assert not checks & {"Kerberos for WinRM", "Kerberos ticket", "CredSSP for WinRM"}
    assert "Certificate trust" in checks


def test_a_ca_trust_path_that_is_missing_is_not_pem_or_has_expired_is_named(tmp_path):
    missing = doctor.ca_finding(str(tmp_path / "none.pem"))
    assert not missing.ok and "cannot be read (No such file or directory)" in missing.detail
    garbage = tmp_path / "ca.der"
    garbage.write_bytes(b"\x30\x82 not a PEM file")
    assert "holds no PEM certificate" in doctor.ca_finding(str(garbage)).detail
    ca = LabCA("estate CA")
    pem = ca.write_certificate(tmp_path / "ca.pem")
    ca.cleanup()
    good = doctor.ca_finding(str(pem))
    assert good.ok and "1 certificate(s), CN=estate CA" in good.detail
    later = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=400)
    expired = doctor.ca_finding(str(pem), now=later)
    assert not expired.ok and "outside its validity period (CN=estate CA)" in expired.detail
    assert "winrm.ca_trust_path" in expired.fixes["Windows"]


def test_sql_ca_file_is_checked_for_what_the_driver_can_do_with_it(tmp_path):
    from entsso.inventory.schema import Sql

    def sql(**kw: Any) -> Any:
        return Sql.model_validate({"server": "SQL1", **kw})

    ca = LabCA("SQL estate CA")
    pem = ca.write_certificate(tmp_path / "ca.pem")
    leaf = Path(ca.issue("SQL1").cert_path).read_text().split("-----END CERTIFICATE-----")[0]
    (tmp_path / "leaf.pem").write_text(leaf + "-----END CERTIFICATE-----\n")
    ca.cleanup()
    good = doctor.sql_trust_finding(sql(ca_file=str(pem)), platform="linux")
    assert good.ok and "1 CA certificate(s), CN=SQL estate CA" in good.detail and "SSL_CERT_FILE" in good.detail
    freetds = doctor.sql_trust_finding(sql(ca_file=str(pem), driver="FreeTDS"), platform="linux")
    assert freetds.ok and "freetds.conf" in freetds.detail
    windows = doctor.sql_trust_finding(sql(ca_file=str(pem)), platform="win32")
    assert windows.blocks and "Windows' certificate store only" in windows.detail
    assert "Cert:\\LocalMachine\\Root" in windows.fixes["Windows"]
    not_ca = doctor.sql_trust_finding(sql(ca_file=str(tmp_path / "leaf.pem")), platform="linux")
    assert not_ca.blocks and "holds no CA certificate (CN=SQL1)" in not_ca.detail
    missing = doctor.sql_trust_finding(sql(ca_file=str(tmp_path / "none.pem")), platform="linux")
    assert missing.blocks and "cannot be read" in missing.detail
    later = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=400)
    assert "outside its validity period" in doctor.sql_trust_finding(sql(ca_file=str(pem)), "linux", later).detail
    system = doctor.sql_trust_finding(sql(), platform="linux")
    assert system.ok and "OpenSSL's trust" in system.detail
    unchecked = doctor.sql_trust_finding(sql(driver="FreeTDS"), platform="linux")
    assert unchecked.warning and not unchecked.blocks and "trusts any certificate" in unchecked.detail


def test_a_run_is_refused_before_it_connects_when_the_machine_lacks_what_the_inventory_needs(tmp_path):
    driver = absent_driver()
    path = inventory(tmp_path, sql={"driver": driver})
    env = {"ENTSSO_WINRM_PASSWORD": "x", "ENTSSO_SQL_PASSWORD": "y", "ENTSSO_SECRET_PASSWORD": "z"}
    run = run_suite(tmp_path / "reports", f"--inventory={path}", "tests_pre", "-m", "readiness", env=env)
    assert run.returncode == 4, run.output[-2000:]
    assert f"this machine lacks what {path} needs; nothing was contacted" in run.output
    assert f"{driver!r} (sql.driver) is not installed" in run.output
    assert run.dir is None  # a refused run leaves no run folder


def _load(path: Path) -> Any:
    from entsso.inventory import check_inventory

    return check_inventory(path)
