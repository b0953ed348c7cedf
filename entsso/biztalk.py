"""BizTalk Server: host instances (MSBTS_HostInstance) and the Rule Engine Update service on each
BizTalk server, and the adapter handlers whose properties only SSO can decrypt."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from entsso.winrm import WindowsHost

RULE_ENGINE = "RuleEngineUpdateService"


@dataclass(frozen=True)
class HostInstance:
    server: str
    host_name: str
    name: str
    host_type: str  # InProcess | Isolated
    state: str  # Stopped, StartPending, StopPending, Running, … Unknown
    disabled: bool

    @property
    def in_process(self) -> bool:
        return self.host_type == "InProcess"

    @property
    def service_name(self) -> str | None:
        return f"BTSSvc${self.host_name}" if self.in_process else None


def parse_host_instances(host: str, doc: dict[str, Any]) -> tuple[HostInstance, ...]:
    return tuple(HostInstance(server=h.get("running_server") or host, host_name=h["host_name"],
                              name=h.get("name") or h["host_name"], host_type=h.get("host_type", "InProcess"),
                              state=h.get("service_state", "Unknown"), disabled=bool(h.get("is_disabled")))
                 for h in doc.get("host_instances") or [])


@dataclass(frozen=True)
class AdapterHandler:
    seen_from: str
    kind: str  # receive | send
    adapter: str
    host_name: str
    readable: bool
    property_count: int
    error_code: str | None
    error: str | None


def parse_adapter_handlers(host: str, doc: dict[str, Any]) -> tuple[AdapterHandler, ...]:
    return tuple(AdapterHandler(host, h["kind"], h["adapter"], h.get("host_name", ""), bool(h.get("readable")),
                                int(h.get("property_count") or 0), h.get("error_code"), h.get("error"))
                 for h in doc.get("handlers") or [])


def ensure_host_instances(host: WindowsHost, wanted: list[tuple[str, str]], timeout: float) -> list[dict[str, Any]]:
    """Start or stop host instances through BizTalk's WMI provider (Set-HostInstanceState)."""
    if not wanted:
        return []
    doc = host.invoke("Set-HostInstanceState",
                      {"host_instances": [{"host_name": n, "state": s} for n, s in wanted],
                       "timeout_sec": int(timeout)}, timeout=timeout * len(wanted) + 60)
    return list(doc.get("host_instances") or [])


def adapter_handlers(host: WindowsHost) -> tuple[AdapterHandler, ...]:
    return parse_adapter_handlers(host.name, host.invoke("Get-AdapterHandlers", {}))

