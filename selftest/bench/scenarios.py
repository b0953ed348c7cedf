"""The benchmark's estates: the default lab with latency (entsso/lab/scenarios/bench-default.yml) and
the scale estates of N BizTalk servers with 8 host instances each, written as scenario files that
extend it (the lab gives every host its own 127.0.0.x address, so 32 servers + 2 nodes is fine)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from entsso.lab.server import load_scenario

BASE = "bench-default"
LATENCY_REAL = 0.3  # seconds per WinRM call on the benchmark's clock (a real host is ~1 s)

# 8 host instances per server: 6 in-process that run, the isolated host, one in-process left stopped
# (phase 7 must leave it so). Names match the default's adapter handlers (ReceiveHost, SendHost).
HOST_INSTANCES: list[dict[str, Any]] = [
    {"host": "BizTalkServerApplication", "type": "InProcess", "state": "Running"},
    {"host": "BizTalkServerIsolatedHost", "type": "Isolated", "state": "Running"},
    {"host": "ReceiveHost", "type": "InProcess", "state": "Running"},
    {"host": "SendHost", "type": "InProcess", "state": "Running"},
    {"host": "OrchestrationHost", "type": "InProcess", "state": "Running"},
    {"host": "TrackingHost", "type": "InProcess", "state": "Running"},
    {"host": "EdiHost", "type": "InProcess", "state": "Running"},
    {"host": "ArchiveHost", "type": "InProcess", "state": "Stopped"},
]


def scale_scenario(servers: int, speed: float, latency_real: float = LATENCY_REAL) -> dict[str, Any]:
    """The default estate with `servers` BizTalk servers × 8 host instances (Rule Engine on the odd ones)."""
    return {
        "extends": BASE,
        "name": f"bench-scale-{servers}",
        "speed": speed,
        "latency_sec": latency_real * speed,
        "biztalk": {"servers": [
            {"name": f"BTS{i}", "host_instances": [dict(h) for h in HOST_INSTANCES],
             "rule_engine": "Running" if i % 2 else "Stopped"} for i in range(1, servers + 1)]},
    }


def default_scenario(speed: float, latency_real: float = LATENCY_REAL) -> dict[str, Any]:
    return {"extends": BASE, "name": f"bench-default-x{speed:g}", "speed": speed, "latency_sec": latency_real * speed}


def write(scenario: dict[str, Any], folder: Path) -> Path:
    """The scenario as a YAML file the suite's --lab takes; extends resolves against the bundled ones."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{scenario['name']}.yml"
    path.write_text(yaml.safe_dump(scenario, sort_keys=False))
    return path


def resolved(path: Path) -> dict[str, Any]:
    """The scenario as the lab sees it (extends merged)."""
    return load_scenario(str(path))
