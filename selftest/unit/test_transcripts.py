"""Every transcript under selftest/transcripts/<tool>/<case>.txt (the text as Windows prints it, after
`# source:` and optional `# exit_code:` / `# command:` / `# documented:` header lines) through its parser,
compared with <case>.json (what the parser returns, or {"raises": ..., "message_contains": [...]}). A new
case is a new pair of files.

msiexec: `/quiet` prints nothing, so a case is its exit code and Learn's row for it (`# documented:`).
odbc18: Microsoft's ODBC Driver 18's failures as pyodbc gives them (captured from the driver against the lab by
selftest/lab/test_driver18.py, which compares them with the driver on every run), through remote.sql.classify.
failoverclusters: Learn's example tables of the cmdlets; each row's State goes through cluster.parse_cluster
as Get-HostFacts sends it (`[string]$x.State`, the enum's name, which is what the table shows)."""
from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable

import pytest

from entsso.domain import cluster, installer, sso

ROOT = Path(__file__).resolve().parents[1] / "transcripts"
# (tool folder, the case name's first word) -> parser(stdout, stderr, exit_code)
PARSERS: dict[tuple[str, str], Callable[[str, str, int], Any]] = {
    ("ssomanage", "displaydb"): sso.parse_displaydb,
    ("ssomanage", "updatedb"): sso.parse_tool_answer,
    ("ssoconfig", "backupsecret"): sso.parse_tool_answer,
    ("ssoconfig", "restoresecret"): sso.parse_tool_answer,
    ("msiexec", "exit"): installer.parse_installer_exit,
}


def _table_rows(text: str) -> tuple[list[str], list[list[str]]]:
    """A Format-Table as the console prints it: header, dashes, rows. A column starts one blank before its
    dashes (a right-aligned enum wider than its header, such as `Paused`, begins there)."""
    import re
    lines = [line for line in text.split("\r\n") if line.strip()]
    starts = [m.start() for m in re.finditer(r"-+", lines[1])]
    bounds = [0] + [start - 1 for start in starts[1:]] + [None]

    def cells(line: str) -> list[str]:
        return [line[a:b].strip() for a, b in zip(bounds, bounds[1:])]
    return cells(lines[0]), [cells(line) for line in lines[2:]]


def _cluster_states(kind: str) -> Callable[[str, str, int], Any]:
    """Each row's (Name, State) through cluster.parse_cluster, as the part of Get-HostFacts it would be."""
    def parse(text: str, _stderr: str, _exit_code: int) -> list[list[str]]:
        header, rows = _table_rows(text)
        name, state = header.index("Name"), header.index("State")
        out = []
        for row in rows:
            item = {"name": row[name], "state": row[state], "owner_node": None}
            doc = {"cluster": {"nodes": [item] if kind == "nodes" else [], "group": item if kind == "groups" else None,
                               "resource": item if kind == "resources" else None}}
            facts = cluster.parse_cluster("NODE1", doc)
            got = facts.nodes[0] if kind == "nodes" else facts.group if kind == "groups" else facts.resource
            out.append([got.name, got.state])
        return out
    return parse


def _odbc_failure(*, connecting: bool, strict: bool = False) -> Callable[[str, str, int], Any]:
    """Microsoft's ODBC Driver 18's text for a failure (pyodbc.Error's args[1]) through the suite's classify:
    connect-* while connecting, strict-* while connecting with Encrypt=strict, statement-* under a statement."""
    def parse(text: str, _stderr: str, _exit_code: int) -> dict[str, Any]:
        from entsso.remote.sql import classify

        state = text[1:6] if text.startswith("[") else None
        err = classify("SQL1", state, text.rstrip("\n"), connecting=connecting, strict=strict)
        return {"class": type(err).__name__, "kind": err.kind, "number": err.number, "sqlstate": err.sqlstate}
    return parse


PARSERS[("odbc18", "connect")] = _odbc_failure(connecting=True)
PARSERS[("odbc18", "strict")] = _odbc_failure(connecting=True, strict=True)
PARSERS[("odbc18", "statement")] = _odbc_failure(connecting=False)
for _kind in ("groups", "resources", "nodes"):
    PARSERS[("failoverclusters", _kind)] = _cluster_states(_kind)
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


def check_case(case: Path) -> dict[str, str]:
    """A transcript case (<tool>/<case>.txt + .json) parses to its .json: a case of selftest/transcripts, or
    one a run captured (entsso.change.capture). Returns the case's headers."""
    headers, text = read_transcript(case)
    assert headers.get("source"), f"{case.name}: the first line must be '# source: <URL or document>'"
    if case.parent.name == "odbc18":  # a driver's diagnostic as pyodbc gives it: one line, no line break
        assert text.endswith("\n") and "\n" not in text[:-1] and "\r" not in text, f"{case.name}: not one line"
    elif text:  # msiexec /quiet prints nothing
        assert "\r\n" in text and "\n" not in text.replace("\r\n", ""), f"{case.name}: not CRLF as Windows prints it"
    else:
        assert "exit_code" in headers, f"{case.name}: a case without text is its exit code"
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
    return headers


@pytest.mark.parametrize("case", CASES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_transcript_parses_to_its_json(case: Path):
    headers = check_case(case)
    exit_code = int(headers.get("exit_code", "0"))
    if "documented" in headers:  # the code's row as Learn tables it: the suite's table holds the same words
        name, code, description = (part.strip() for part in headers["documented"].split(" | "))
        assert installer.INSTALLER_CODES[int(code)] == (name, description) and int(code) == exit_code


def test_every_installer_code_the_suite_words_is_in_learns_table_by_its_name():
    assert set(installer.SHORT_WORDS) == set(installer.INSTALLER_CODES)  # one table: every code has both
    for code in installer.SHORT_WORDS:
        assert installer.INSTALLER_CODES[code][0] in installer.meaning(code), code


def test_a_missing_installer_exit_code_is_unknown_output_not_a_success():
    with pytest.raises(sso.UnknownToolOutput, match="no exit code"):
        installer.parse_installer_exit("", "", None)
