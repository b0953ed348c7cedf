"""Every transcript under selftest/transcripts/<tool>/<case>.txt (the text as Windows prints it, after
`# source:` and optional `# exit_code:` header lines) through its parser, compared with <case>.json (what
the parser returns, or {"raises": ..., "message_contains": [...]}). A new case is a new pair of files."""
from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable

import pytest

from entsso import sso

ROOT = Path(__file__).resolve().parents[1] / "transcripts"
# (tool folder, the case name's first word) -> parser(stdout, stderr, exit_code)
PARSERS: dict[tuple[str, str], Callable[[str, str, int], Any]] = {
    ("ssomanage", "displaydb"): sso.parse_displaydb,
    ("ssomanage", "updatedb"): sso.parse_tool_answer,
    ("ssoconfig", "backupsecret"): sso.parse_tool_answer,
    ("ssoconfig", "restoresecret"): sso.parse_tool_answer,
}
CASES = sorted(ROOT.glob("*/*.txt"))


def read_transcript(path: Path) -> tuple[dict[str, str], str]:
    """(headers, raw text): the leading `# key: value` lines, then the bytes exactly as printed."""
    raw = path.read_bytes().decode("utf-8")
    headers: dict[str, str] = {}
    while raw.startswith("# "):
        line, _, raw = raw.partition("\n")
        key, _, value = line[2:].rstrip("\r").partition(":")
        headers[key.strip()] = value.strip()
    return headers, raw


def _plain(value: Any) -> Any:
    return json.loads(json.dumps(asdict(value) if hasattr(value, "__dataclass_fields__") else value))


def test_there_are_transcripts_for_every_parser():
    kinds = {(p.parent.name, p.stem.split("-")[0]) for p in CASES}
    assert set(PARSERS) <= kinds, f"parsers without a transcript: {set(PARSERS) - kinds}"


@pytest.mark.parametrize("case", CASES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_transcript_parses_to_its_json(case: Path):
    headers, text = read_transcript(case)
    assert headers.get("source"), f"{case.name}: the first line must be '# source: <URL or document>'"
    assert "\r\n" in text and "\n" not in text.replace("\r\n", ""), f"{case.name}: not CRLF as Windows prints it"
    parser = PARSERS.get((case.parent.name, case.stem.split("-")[0]))
    assert parser is not None, f"no parser for {case}: add it to PARSERS"
    expected = json.loads(case.with_suffix(".json").read_text(encoding="utf-8"))
    exit_code = int(headers.get("exit_code", "0"))
    if "raises" in expected:
        with pytest.raises(Exception) as info:
            parser(text, "", exit_code)
        assert type(info.value).__name__ == expected["raises"]
        for part in expected["message_contains"]:
            assert part in str(info.value)
    else:
        assert _plain(parser(text, "", exit_code)) == expected
