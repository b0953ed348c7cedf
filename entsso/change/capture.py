"""What the estate said, kept as test data: every remote call's answer is written under
reports/<run>/capture/, so a first run on a real estate yields the transcripts that show where the suite is
wrong (docs/operations.md, "Sending a capture with a bug report").

- capture/winrm/<n>-<Operation>-<HOST>.json: each script's whole JSON document, as it came back (keys that
  name a secret are redacted, as in the call log);
- capture/<tool>/<case>.txt (+ .json): each tool text the suite parses — `ssomanage -displaydb` (from
  Get-HostFacts and from Set-SsoServer before and after), `ssomanage -updatedb` (Update-SsoDatabase), an
  update package's exit code (Install-SsoUpdate) — whole and verbatim, in selftest/transcripts' format:
  `# source: captured from HOST at TIME by entsso-upgrade VERSION`, `# exit_code: N`, then the text; the
  .json is what the suite's parser made of it then (or that it raised, and why), so the case replays
  through the transcript test as it stands;
- capture/sql/<n>-<database>.json: each statement's answer (the statement's text, never its parameters; every
  result set's rows and the server's messages), and capture/inventory.json: the inventory as the run read it
  (no secrets: they live in the environment) — with the documents above, what `python -m entsso.lab serve
  --capture` shapes a lab from (entsso.lab.replay).
Nothing here changes a run: a capture that cannot be written is logged and skipped."""
from __future__ import annotations

import base64
import hashlib
import itertools
import json
import logging
import re
import threading
from collections.abc import Callable
from dataclasses import asdict, is_dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from entsso.domain import installer, sso
from entsso.remote.sql import Result, StatementRecord
from entsso.remote.winrm import CallRecord

log = logging.getLogger("entsso.capture")

# (tool folder, case word) -> the parser selftest/transcripts' runner uses for it (stdout, stderr, exit_code)
PARSERS: dict[tuple[str, str], Callable[[str, str, int], Any]] = {
    ("ssomanage", "displaydb"): sso.parse_displaydb,
    ("ssomanage", "updatedb"): sso.parse_tool_answer,
    ("msiexec", "exit"): installer.parse_installer_exit,
}


def _version() -> str:
    try:
        return metadata.version("entsso-upgrade")
    except metadata.PackageNotFoundError:
        return "unknown"


def _plain(value: Any) -> Any:
    return json.loads(json.dumps(asdict(value) if is_dataclass(value) and not isinstance(value, type) else value,
                                 default=str))


def _label(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)


