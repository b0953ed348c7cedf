"""Start and stop a lab process for a run (`pytest --lab`) or a selftest.

The lab runs as its own process (`python -m entsso.lab serve`), as an estate is another machine: the
suite talks to it only through WinRM, SQL and the control endpoint.
"""
from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class LabError(RuntimeError):
    pass


def _drain(stream: Any) -> None:
    try:
        for _ in iter(stream.readline, ""):
            pass
    except (OSError, ValueError):  # closed at stop()
        pass


@dataclass
class LabControl:
    """The control endpoint of a lab that runs elsewhere (started by hand; its inventory names it)."""

    control_url: str

    def state(self) -> dict[str, Any]:
        with urllib.request.urlopen(self.control_url + "/state", timeout=10) as resp:
            return json.loads(resp.read())

    def post(self, path: str, doc: dict[str, Any]) -> dict[str, Any]:
        req = urllib.request.Request(self.control_url + path, data=json.dumps(doc).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.loads(resp.read())


@dataclass
class LabProcess:
    scenario: str
    inventory_path: Path
    speed: float | None = None
    env: dict[str, str] = field(default_factory=dict)  # the credentials the suite must use
    capture: str | None = None  # serve this capture folder instead of `scenario` (entsso.lab.replay)
    control_url: str = ""
    _proc: subprocess.Popen[str] | None = None

    def start(self, timeout: float = 30.0) -> LabProcess:
        # an operator's own values win (a canary in a selftest, say); else fresh ones for this lab
        for name in ("ENTSSO_WINRM_PASSWORD", "ENTSSO_SQL_PASSWORD", "ENTSSO_SECRET_PASSWORD"):
            self.env.setdefault(name, os.environ.get(name) or secrets.token_urlsafe(18))
        shape = ["--capture", self.capture] if self.capture else ["--scenario", self.scenario]
        cmd = [sys.executable, "-m", "entsso.lab", "serve", *shape, "--write-inventory", str(self.inventory_path)]
        if self.speed:
            cmd += ["--speed", str(self.speed)]
        # secrets reach the child through its environment, never its argv
        # its own session: a Ctrl-C at the suite's terminal interrupts the run, not the estate it reports on
        # (the lab ends with its parent all the same: ENTSSO_LAB_PARENT)
        self._proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                      env={**os.environ, **self.env, "ENTSSO_LAB_PARENT": str(os.getpid())},
                                      start_new_session=True)
        deadline = time.monotonic() + timeout
        assert self._proc.stdout is not None
        line = ""
        while time.monotonic() < deadline:
            line = self._proc.stdout.readline()
            if line.startswith("entsso-lab ready"):
                break
            if self._proc.poll() is not None:
                err = self._proc.stderr.read() if self._proc.stderr else ""
                raise LabError(f"the lab exited before it was ready (scenario {self.scenario}): {err.strip()[-2000:]}")
        else:
            self.stop()
            raise LabError(f"the lab did not become ready within {timeout:.0f} s")
        fields = dict(part.split("=", 1) for part in line.split()[2:] if "=" in part)
        self.control_url = fields["control"]
        # keep both pipes drained for the lab's whole life: a full pipe would stall it mid-run
        for stream in (self._proc.stdout, self._proc.stderr):
            threading.Thread(target=_drain, args=(stream,), daemon=True).start()
        return self

    def state(self) -> dict[str, Any]:
        return LabControl(self.control_url).state()

    def post(self, path: str, doc: dict[str, Any]) -> dict[str, Any]:
        return LabControl(self.control_url).post(path, doc)

    def stop(self) -> None:
        if self._proc and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
        for stream in (self._proc.stdout, self._proc.stderr) if self._proc else ():
            if stream:
                stream.close()

    def __enter__(self) -> LabProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
