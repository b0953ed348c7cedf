"""The lab process: one simulated estate served on loopback.

`Lab(scenario).start()` builds the estate model, the SQL engine, one WS-Management endpoint per Windows
host (127.0.0.2, .3, …), the SQL endpoint (TDS with TLS, entsso.lab.tds; its certificate from the lab's
CA, entsso.lab.pki) and a control endpoint (127.0.0.1) for faults, the operator
and the state dump; `write_inventory()` writes the inventory that points the suite at it.
"""
from __future__ import annotations

import contextlib
import copy
import json
import os
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from entsso.lab import schema
from entsso.lab.clock import Clock
from entsso.lab.model import PSError
from entsso.lab.powershell import Faults, PowerShellBackend
from entsso.lab.schema import FAULT_KINDS  # noqa: F401 - where docs/lab.md says the kinds are


class ScenarioError(ValueError):
    pass


def _call_fault(fault: dict[str, Any]) -> bool:
    """Faults that fire on a call (an operation on a host, optionally its n-th call): fail, hang,
    wrong_output, and unreachable when it names an operation (the host drops off as that call arrives)."""
    kind = fault.get("kind")
    at_call = ("unreachable", "node_paused", "network_loss", "sql_unavailable", "group_failover", "slow_start")
    return kind in ("fail", "hang", "wrong_output") or (kind in at_call and bool(fault.get("operation"))) or (
        kind == "job_collision" and bool(fault.get("operation")) and fault.get("operation") != "sp_start_job")


def _merge(base: Any, over: Any) -> Any:
    if isinstance(base, dict) and isinstance(over, dict):
        out = dict(base)
        for k, v in over.items():
            out[k] = _merge(base.get(k), v) if k in base else copy.deepcopy(v)
        return out
    return copy.deepcopy(over)


