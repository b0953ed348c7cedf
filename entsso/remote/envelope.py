"""What a WinRM call carries: the operation's script (entsso/remote/ps/<operation>.ps1) inside the envelope of
docs/operations.md, its parameters as one line of JSON, sent on the command line or, past cmd.exe's limit or
with a secret in it, over stdin behind a bootstrap; PowerShell's CLIXML error stream read back as text; and
the parameters as a call's record keeps them, secrets redacted. Pure: nothing here touches the network.
"""
from __future__ import annotations

import base64
import json
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any, Protocol

CMD_LIMIT = 8191  # cmd.exe's maximum command-line length (KB 830473)
POWERSHELL = "powershell.exe -NoProfile -NonInteractive -ExecutionPolicy Bypass -EncodedCommand "
STDIN_BOOTSTRAP = "& chcp.com 65001 > $null; $s = $input | Out-String; & ([scriptblock]::Create($s))"
ENVELOPE_HEAD = (
    "# entsso-envelope 1\n"
    "$ErrorActionPreference = 'Stop'\n"
    "$ProgressPreference = 'SilentlyContinue'\n"
    # in try/catch as Ansible's exec wrapper does: a host without a console cannot set it (review m9)
    "try { [Console]::OutputEncoding = New-Object System.Text.UTF8Encoding($false) } catch { }\n"
)
SECRET_KEYS = frozenset({"password"})
REDACTED = "***"


class SecretLike(Protocol):
    def get_secret_value(self) -> str: ...


# --- scripts and envelopes ------------------------------------------------------------------------------
@cache
def script_text(operation: str) -> str:
    """The text of entsso/remote/ps/<operation>.ps1 (as shipped)."""
    if not re.fullmatch(r"[A-Z][A-Za-z]+-[A-Z][A-Za-z]+", operation):
        raise ValueError(f"not an operation name: {operation!r}")
    try:
        return resources.files("entsso.remote.ps").joinpath(f"{operation}.ps1").read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ValueError(f"no script entsso/remote/ps/{operation}.ps1 for operation {operation!r}") from None


def has_secret(params: Any) -> bool:
    if isinstance(params, dict):
        return any(k in SECRET_KEYS or has_secret(v) for k, v in params.items())
    if isinstance(params, (list, tuple)):
        return any(has_secret(v) for v in params)
    return False


def redact(params: Any) -> Any:
    """A copy of params with every secret-named value replaced by '***'."""
    if isinstance(params, dict):
        return {k: (REDACTED if k in SECRET_KEYS else redact(v)) for k, v in params.items()}
    if isinstance(params, (list, tuple)):
        return [redact(v) for v in params]
    return params


def _reveal(params: Any) -> Any:
    """Secrets travel as SecretLike objects until the envelope is built."""
    if isinstance(params, dict):
        return {k: _reveal(v) for k, v in params.items()}
    if isinstance(params, (list, tuple)):
        return [_reveal(v) for v in params]
    if hasattr(params, "get_secret_value"):
        return params.get_secret_value()
    return params


def build_envelope(operation: str, params: dict[str, Any]) -> str:
    payload = json.dumps(_reveal(params), separators=(",", ":"), ensure_ascii=True)
    # ensure_ascii keeps the JSON on one line with no "'@" at a line start: the here-string is safe.
    return (
        ENVELOPE_HEAD
        + "$EntssoParams = ConvertFrom-Json -InputObject @'\n"
        + payload
        + "\n'@\n"
        + script_text(operation)
    )


def encode_command(script: str) -> str:
    return POWERSHELL + base64.b64encode(script.encode("utf-16-le")).decode("ascii")


@dataclass(frozen=True)
class Invocation:
    """How an envelope travels: on the command line, or over stdin behind the bootstrap."""

    command_line: str
    stdin: bytes | None

    @property
    def via_stdin(self) -> bool:
        return self.stdin is not None


def plan_invocation(operation: str, params: dict[str, Any]) -> Invocation:
    envelope = build_envelope(operation, params)
    direct = encode_command(envelope)
    if len(direct) <= CMD_LIMIT and not has_secret(params):
        return Invocation(direct, None)
    return Invocation(encode_command(STDIN_BOOTSTRAP), envelope.encode("utf-8"))


_XML_ESCAPE = re.compile(r"_x([0-9A-Fa-f]{4})_")


def decode_clixml(stderr: bytes) -> str:
    """PowerShell's error stream as text: CLIXML error records decoded, progress records dropped."""
    text = stderr.decode("utf-8", errors="replace")
    if not text.startswith("#< CLIXML"):
        return text.strip()
    lines: list[str] = []
    for chunk in re.findall(r"<Objs.*?</Objs>", text, flags=re.S):
        try:
            root = ET.fromstring(chunk)
        except ET.ParseError:
            continue
        for node in root.iter():
            if node.tag.endswith("}S") and node.get("S") == "Error" and node.text:
                lines.append(_XML_ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), node.text))
    return "".join(lines).strip()
