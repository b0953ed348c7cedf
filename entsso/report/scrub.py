"""Secrets out of the evidence: every report pytest-html sees, and every file of the run directory at the end."""
from __future__ import annotations

import os
from pathlib import Path


def secret_values() -> list[str]:
    """Every secret this process knows of: the values of the environment variables the inventory names
    (and the lab's), never shorter than 4 characters (a shorter one would scrub ordinary text)."""
    names = {n for n in os.environ if n.endswith("PASSWORD") or n.startswith("ENTSSO_") and "SECRET" in n}
    return sorted({os.environ[n] for n in names if len(os.environ.get(n, "")) >= 4}, key=len, reverse=True)


def scrub(text: str, secrets: list[str]) -> str:
    for s in secrets:
        text = text.replace(s, "***")
    return text


def scrub_dir(folder: Path, secrets: list[str]) -> int:
    """Replace every secret in every file under folder; returns how many files had one."""
    hit = 0
    if not secrets or not folder.exists():
        return 0
    for path in folder.rglob("*"):
        if not path.is_file():
            continue
        data = path.read_bytes()
        new = data
        for s in secrets:
            new = new.replace(s.encode(), b"***")
        if new != data:
            path.write_bytes(new)
            hit += 1
    return hit