def load_scenario(name_or_path: str | None) -> dict[str, Any]:
    """A bundled scenario by name (entsso/lab/scenarios/<name>.yml) or a YAML file; `extends: NAME`
    deep-merges it over another scenario (lists replace)."""
    name_or_path = name_or_path or "default"
    path = Path(name_or_path)
    if path.suffix in (".yml", ".yaml") and path.exists():
        text = path.read_text(encoding="utf-8")
        where = str(path)
    else:
        entry = resources.files("entsso.lab").joinpath("scenarios", f"{name_or_path}.yml")
        if not entry.is_file():
            known = sorted(p.name[:-4] for p in resources.files("entsso.lab").joinpath("scenarios").iterdir()
                           if p.name.endswith(".yml"))
            raise ScenarioError(f"no lab scenario {name_or_path!r}: give a YAML file or one of {', '.join(known)}")
        text = entry.read_text(encoding="utf-8")
        where = f"scenario {name_or_path}"
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ScenarioError(f"{where}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ScenarioError(f"{where}: the top level must be a mapping")
    parent = data.pop("extends", None)
    if parent:
        data = _merge(load_scenario(parent), data)
    check_scenario(data, where)
    return data


def check_scenario(data: dict[str, Any], where: str = "scenario") -> None:
    """Refuse a scenario that says anything the lab does not model (entsso.lab.schema): a key or value
    it would otherwise ignore, so a scenario can never claim a fault or behaviour the lab never plays."""
    found = schema.problems(data)
    if found:
        raise ScenarioError(f"{where}: the lab does not understand "
                            + ("this" if len(found) == 1 else f"these {len(found)} things") + ":\n"
                            + "\n".join(f"  - {p}" for p in found)
                            + "\nFix the scenario (docs/lab.md, Scenario reference, lists every key).")


def _free_port(addresses: list[str]) -> int:
    """A port free on every address (each host listens on its own address, all on this port)."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        ok = True
        for addr in addresses:
            with socket.socket() as s:
                try:
                    s.bind((addr, port))
                except OSError:
                    ok = False
                    break
        if ok:
            return port
    raise OSError("no free port on the lab's loopback addresses")


class Lab:
    """The whole simulated estate, in this process."""

    def __init__(self, scenario: dict[str, Any], *, winrm_password: str, sql_password: str,
                 speed: float | None = None, address_base: int = 2, replay: Any = None) -> None:
        from entsso.lab.model import Estate
        from entsso.lab.sqlengine import SqlEngine, split_instances
        from entsso.lab.wsman import HostEndpoint, WsmanServer

        check_scenario(scenario, f"scenario {scenario.get('name') or '(unnamed)'}")
        self.scenario = scenario
        self.clock = Clock(speed or float(scenario.get("speed", 50)))
        secret_server = scenario.get("sso", {}).get("secret_server", "")
        # one SQL Server instance, or two (sql.second_instance): the first holds the management database (and
        # adm_Server, the group's BizTalk servers)
        biztalk_servers = tuple(str(b["name"]) for b in (scenario.get("biztalk") or {}).get("servers") or [])
        admin_group = str(scenario.get("sso", {}).get("admin_group", "SSO Administrators"))
        self.sql_engines = [SqlEngine(sc, secret_server, self.clock, hosted=hosted, remote=remote,
                                      biztalk_servers=biztalk_servers if hosted is None else (),
                                      sso_admin_group=admin_group)
                            for sc, hosted, remote in split_instances(scenario.get("sql", {}))]
        self.sql = self.sql_engines[0]
        # the SSO service reads and writes SSODB where it lives
        self.ssodb_engine = next(e for e in self.sql_engines if "ssodb" in e.hosted)
        self.estate = Estate(scenario, self.clock, self.ssodb_engine)
        self.estate.sql_engines = self.sql_engines  # a SQL Server resource in a moved group (entsso/lab/cluster.py)
        # every SSO server of the estate registered itself in SSODB (the cluster's instance as its network
        # name), and so did those outside it that share SSODB (`sso.extra_servers`)
        self.sql.set_group("BizTalk Group", str((scenario.get("biztalk") or {}).get("group_sso_server")
                                                or self.estate.cluster_name))
        from entsso.lab.model import adapter_configs

        self.sql.set_adapter_handlers([(c["kind"], c["adapter"], c["host"], c["guid"])
                                       for c in adapter_configs(scenario.get("biztalk") or {})])
        self.ssodb_engine.register_sso_servers(self.estate.hosts + [self.estate.cluster_name]
                                               + list((scenario.get("sso") or {}).get("extra_servers") or []))
        # a captured estate (entsso.lab.replay): its tool texts served while the state they describe holds
        self.replay = replay
        if replay is not None:
            replay.texts.bind(self.estate)
        self.faults = Faults([f for f in scenario.get("faults") or [] if _call_fault(f)])
        winrm_cfg = scenario.get("winrm", {})
        self.username = winrm_cfg.get("username", "LAB\\svc-entsso")
        self.sql_username = scenario.get("sql", {}).get("username", "entsso")
        self.hosts: list[str] = list(self.estate.hosts)
        self.addresses = {h: f"127.0.0.{address_base + i}" for i, h in enumerate(self.hosts)}
        self.sql_address = f"127.0.0.{address_base + len(self.hosts)}"
        self.sql_addresses = [f"127.0.0.{address_base + len(self.hosts) + i}" for i in range(len(self.sql_engines))]
        self.winrm_port = _free_port(list(self.addresses.values()))
        self.backend = PowerShellBackend(self.estate, self.faults, self.clock.sleep,
                                         usernames={h: self.username for h in self.hosts},
                                         on_unreachable=lambda host: self.set_unreachable(host, True),
                                         on_job_collision=self.start_on_schedule,
                                         on_network_loss=lambda host, sec: self.network.begin(host, sec),
                                         on_sql_unavailable=lambda sec: self.sql_outages.begin(sec),
                                         on_group_failover=self.group_failover,
                                         on_slow_start=self.estate.slow_next_start)
        from entsso.lab.network import NetworkLosses
        from entsso.lab.sqloutage import SqlOutages

        self.group_failovers: list[dict[str, Any]] = []  # `group_failover` faults as they fired
        self.sql_outages = SqlOutages(self)  # `sql_unavailable` faults: SQL Server gone, for a while or until cleared

        self.network = NetworkLosses(self)  # `network_loss` faults: a host cut for a while (entsso.lab.network)
        latency = float(scenario.get("latency_sec", 0.0))
        endpoints = [HostEndpoint(h, self.addresses[h], self.winrm_port, self.username, winrm_password)
                     for h in self.hosts]
        # the lab's CA (entsso.lab.pki): each host's HTTPS listener has its own certificate from it, for its
        # name and its loopback address, and the written inventory validates against it
        from entsso.lab.pki import LabCA

        self.ca = LabCA(f"entsso lab CA ({scenario.get('name') or 'scenario'})")
        self.ca_path = self.ca.ca_path
        self.winrm_https = bool(winrm_cfg.get("https", True))
        tls: dict[str, tuple[str, str]] | None = None
        if self.winrm_https:
            issued = {h: self.ca.issue(h, addresses=[self.addresses[h]]) for h in self.hosts}
            tls = {h: (c.cert_path, c.key_path) for h, c in issued.items()}
        # over http the service is Windows' default (AllowUnencrypted=false: NTLM bodies must be sealed),
        # unless the scenario asks for basic over http, which only AllowUnencrypted=true serves
        self.wsman = WsmanServer(endpoints, self.backend, tls=tls,
                                 allow_unencrypted=not self.winrm_https and winrm_cfg.get("transport") == "basic",
                                 max_receive_wait=float(scenario.get("max_receive_wait_sec", 5)),
                                 request_latency=(lambda host: self.clock.real(latency)) if latency else None,
                                 # winrm/config/winrs IdleTimeout, estate seconds (Windows' default: 2 hours)
                                 shell_idle_timeout=self.clock.real(
                                     float(winrm_cfg.get("shell_idle_timeout_sec", 7200))))
        from entsso.lab.tds import TdsEndpoint

        # each SQL Server instance speaks TDS with a certificate from the lab's CA (the inventory names the CA
        # as sql.ca_file), issued to the instance's host name and the address it listens on
        # (sql.certificate_name: a certificate issued to another name, as after a rename or for an alias;
        # sql.tds8: false for a SQL Server before 2022, which resets a client that starts with TLS)
        # sql.certificate_issuer: "other": issued by a CA of its own that the inventory does not name (a private
        # CA the admin box does not trust)
        sql_cfg = scenario.get("sql") or {}
        self.sql_ca = LabCA("another CA (not the lab's)") if sql_cfg.get("certificate_issuer") == "other" else self.ca
        self.sql_certificates = [self.sql_ca.issue(sql_cfg.get("certificate_name") or e.server_name.split("\\")[0],
                                               dns_names=["localhost"], addresses=[a])
                                 for e, a in zip(self.sql_engines, self.sql_addresses, strict=True)]
        self.sql_endpoints = [TdsEndpoint(e, address=a, port=0, username=self.sql_username, password=sql_password,
                                          certificate=c, server_name=e.server_name,
                                          strict=bool(sql_cfg.get("tds8", True)))
                              for e, a, c in zip(self.sql_engines, self.sql_addresses, self.sql_certificates,
                                                 strict=True)]
        self.sql_endpoint = self.sql_endpoints[0]
        self._control: ThreadingHTTPServer | None = None
        self._timers: list[threading.Timer] = []
        self._unreachable: set[str] = set()
        self._stopping = threading.Event()

    # lifecycle
    def start(self) -> None:
        self.wsman.start()
        for ep in self.sql_endpoints:
            ep.start()
        self._control = ThreadingHTTPServer(("127.0.0.1", 0), _control_handler(self))
        self._control.daemon_threads = True
        # shutdown() waits for serve_forever's next poll: socketserver's 0.5 s default made every lab's stop
        # half a second slower, once per lab the selftests start (~150 per make test)
        threading.Thread(target=self._control.serve_forever, kwargs={"poll_interval": 0.05},
                         name="lab-control", daemon=True).start()
        for fault in self.scenario.get("faults") or []:
            self.apply_fault(fault)
        threading.Thread(target=self._watch_reachability, name="lab-reachability", daemon=True).start()

    def stop(self) -> None:
        self._stopping.set()
        self.network.stop()
        self.sql_outages.stop()
        for t in self._timers:
            t.cancel()
        if self._control:
            self._control.shutdown()
            self._control.server_close()
        self.wsman.stop()
        for ep in self.sql_endpoints:
            ep.stop()
        for e in self.sql_engines:
            e.close()  # cut SQL Agent jobs still running short
        self.ca.cleanup()  # the hosts' keys; an inventory keeps its own copy of the CA certificate
        if self.sql_ca is not self.ca:
            self.sql_ca.cleanup()

    @property
    def control_url(self) -> str:
        assert self._control is not None
        return f"http://127.0.0.1:{self._control.server_address[1]}"

    # faults
    def apply_fault(self, fault: dict[str, Any]) -> None:
        kind = fault.get("kind")
        found = schema.fault_problems(fault)
        if found:
            raise ScenarioError("the lab cannot inject this fault: " + "; ".join(found))
        if _call_fault(fault):
            if fault not in self.faults.faults:
                self.faults.add(fault)
        elif kind == "unreachable":
            host = fault["host"]
            after = float(fault.get("after_sec", 0))
            if after:
                t = threading.Timer(self.clock.real(after), self.set_unreachable, args=(host, True))
                t.daemon = True
                t.start()
                self._timers.append(t)
            else:
                self.set_unreachable(host, True)
        elif kind == "network_loss":  # without an operation: now, or after_sec from now
            self.network.schedule(fault["host"], float(fault["seconds"]), float(fault.get("after_sec", 0)))
        elif kind == "job_fails":
            for e in self.sql_engines[1:]:
                e.fail_job(fault["job"], fault.get("message", "The job failed (injected fault)."),
                           times=int(fault.get("times", 1)), step=fault.get("step"))
            self.sql.fail_job(fault["job"], fault.get("message", "The job failed (injected fault)."),
                              times=int(fault.get("times", 1)), step=fault.get("step"))
        elif kind == "job_collision":  # sp_start_job meets a scheduled run (entsso.lab.backupjob); else one starts now
            if fault.get("operation") == "sp_start_job":
                for e in self.sql_engines:
                    e.collide_on_start(fault["job"], int(fault.get("times", 1)))
            else:
                self.start_on_schedule(fault["job"])
        elif kind == "sql_unavailable":  # without an operation: now (or after_sec), for `seconds` or until cleared
            seconds = fault.get("seconds")
            self.sql_outages.schedule(float(seconds) if seconds is not None else None,
                                      float(fault.get("after_sec", 0)))
        elif kind == "installer_exit":
            self.estate.installer_exit[fault["host"]] = int(fault["exit_code"])
        elif kind == "group_failover":  # without an operation: now, or after_sec from now
            after = float(fault.get("after_sec", 0))
            if after:
                t = threading.Timer(self.clock.real(after), self.group_failover)
                t.daemon = True
                t.start()
                self._timers.append(t)
            else:
                self.group_failover()
        elif kind == "node_paused":  # without an operation: paused now
            self.estate.pause_node(str(fault.get("node") or fault["host"]))

    def group_failover(self) -> None:
        """The SSO group fails over on its own (a resource past its restart threshold), logged in the dump."""
        was = self.estate.group_failed_over()
        self.group_failovers.append({"at": self.clock.now().isoformat(), "from": was,
                                     "to": self.estate.cluster.owner if was else None})

    def start_on_schedule(self, job: str) -> None:
        """SQL Agent starts `job` as its schedule does, on the instance whose msdb has it (not if it runs)."""
        for e in self.sql_engines:
            with contextlib.suppress(LookupError):
                e.run_on_schedule(job)
                return

    def clear_faults(self) -> None:
        self.faults.clear()
        self.network.clear()
        self.sql_outages.clear()
        for host in list(self._unreachable):
            self.set_unreachable(host, False)
        for e in self.sql_engines:
            e.set_unavailable(False)
            e.clear_job_failures()
        self.estate.installer_exit.clear()
        for t in self._timers:  # an `unreachable` fault whose time has not come yet
            t.cancel()
        self._timers.clear()

    def set_unreachable(self, host: str, unreachable: bool) -> None:
        if unreachable:
            self._unreachable.add(host)
        else:
            self._unreachable.discard(host)
        self._sync_reachability(host)

    def _sync_reachability(self, host: str) -> None:
        up = self.estate.is_reachable(host)  # False while the model has the host down (a reboot)
        self.wsman.set_reachable(host, host not in self._unreachable and up, restarted=not up)

    def _watch_reachability(self) -> None:
        # a node that reboots goes away and comes back on the estate's own schedule
        while not self._stopping.wait(0.05):
            for host in self.hosts:
                with contextlib.suppress(Exception):  # the watcher must not die
                    self._sync_reachability(host)

    # state
    def dump(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario.get("name"),
            "speed": self.clock.speed,
            "estate_time": self.clock.now().isoformat().replace("+00:00", "Z"),
            "estate": self.estate.dump(),
            "sql": self._sql_dump(),
            "winrm": {"received": dict(self.backend.received), "stats": self.wsman.stats},
            "faults": {"active": self.faults.faults, "fired": self.faults.fired,
                       "unreachable": sorted(self._unreachable), "network_losses": self.network.dump(),
                       "sql_outages": self.sql_outages.dump(), "group_failovers": list(self.group_failovers)},
            "changes": self.estate.changes + sum(e.dump().get("counters", {}).get("changes", 0)
                                                 for e in self.sql_engines),
            **({"replay": self.replay.dump()} if self.replay is not None else {}),
        }

    def _sql_dump(self) -> dict[str, Any]:
        """The first instance's state; with a second one, its jobs merged in, SSODB's secret server from
        wherever SSODB lives, and the second instance's own state under `second_instance`."""
        doc = self.sql.dump()
        # how clients reached the first instance: sessions by encryption (tls, tls_strict, …), RPCs
        doc["endpoint"] = dict(self.sql_endpoint.counts)
        if len(self.sql_engines) > 1:
            other = self.sql_engines[1].dump()
            doc["jobs"] = {**doc["jobs"], **other["jobs"]}
            doc["secret_server"] = self.ssodb_engine.get_secret_server()
            doc["second_instance"] = {"server_name": other["server_name"], "jobs": sorted(other["jobs"]),
                                      "databases": list(self.sql_engines[1].databases),
                                      "counters": other["counters"]}
        return doc

    def write_inventory(self, path: str | os.PathLike[str]) -> Path:
        from entsso.lab.inventory import lab_inventory

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        # the CA certificate beside the inventory (public; the keys stay in the lab's private directory)
        # (WinRM's ca_trust_path with https, and SQL Server's ca_file always: its TDS is always TLS)
        ca_file = self.ca.write_certificate(path.with_name(path.stem + "-ca.pem")).resolve()
        doc = lab_inventory(self, ca_trust_path=str(ca_file) if self.winrm_https else None, sql_ca_file=str(ca_file))
        path.write_text("# Written by the lab (python -m entsso.lab serve); points the suite at it.\n"
                        + yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
        return path


def _control_handler(lab: Lab) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:  # quiet
            pass

        def _send(self, code: int, doc: Any) -> None:
            body = json.dumps(doc, default=str).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _body(self) -> Any:
            n = int(self.headers.get("Content-Length") or 0)
            return json.loads(self.rfile.read(n) or b"{}")

        def do_GET(self) -> None:  # noqa: N802
            if self.path == "/state":
                self._send(200, lab.dump())
            else:
                self._send(404, {"error": f"no such path {self.path}"})

        def do_POST(self) -> None:  # noqa: N802
            try:
                doc = self._body()
                if self.path == "/faults":
                    lab.apply_fault(doc)
                    self._send(200, {"ok": True})
                elif self.path == "/faults/clear":
                    lab.clear_faults()
                    self._send(200, {"ok": True})
                elif self.path == "/operator":
                    if doc.get("action") == "upgrade_now":
                        lab.estate.operator_upgrade_now(doc["host"], doc["version"])
                    else:
                        lab.estate.operator_instruct(doc["host"], doc["version"])
                    self._send(200, {"ok": True})
                else:
                    self._send(404, {"error": f"no such path {self.path}"})
            except (KeyError, ValueError, ScenarioError, PSError) as exc:
                self._send(400, {"error": str(exc)})

    return Handler
