"""Issue 25 item 7: on a terminal, a change to an inventory whose `environment` says production asks the
operator to type the ticket again, before anything connects; a wrong answer changes nothing. No prompt
when stdin is not a terminal."""
from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
import time

import yaml

from selftest.e2e.suite import ROOT, _child_env, run_suite


def production(lab, tmp_path) -> str:
    inv = yaml.safe_load(lab.inventory_path.read_text())
    inv["environment"] = "PRODUCTION"
    path = tmp_path / "prod.yml"
    path.write_text(yaml.safe_dump(inv, sort_keys=False))
    return str(path)


def on_a_terminal(args: list[str], env: dict[str, str], answer: str, reports) -> tuple[int, str]:
    master, slave = os.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", *args], cwd=ROOT,
                            env=_child_env(reports, env), stdin=slave, stdout=slave, stderr=slave)
    os.close(slave)
    seen: list[bytes] = []

    def drain() -> None:
        with contextlib.suppress(OSError):
            while chunk := os.read(master, 65536):
                seen.append(chunk)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    deadline = time.monotonic() + 60
    while b"Type the change ticket again" not in b"".join(seen):
        assert time.monotonic() < deadline and proc.poll() is None, b"".join(seen).decode(errors="replace")[-2000:]
        time.sleep(0.05)
    os.write(master, answer.encode() + b"\n")
    rc = proc.wait(120)
    reader.join(5)
    os.close(master)
    return rc, b"".join(seen).decode(errors="replace")


def test_production_on_a_terminal_asks_for_the_ticket_again(start_lab, tmp_path):
    lab = start_lab("package")
    args = [f"--inventory={production(lab, tmp_path)}", "--apply", "--change-ticket", "CHG-PROD-1"]
    rc, output = on_a_terminal(args, dict(lab.env), "CHG-PROD-2", tmp_path / "r")
    assert rc == 4, output[-2000:]
    assert "PRODUCTION is production: you are about to change it for change CHG-PROD-1" in output
    assert "the ticket typed again ('CHG-PROD-2') is not CHG-PROD-1: nothing was done" in output
    assert lab.state()["changes"] == 0
    rc, output = on_a_terminal(args, dict(lab.env), "CHG-PROD-1", tmp_path / "r")
    assert rc == 0, output[-3000:]
    assert "entsso: COMPLETED" in output


def test_production_without_a_terminal_asks_nothing(start_lab, tmp_path):
    lab = start_lab("package")
    run = run_suite(tmp_path / "r", f"--inventory={production(lab, tmp_path)}", "--apply", "--change-ticket",
                    "CHG-PROD-3", env=dict(lab.env))
    assert run.returncode == 0 and run.summary["verdict"] == "completed", run.output[-3000:]
    assert "Type the change ticket again" not in run.output
    assert "— estate PRODUCTION (" in run.output
