"""The person at the console during a manual upgrade: told exactly what to run on which node, and shown
progress while the suite waits. In a lab run the lab plays that person (it receives the instruction
through its control endpoint and runs Setup after a delay)."""
from __future__ import annotations

import logging
import sys
from typing import Any
from collections.abc import Callable


class Operator:
    def __init__(self, write: Callable[[str], None] | None = None, lab: Any = None) -> None:
        self._write = write or (lambda line: print(line, file=sys.stderr, flush=True))
        self.lab = lab
        self.instructions: list[str] = []

    def tell(self, line: str) -> None:
        logging.getLogger("entsso.operator").info("%s", line.strip())
        self._write(line)

    def instruct(self, node: str, text: str, target_version: str) -> None:
        self.instructions.append(text)
        logging.getLogger("entsso.operator").warning("%s", text.strip())
        self._write(text)
        if self.lab is not None:
            self.lab.post("/operator", {"action": "instruct", "host": node, "version": target_version})
