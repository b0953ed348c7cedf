"""Run the product suite (`pytest tests_pre …`, `pytest --apply …`) as an operator would, in a child
process against a lab it starts itself, and read back what the run left: junit.xml, summary.json,
journal.jsonl and the lab's final state dump."""
from __future__ import annotations

import contextlib
import json
import os
import secrets
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class SuiteRun:
    returncode: int
    output: str
    dir: Path | None

    @property
    def outcomes(self) -> dict[str, str]:
        """Test name (with parameters) -> passed / failed / error / skipped, from junit.xml."""
        out: dict[str, str] = {}
        if not self.dir or not (self.dir / "junit.xml").exists():
            return out
        for case in ET.parse(self.dir / "junit.xml").getroot().iter("testcase"):
            state = "passed"
            for child in case:
                if child.tag in ("failure", "error", "skipped"):
                    state = {"failure": "failed"}.get(child.tag, child.tag)
            out[case.get("name", "")] = state
        return out

    def failed(self) -> set[str]:
        return {n for n, s in self.outcomes.items() if s in ("failed", "error")}

    def message(self, name: str) -> str:
        for case in ET.parse(self.dir / "junit.xml").getroot().iter("testcase"):  # type: ignore[operator]
            if case.get("name") == name:
                for child in case:
                    if child.tag in ("failure", "error"):
                        return (child.get("message") or "") + "\n" + (child.text or "")
        return ""

    @property
    def lab_state(self) -> dict[str, Any]:
        assert self.dir is not None
        return json.loads((self.dir / "lab-state.json").read_text())

    @property
    def summary(self) -> dict[str, Any]:
        assert self.dir is not None
        return json.loads((self.dir / "summary.json").read_text())

    def journal(self) -> list[dict[str, Any]]:
        assert self.dir is not None
        return [json.loads(line) for line in (self.dir / "journal.jsonl").read_text().splitlines() if line.strip()]


def _child_env(reports: Path, env: dict[str, str | None] | None) -> dict[str, str]:
    child_env = {k: v for k, v in os.environ.items() if not k.startswith(("ENTSSO_", "PYTEST_"))}
    # every run is a secrets canary: passwords the test did not choose are recognisable fresh values
    for name in SECRET_VARIABLES:
        child_env[name] = f"Canary-{name[7:11]}-{secrets.token_hex(6)}"
    child_env.update({"ENTSSO_REPORTS": str(reports)}, **(env or {}))
    return {k: v for k, v in child_env.items() if v is not None}  # None: the test wants it unset


def run_suite(reports: Path, *args: str, env: dict[str, str | None] | None = None, timeout: float = 600) -> SuiteRun:
    """`python -m pytest ARGS` from the project root with reports under `reports`; the new run dir."""
    return spawn_suite(reports, *args, env=env).wait(timeout)


@dataclass
class RunningSuite:
    """A suite run in progress (spawn_suite): signal it, watch its journal, then wait() for its SuiteRun."""

    proc: subprocess.Popen[str]
    reports: Path
    before: set[Path]
    env: dict[str, str]
    out: Any = None  # the output file

    @property
    def dir(self) -> Path | None:
        new = sorted(p for p in set(self.reports.iterdir()) - self.before if p.is_dir())
        return new[-1] if new else None

    def journal(self) -> list[dict[str, Any]]:
        d = self.dir
        if d is None or not (d / "journal.jsonl").exists():
            return []
        out = []
        for line in (d / "journal.jsonl").read_text().splitlines():
            with contextlib.suppress(json.JSONDecodeError):  # a line being written
                out.append(json.loads(line))
        return out

    def wait_for(self, predicate: Any, timeout: float = 120) -> list[dict[str, Any]]:
        """Poll the journal until predicate(records) holds (or the run ended: then fail)."""
        import time

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            records = self.journal()
            if predicate(records):
                return records
            if self.proc.poll() is not None:
                raise AssertionError(f"the run ended before the awaited moment: {self.output()[-2000:]}")
            time.sleep(0.01)
        raise AssertionError("the awaited moment did not come")

    def output(self) -> str:
        self.out.seek(0)
        return self.out.read()

    def wait(self, timeout: float = 600) -> SuiteRun:
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise
        run = SuiteRun(self.proc.returncode, self.output(), self.dir)
        self.out.close()
        leaks = find_secrets(run, [self.env[n] for n in SECRET_VARIABLES if len(self.env.get(n, "")) >= 8])
        assert not leaks, f"a secret leaked into {leaks}"
        return run


def spawn_suite(reports: Path, *args: str, env: dict[str, str | None] | None = None,
                command: list[str] | None = None) -> RunningSuite:
    """Start `python -m pytest ARGS` (or `command`, a typed command line's words after `pytest`)."""
    reports.mkdir(parents=True, exist_ok=True)
    before = set(reports.iterdir())
    child_env = _child_env(reports, env)
    out = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 - a file, not a pipe (a long run's output never blocks it); wait() closes it
    proc = subprocess.Popen([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", *(command or args)],
                            cwd=ROOT, env=child_env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                            text=True)  # never the developer's terminal: no prompt is answered by it
    return RunningSuite(proc, reports, before, child_env, out)


SECRET_VARIABLES = ("ENTSSO_WINRM_PASSWORD", "ENTSSO_SQL_PASSWORD", "ENTSSO_SECRET_PASSWORD")


def find_secrets(run: SuiteRun, values: list[str]) -> list[str]:
    """Where any of `values` appears: the run's output, or a file of its run directory."""
    hits = ["the run's output"] if any(v in run.output for v in values) else []
    if run.dir is not None:
        for path in run.dir.rglob("*"):
            if path.is_file():
                data = path.read_bytes()
                if any(v.encode() in data for v in values):
                    hits.append(str(path))
    return hits
