"""BizTalk Server: host instances (MSBTS_HostInstance) and the Rule Engine Update service on each
BizTalk server, and the adapter handlers whose properties only SSO can decrypt."""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from entsso.winrm import RemoteError, WindowsHost

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


SERVICE_PREFIX = "BTSSvc$"


def parse_host_instances(host: str, doc: dict[str, Any]) -> tuple[HostInstance, ...]:
    """This server's in-process host instances, as the Windows services `BTSSvc$<HostName>` Get-HostFacts
    lists through the local SCM (a host instance of an in-process host *is* that service: docs/domain-notes.md),
    their state the SCM's status name. Isolated host instances (in IIS) have no service and are not listed:
    nothing here starts or stops them. Read without BizTalk's WMI provider, which would be a second hop."""
    out = []
    for name, svc in (doc.get("services") or {}).items():
        if name.startswith(SERVICE_PREFIX) and svc.get("exists"):
            host_name = name[len(SERVICE_PREFIX):]
            out.append(HostInstance(server=host, host_name=host_name, name=f"{host_name} on {host}",
                                    host_type="InProcess", state=svc.get("status") or "Unknown",
                                    disabled=svc.get("start_type") == "Disabled"))
    return tuple(out)


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


# what the SCM (through MSBTS_HostInstance.Stop) or Set-HostInstanceState say of an instance that is still
# stopping: ERROR_SERVICE_REQUEST_TIMEOUT's text (1053), or the script's own wait ending in StopPending
STILL_STOPPING = ("did not respond to the start or control request in a timely fashion", "(last state: StopPending)")


class HostInstanceDraining(RuntimeError):
    """A host instance asked to stop is still StopPending: BizTalk is finishing its in-flight work."""

    def __init__(self, server: str, host_name: str, said: str) -> None:
        super().__init__(
            f"BizTalk host instance {host_name} on {server} is still draining (StopPending: it is finishing its "
            f"in-flight work, which adapters such as MSMQ can make last minutes; Windows said: {said}). Do not "
            f"stop it again and do not end its BTSNTSvc process: wait until BTSSvc${host_name} on {server} shows "
            "Stopped (Get-Service, or BizTalk Administration's host instances), then continue. The continuing "
            "run sends it no second stop and waits for it; if it stays StopPending, read the Application event "
            f"log (source BizTalk Server) on {server}.")
        self.server, self.host_name = server, host_name


def draining_instance(text: str, wanted: list[tuple[str, str]]) -> str | None:
    """The host (of `wanted` ones to stop) that a Set-HostInstanceState failure says is still stopping."""
    if not any(marker in text for marker in STILL_STOPPING):
        return None
    quoted = re.search(r"[Hh]ost instance '([^']*)'", text)
    named = quoted.group(1) if quoted else text
    return next((n for n, s in wanted if s == "Stopped" and re.search(rf"\b{re.escape(n)}\b", named)), None)


def ensure_host_instances(host: WindowsHost, wanted: list[tuple[str, str]], timeout: float) -> list[dict[str, Any]]:
    """Start or stop in-process host instances as their services `BTSSvc$<HostName>` through this server's
    SCM (Set-ServiceState): one hop, where BizTalk's WMI provider (MSBTS_HostInstance) would read
    BizTalkMgmtDb as the caller, a second hop the default NTLM transport cannot make. One still draining
    after the stop is HostInstanceDraining (a StopPending service is sent no second stop: the script waits)."""
    if not wanted:
        return []
    try:
        doc = host.invoke("Set-ServiceState",
                          {"services": [{"name": SERVICE_PREFIX + n, "status": s} for n, s in wanted],
                           "timeout_sec": int(timeout)}, timeout=timeout * len(wanted) + 60)
    except RemoteError as exc:
        draining = draining_instance(str(exc), wanted)
        if draining is None:
            raise
        said = ("error 1053, the service did not respond to the start or control request in a timely fashion"
                if STILL_STOPPING[0] in str(exc) else f"not Stopped within {timeout:.0f} s, last state StopPending")
        raise HostInstanceDraining(host.name, draining, said) from None
    return [{"host_name": s["name"][len(SERVICE_PREFIX):], "state_before": s.get("status_before"),
             "state": s.get("status"), "changed": s.get("changed")} for s in doc.get("services") or []]


def adapter_handlers(host: WindowsHost) -> tuple[AdapterHandler, ...]:
    return parse_adapter_handlers(host.name, host.invoke("Get-AdapterHandlers", {}))