class Capture:
    """A CallLog listener (entsso.remote.winrm.CallLog.listeners) writing each call's answer under `folder`."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._seq = itertools.count(1)
        self._sql_seq = itertools.count(1)
        self._lock = threading.Lock()
        self.version = _version()

    def __call__(self, record: CallRecord) -> None:
        if record.answer is None:
            return
        try:
            self._write(record)
        except OSError as exc:  # evidence must not stop the change
            log.warning("capture of %s on %s not written: %s", record.operation, record.host, exc)

    def inventory(self, inventory: Any) -> None:
        """The inventory the run read (a pydantic Inventory; its secrets are private attributes, never dumped),
        without the lab's endpoints (another lab serves a capture)."""
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            doc = inventory.model_dump(mode="json", exclude={"lab"})
            (self.folder / "inventory.json").write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
        except (OSError, AttributeError, TypeError, ValueError) as exc:
            log.warning("capture of the inventory not written: %s", exc)

    def statement(self, server: str, record: StatementRecord, answer: Result | None) -> None:
        """A StatementLog listener (entsso.remote.sql.StatementLog.listeners): each answered statement."""
        if answer is None:
            return
        try:
            with self._lock:
                n = next(self._sql_seq)
            at = datetime.fromtimestamp(record.started, UTC).isoformat(timespec="seconds")
            doc = {"source": f"captured from {server} at {at} by entsso-upgrade {self.version} ({record.database})",
                   "server": server, "database": record.database, "statement": record.sql,
                   "sets": answer.sets, "messages": answer.messages}
            folder = self.folder / "sql"
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"{n:04d}-{_label(record.database)}.json").write_text(
                json.dumps(doc, indent=2, default=_sql_value), encoding="utf-8")
        except OSError as exc:  # evidence must not stop the change
            log.warning("capture of a statement on %s not written: %s", server, exc)

    def _write(self, record: CallRecord) -> None:
        with self._lock:
            n = next(self._seq)
        at = datetime.fromtimestamp(record.started, UTC).isoformat(timespec="seconds")
        source = f"captured from {record.host} at {at} by entsso-upgrade {self.version} ({record.operation})"
        answer = _without_file_contents(record.answer or {})
        winrm = self.folder / "winrm"
        winrm.mkdir(parents=True, exist_ok=True)
        (winrm / f"{n:04d}-{record.operation}-{_label(record.host)}.json").write_text(
            json.dumps({"source": source, "answer": answer}, indent=2, default=str), encoding="utf-8")
        for tool, word, part, raw in _tool_texts(record.operation, answer):
            self._case(tool, f"{word}-{_label(record.host)}-{n:04d}{part}", source, raw)

    def _case(self, tool: str, case: str, source: str, raw: dict[str, Any]) -> None:
        exit_code = raw.get("exit_code")
        text = str(raw.get("stdout") or "") + str(raw.get("stderr") or "")
        folder = self.folder / tool
        folder.mkdir(parents=True, exist_ok=True)
        head = f"# source: {source}\n" + (f"# exit_code: {exit_code}\n" if exit_code is not None else "")
        (folder / f"{case}.txt").write_bytes((head + text).encode("utf-8"))
        parser = PARSERS[(tool, case.split("-", 1)[0])]
        try:
            expected: Any = _plain(parser(text, "", exit_code if isinstance(exit_code, int) else 0))
        except Exception as exc:  # noqa: BLE001 - what the parser said of it is the case's expectation
            expected = {"raises": type(exc).__name__, "message_contains": [str(exc)[:200]]}
        (folder / f"{case}.json").write_text(json.dumps(expected, indent=2) + "\n", encoding="utf-8")


def _sql_value(value: Any) -> Any:
    """A column value JSON has no type for: datetimes as ISO text, binary as hex."""
    if isinstance(value, (bytes, bytearray)):
        return "0x" + bytes(value).hex().upper()
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


def _without_file_contents(answer: dict[str, Any]) -> dict[str, Any]:
    """Read-File's content (a change record, or the master secret backup itself) never goes into a run folder,
    which is attached to change tickets: its size and SHA-256 stand for it."""
    if "content_b64" not in answer:
        return answer
    data = base64.b64decode(str(answer["content_b64"]))
    return {**{k: v for k, v in answer.items() if k != "content_b64"},
            "content_b64": f"(not kept: {len(data)} bytes, sha256 {hashlib.sha256(data).hexdigest()})"}


def _tool_texts(operation: str, answer: dict[str, Any]) -> list[tuple[str, str, str, dict[str, Any]]]:
    """The raw tool outputs a script's document carries: (tool folder, case word, which of the call's texts,
    {stdout, stderr, exit_code})."""
    out: list[tuple[str, str, str, dict[str, Any]]] = []

    def text(raw: Any) -> dict[str, Any] | None:
        return raw if isinstance(raw, dict) and not raw.get("run_error") and "stdout" in raw else None

    if operation == "Get-HostFacts":
        raw = text((answer.get("sso") or {}).get("displaydb"))
        if raw:
            out.append(("ssomanage", "displaydb", "", raw))
    elif operation == "Set-SsoServer":
        for key in ("before", "after"):
            raw = text(answer.get(key))
            if raw:
                out.append(("ssomanage", "displaydb", f"-{key}", raw))
    elif operation == "Update-SsoDatabase":
        raw = text(answer)
        if raw:
            out.append(("ssomanage", "updatedb", "", raw))
    elif operation == "Install-SsoUpdate" and isinstance(answer.get("exit_code"), int):
        out.append(("msiexec", "exit", "", {"stdout": "", "stderr": "", "exit_code": answer["exit_code"]}))
    return out
