"""An in-process lab for tests that drive it with the real clients (pywinrm, testinfra, the suite's
own transports)."""
from __future__ import annotations

import secrets
from typing import Any, Callable

import pytest

from entsso.lab.server import Lab, _merge, load_scenario
from entsso.remote.winrm import CallLog, RetryPolicy, WindowsHost, WinRMSettings

WINRM_PASSWORD = "Lab-" + secrets.token_urlsafe(12)
SQL_PASSWORD = "Sql-" + secrets.token_urlsafe(12)


@pytest.fixture
def make_lab() -> Callable[..., Lab]:
    labs: list[Lab] = []

    def make(scenario: str = "fast", **overrides: Any) -> Lab:
        doc = _merge(load_scenario(scenario), overrides) if overrides else load_scenario(scenario)
        lab = Lab(doc, winrm_password=WINRM_PASSWORD, sql_password=SQL_PASSWORD)
        lab.start()
        labs.append(lab)
        return lab

    yield make
    for lab in labs:
        lab.stop()


def lab_host(lab: Lab, name: str, *, password: str = WINRM_PASSWORD, transport: str = "ntlm",
             calls: CallLog | None = None, call_timeout: float = 60.0, proxy: str | None = None,
             retry: RetryPolicy | None = None) -> WindowsHost:
    # as the lab's own inventory says: https, certificates validated against the lab's CA
    settings = WinRMSettings(transport=transport, https=lab.winrm_https, port=lab.winrm_port,
                             cert_validation=True, ca_trust_path=str(lab.ca_path), connect_timeout=3,
                             read_timeout=30, operation_timeout=2, call_timeout=call_timeout,
                             proxy=proxy, retry=retry or RetryPolicy(window=0.0))
    return WindowsHost(name, lab.addresses[name], lab.username, password, settings, calls)
