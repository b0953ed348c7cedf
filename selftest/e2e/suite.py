"""Run the product suite (`pytest tests_pre …`, `pytest --apply …`) as an operator would, in a child
process against a lab it starts itself, and read back what the run left: junit.xml, summary.json,
journal.jsonl and the lab's final state dump."""
from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
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


def run_suite(reports: Path, *args: str, env: dict[str, str | None] | None = None, timeout: float = 600) -> SuiteRun:
    """`python -m pytest ARGS` from the project root with reports under `reports`; the new run dir."""
    reports.mkdir(parents=True, exist_ok=True)
    before = set(reports.iterdir())
    child_env = {k: v for k, v in os.environ.items() if not k.startswith(("ENTSSO_", "PYTEST_"))}
    # every run is a secrets canary: passwords the test did not choose are recognisable fresh values
    for name in SECRET_VARIABLES:
        child_env[name] = f"Canary-{name[7:11]}-{secrets.token_hex(6)}"
    child_env.update({"ENTSSO_REPORTS": str(reports)}, **(env or {}))
    child_env = {k: v for k, v in child_env.items() if v is not None}  # None: the test wants it unset
    proc = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", *args],
                          cwd=ROOT, env=child_env, capture_output=True, text=True, timeout=timeout)
    new = sorted(p for p in set(reports.iterdir()) - before if p.is_dir())
    run = SuiteRun(proc.returncode, proc.stdout + proc.stderr, new[-1] if new else None)
    leaks = find_secrets(run, [child_env[n] for n in SECRET_VARIABLES if len(child_env.get(n, "")) >= 8])
    assert not leaks, f"a secret leaked into {leaks}"
    return run


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
