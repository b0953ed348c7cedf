"""testinfra's WinRM backend as the suite builds it (entsso.change.sitechecks): the connection pywinrm gets is
the suite's own (transport, certificate check, timeouts, no proxy from the environment), and the password
is never part of a URL or a repr that a log, a traceback or a report could show."""
from __future__ import annotations

from pathlib import Path

from entsso.change import sitechecks
from entsso.remote.winrm import WindowsHost, WinRMSettings

SECRET = "Canary-Site-Pa$$:w@rd/1"


def _host(**settings):
    return WindowsHost("BTS1", "10.9.8.7", "CORP\\svc-entsso", SECRET, WinRMSettings(**settings))


class _Run:
    def __init__(self, **settings):
        self.hosts = {"BTS1": _host(**settings)}


def test_the_password_is_in_no_url_and_no_repr():
    h = sitechecks.testinfra_host(_Run(), "BTS1")
    b = h.backend
    assert b.conn_args["password"] == SECRET  # given to pywinrm as an argument
    assert SECRET not in b.conn_args["endpoint"] and SECRET not in repr(b) and SECRET not in repr(b.host)
    assert b.conn_args["endpoint"] == "https://10.9.8.7:5986/wsman"
    assert b.host.password is None and b.host.user is None  # testinfra's parsed hostspec holds none


def test_the_connection_is_the_suites_own():
    b = sitechecks.testinfra_host(_Run(transport="kerberos", https=False, port=5985, cert_validation=False,
                                       read_timeout=30, operation_timeout=10), "BTS1").backend
    assert b.conn_args["transport"] == "kerberos" and b.conn_args["endpoint"] == "http://10.9.8.7:5985/wsman"
    assert b.conn_args["server_cert_validation"] == "ignore"
    assert (b.conn_args["read_timeout_sec"], b.conn_args["operation_timeout_sec"]) == (30, 10)
    assert b.conn_args["proxy"] is None  # not requests' environment lookup ("legacy_requests")
    basic = sitechecks.testinfra_host(_Run(transport="basic"), "BTS1").backend
    assert basic.conn_args["transport"] == "plaintext"  # pywinrm's name for Basic


def test_the_folder_is_the_option_else_the_inventorys_relative_to_its_file(tmp_path):
    class Inv:
        path = tmp_path / "inv" / "prod.yml"
        site_checks = "checks"

    assert sitechecks.folder_of(Inv, None) == (tmp_path / "inv" / "checks").resolve()
    assert sitechecks.folder_of(Inv, str(tmp_path / "x")) == (tmp_path / "x").resolve()
    Inv.site_checks = None
    assert sitechecks.folder_of(Inv, None) is None
    assert sitechecks.is_site_check(tmp_path / "x" / "test_a.py", (tmp_path / "x").resolve())
    assert not sitechecks.is_site_check(Path("tests_pre/test_readiness.py"), (tmp_path / "x").resolve())
    assert not sitechecks.is_site_check(Path("tests_pre/test_readiness.py"), None)
