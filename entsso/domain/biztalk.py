"""BizTalk Server: host instances (their BTSSvc$ services) and the Rule Engine Update service on each
BizTalk server, and the adapter handlers whose properties only SSO can decrypt (listed from BizTalkMgmtDb
over ODBC, read through the local SSO service: no BizTalk WMI, no second hop)."""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from entsso.domain import services
from entsso.remote import tsql
from entsso.remote.winrm import RemoteError, WindowsHost
from entsso.domain.errors import DomainError
from entsso.domain.outcome import Outcome

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
class HandlerConfig:
    """One adapter handler as BizTalkMgmtDb lists it, with what names its configuration in SSO."""
    kind: str  # receive | send
    adapter: str  # adm_Adapter.Name: the SSO application of its configuration (UNCONFIRMED: docs/domain-notes.md)
    host_name: str
    config_id: str  # "{GUID}": adm_*Handler.uidCustomCfgID, the SSO config info's identifier


_GUID = re.compile(r"^\{?([0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12})\}?$")


def parse_handler_rows(rows: list[dict[str, Any]]) -> tuple[HandlerConfig, ...]:
    """tsql.ADAPTER_HANDLERS' rows. A row that is not what the statement selects is one clear error."""
    out = []
    for i, row in enumerate(rows):
        kind, adapter, cfg = row.get("kind"), row.get("adapter"), row.get("config_id")
        m = _GUID.match(str(cfg or "").strip())
        if kind not in ("receive", "send") or not adapter or m is None:
            raise ValueError(f"BizTalkMgmtDb's adapter handlers (tsql.ADAPTER_HANDLERS), row {i + 1}: expected a kind "
                             f"receive/send, an adapter name and a uidCustomCfgID GUID, got {row!r}")
        out.append(HandlerConfig(kind, str(adapter), str(row.get("host_name") or ""), "{" + m.group(1).upper() + "}"))
    return tuple(out)


def handler_configs(sql: Any) -> tuple[HandlerConfig, ...]:
    """The group's adapter handlers, read from BizTalkMgmtDb over ODBC from the admin box (one hop)."""
    found = parse_handler_rows(sql.execute(tsql.ADAPTER_HANDLERS, database="BizTalkMgmtDb").rows)
    return tuple(sorted(found, key=lambda c: (c.kind, c.adapter.lower(), c.host_name.lower())))


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


# ISSOConfigStore.GetConfigInfo's run-time (lookup) mode: "only the SSO server on the current computer", and the
# masked properties too (those SSO must decrypt). 4 as the public SSO helpers pass it (docs/domain-notes.md).
SSO_FLAG_RUNTIME = 0x4


def parse_adapter_reads(host: str, configs: tuple[HandlerConfig, ...],
                        doc: dict[str, Any]) -> tuple[AdapterHandler, ...]:
    """Get-AdapterHandlers' raw reads -> one AdapterHandler per config asked for. Readable: GetConfigInfo returned
    (no HRESULT) and filled the bag with at least one property — an empty bag proves nothing was decrypted."""
    reads = doc.get("reads")
    if not isinstance(reads, list):
        raise ValueError(f"Get-AdapterHandlers on {host} returned no 'reads' list: {str(doc)[:300]}")
    by_key = {(str(r.get("application", "")).lower(), str(r.get("identifier", "")).upper()): r
              for r in reads if isinstance(r, dict)}
    out = []
    for c in configs:
        r = by_key.get((c.adapter.lower(), c.config_id.upper()))
        if r is None:
            raise ValueError(f"Get-AdapterHandlers on {host} returned no read for {c.kind} handler {c.adapter} "
                             f"({c.config_id}): {str(reads)[:300]}")
        code, count = r.get("hresult"), r.get("property_count")
        if code is None and not isinstance(count, int):
            raise ValueError(f"Get-AdapterHandlers on {host}: a read of {c.adapter} ({c.config_id}) without an "
                             f"HRESULT or a property count: {r!r}")
        readable = code is None and isinstance(count, int) and count > 0  # no HRESULT: a count (checked above)
        error = r.get("error") if code is not None else (None if readable else
                                                         "GetConfigInfo returned no property (nothing was decrypted)")
        out.append(AdapterHandler(host, c.kind, c.adapter, c.host_name, readable, int(count or 0),
                                  str(code) if code is not None else None, error))
    return tuple(out)


# what the SCM says of an instance that is still stopping: ERROR_SERVICE_REQUEST_TIMEOUT's text (1053), or
# Set-ServiceState's own wait ending in StopPending
STILL_STOPPING = ("did not respond to the start or control request in a timely fashion", "(last state: StopPending)")


class HostInstanceDraining(DomainError, RuntimeError):
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
    """The host (of `wanted` ones to stop) that a Set-ServiceState failure says is still stopping."""
    if not any(marker in text for marker in STILL_STOPPING):
        return None
    quoted = re.search(r"[Hh]ost instance '([^']*)'", text)
    named = quoted.group(1) if quoted else text
    return next((n for n, s in wanted if s == "Stopped" and re.search(rf"\b{re.escape(n)}\b", named)), None)


def ensure_host_instances(host: WindowsHost, wanted: list[tuple[str, str]], timeout: float) -> Outcome:
    """Start or stop in-process host instances as their services `BTSSvc$<HostName>` through this server's
    SCM (Set-ServiceState): one hop, where BizTalk's WMI provider (MSBTS_HostInstance) would read
    BizTalkMgmtDb as the caller, a second hop the default NTLM transport cannot make. One still draining
    after the stop is HostInstanceDraining (a StopPending service is sent no second stop: the script waits)."""
    if not wanted:
        return Outcome.of_documents([])
    try:
        got = services.ensure_services(host, [(SERVICE_PREFIX + n, s) for n, s in wanted], timeout)
    except RemoteError as exc:
        draining = draining_instance(str(exc), wanted)
        if draining is None:
            raise
        said = ("error 1053, the service did not respond to the start or control request in a timely fashion"
                if STILL_STOPPING[0] in str(exc) else f"not Stopped within {timeout:.0f} s, last state StopPending")
        raise HostInstanceDraining(host.name, draining, said) from None
    return Outcome.of_documents([{"host_name": s["name"][len(SERVICE_PREFIX):], "state_before": s.get("status_before"),
                                  "state": s.get("status"), "changed": s.get("changed")} for s in got.evidence])


def adapter_handlers(host: WindowsHost, configs: tuple[HandlerConfig, ...]) -> tuple[AdapterHandler, ...]:
    """Each handler's configuration read through `host`'s own ENTSSO service (run-time mode: local only), which
    reaches SSODB with its service account: one hop, and a proof that this SSO service can decrypt."""
    if not configs:
        return ()
    doc = host.invoke("Get-AdapterHandlers", {
        "flags": SSO_FLAG_RUNTIME,
        "configs": [{"application": c.adapter, "identifier": c.config_id} for c in configs]})
    return parse_adapter_reads(host.name, configs, doc)



def unreadable_in(reads: list[dict[str, Any]]) -> str | None:
    """What phase 6 will meet when a handler cannot be read through the owner's ENTSSO: each handler with its
    adapter, host, HRESULT and text; None when every handler was read."""
    bad = [r for r in reads if not r.get("readable")]
    if not bad:
        return None
    shown = "; ".join(f"{r['kind']} handler {r['adapter']} (host {r['host_name']}): {r['error_code']} {r['error']}"
                      for r in bad[:5])
    return (f"{len(bad)} of {len(reads)} adapter handler(s) could not be read through SSO on {bad[0]['seen_from']}: "
            f"{shown}{' …' if len(bad) > 5 else ''}. Phase 6 reads every handler this way on every node and would "
            "stop there with BizTalk down: fix it before the change (the handler's configuration in SSO, the "
            "master secret on this node, or ENTSSO's account)")
