"""Static checks of the PowerShell operations in entsso/remote/ps: they never run here (no Windows), so
these tests make sure each one parses, keeps the docs/operations.md contract's shape and keeps the
secret-backup password out of anything but the SSO admin object model's BackupSecret/RestoreSecret."""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest
import tree_sitter_pwsh
from tree_sitter import Language, Node, Parser

ROOT = Path(__file__).resolve().parents[2]
PS_DIR = ROOT / "entsso" / "remote" / "ps"
OPERATIONS_MD = ROOT / "docs" / "operations.md"
SCRIPTS = sorted(PS_DIR.glob("*.ps1"))

PWSH = Language(tree_sitter_pwsh.language())

# The only calls that may receive $EntssoParams.password: the SSO admin object model's methods
# (through [ISSOConfigSS].InvokeMember('BackupSecret'|'RestoreSecret', ...)) and an emptiness check.
SECRET_METHODS = {"BackupSecret", "RestoreSecret"}
# Between the password and the call it feeds, only these wrappers may sit (casts, argument arrays).
PASSTHROUGH = {"member_access", "unary_expression", "expression_with_unary_operator", "cast_expression",
               "argument_expression", "argument_expression_list", "argument_list", "array_literal_expression",
               "pipeline_chain", "pipeline", "statement_list", "array_expression"}
PASSWORD_TEXT = re.compile(r"\$EntssoParams\s*(?:\.|\[)\s*['\"]?password\b", re.I)
# A literal assigned to something named like a secret, or a plain-text SecureString.
PASSWORD_LITERAL = re.compile(
    r"(?i)(?:\$\w*(?:password|passwd|pwd|secret)\w*\s*=\s*['\"][^'\"]+['\"])"
    r"|(?:ConvertTo-SecureString\s+(?:-String\s+)?['\"])"
    r"|(?:-AsPlainText\b)")


@dataclass(frozen=True)
class SyntaxProblem:
    line: int  # 1-based
    column: int  # 1-based
    kind: str  # ERROR | MISSING
    text: str

    def __str__(self) -> str:
        return f"{self.line}:{self.column} {self.kind} {self.text!r}"


def parse(source: str) -> Node:
    return Parser(PWSH).parse(source.encode("utf-8")).root_node


def syntax_problems(source: str) -> list[SyntaxProblem]:
    """Every ERROR or MISSING node tree-sitter-pwsh finds, with its place and text."""
    data = source.encode("utf-8")
    problems: list[SyntaxProblem] = []

    def walk(node: Node) -> None:
        if node.is_error or node.is_missing:
            kind = "MISSING" if node.is_missing else "ERROR"
            text = node.type if node.is_missing else data[node.start_byte:node.end_byte].decode("utf-8", "replace")
            problems.append(SyntaxProblem(node.start_point[0] + 1, node.start_point[1] + 1, kind, text[:80]))
        for child in node.children:
            walk(child)

    root = parse(source)
    walk(root)
    if root.has_error and not problems:  # has_error without a node we saw: still a problem
        problems.append(SyntaxProblem(1, 1, "ERROR", "tree reports an error"))
    return problems


def _text(node: Node, data: bytes) -> str:
    return data[node.start_byte:node.end_byte].decode("utf-8", "replace")


def _password_uses(root: Node, data: bytes) -> list[Node]:
    found: list[Node] = []

    def walk(node: Node) -> None:
        if node.type == "member_access":
            kids = node.children
            if (kids and kids[0].type == "variable" and _text(kids[0], data).lower() == "$entssoparams"
                    and _text(kids[-1], data).lower() == "password"):
                found.append(node)
        for child in node.children:
            walk(child)

    walk(root)
    return found


def _feeds_allowed_call(node: Node, data: bytes) -> bool:
    parent = node.parent
    while parent is not None and parent.type in PASSTHROUGH:
        parent = parent.parent
    if parent is None or parent.type != "invocation_expression":
        return False
    method = next((c for c in parent.children if c.type == "member_name"), None)
    name = _text(method, data) if method is not None else ""
    if name == "IsNullOrEmpty":
        return True
    if name != "InvokeMember":
        return False
    args = next((c for c in parent.children if c.type == "argument_list"), None)
    first = _text(args, data).lstrip("(").split(",", 1)[0].strip().strip("'\"") if args is not None else ""
    return first in SECRET_METHODS


def password_leaks(source: str) -> list[str]:
    """Uses of $EntssoParams.password other than as a BackupSecret/RestoreSecret argument or an
    emptiness check, and literals that look like passwords; each as 'line: text'."""
    data = source.encode("utf-8")
    root = parse(source)
    uses = _password_uses(root, data)
    leaks = [f"{n.start_point[0] + 1}: {_text(n, data)}" for n in uses if not _feeds_allowed_call(n, data)]
    if len(PASSWORD_TEXT.findall(source)) != len(uses):  # e.g. $EntssoParams['password']: not checkable
        leaks.append("the password is read in a form this check cannot follow (use $EntssoParams.password)")
    for number, line in enumerate(source.splitlines(), 1):
        if PASSWORD_LITERAL.search(line):
            leaks.append(f"{number}: {line.strip()}")
    return leaks


def operations_in_contract() -> set[str]:
    """Operation names from the ### headings of docs/operations.md ('Read-File / Write-File' is two)."""
    names: set[str] = set()
    for line in OPERATIONS_MD.read_text(encoding="utf-8").splitlines():
        if line.startswith("### "):
            head = re.split(r"\s+[—–-]\s+", line[4:], maxsplit=1)[0]
            names.update(part.strip() for part in head.split("/") if part.strip())
    return names


def _top_level_statements(root: Node) -> list[Node]:
    body = next((c for c in root.children if c.type == "statement_list"), None)
    return [c for c in (body.children if body else []) if c.type != "comment"]


# --- the checkers can fail --------------------------------------------------------------------------
def test_syntax_checker_reports_line_column_and_text_of_broken_powershell():
    broken = "$ok = 1\nif ($EntssoParams.x) {\n    $list = @(1, 2\n}\n"
    problems = syntax_problems(broken)
    assert problems, "a missing ')' must be reported"
    assert all(p.line >= 2 for p in problems)
    assert any(p.kind in ("ERROR", "MISSING") for p in problems)


def test_syntax_checker_accepts_windows_powershell_5_1_code():
    good = "$x = if ($a) { 1 } else { 2 }\n[pscustomobject]@{ a = @($x) } | ConvertTo-Json -Depth 8 -Compress\nexit 0\n"
    assert syntax_problems(good) == []


def test_password_check_flags_password_written_to_output():
    leaky = "Write-Output \"pw: $($EntssoParams.password)\"\n"
    assert password_leaks(leaky) == ['1: $EntssoParams.password']


def test_password_check_flags_password_copied_into_a_variable():
    assert password_leaks("$p = $EntssoParams.password\n") == ['1: $EntssoParams.password']


def test_password_check_flags_a_literal_password():
    assert password_leaks("$password = 'Pa55word!'\n") == ["1: $password = 'Pa55word!'"]


def test_password_check_allows_backupsecret_argument():
    allowed = ("$null = [X.ISSOConfigSS].InvokeMember('BackupSecret', $f, $null, $o, "
               "[object[]]@($file, [string]$EntssoParams.password, $reminder))\n")
    assert password_leaks(allowed) == []


def test_password_check_flags_password_passed_to_another_method():
    other = "$null = [X.ISSOConfigSS].InvokeMember('GenerateSecret', $f, $null, $o, @($file, $EntssoParams.password))\n"
    assert password_leaks(other) != []


# --- the shipped scripts -----------------------------------------------------------------------------
def test_every_operation_in_the_contract_has_a_script_and_every_script_is_in_the_contract():
    contract = operations_in_contract()
    assert len(contract) == 15, sorted(contract)
    assert {p.stem for p in SCRIPTS} == contract


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.stem)
def test_script_parses_without_errors(script: Path):
    problems = syntax_problems(script.read_text(encoding="utf-8"))
    assert not problems, f"{script.name}: " + "; ".join(map(str, problems))


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.stem)
def test_script_first_line_names_its_operation(script: Path):
    first = script.read_text(encoding="utf-8").splitlines()[0]
    assert first == f"# entsso-operation: {script.stem}"


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.stem)
def test_script_ends_with_one_json_document_and_exit_0(script: Path):
    source = script.read_text(encoding="utf-8")
    statements = _top_level_statements(parse(source))
    data = source.encode("utf-8")
    assert _text(statements[-1], data).strip() == "exit 0"
    assert re.search(r"\|\s*ConvertTo-Json -Depth 8 -Compress\s*$", _text(statements[-2], data))


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.stem)
def test_script_reads_params_only_from_entsso_params(script: Path):
    source = script.read_text(encoding="utf-8")
    assert not re.search(r"\$args\b|\$input\b|Read-Host", source, re.I)
    # no script-level param() block: the envelope passes $EntssoParams, not arguments
    statements = _top_level_statements(parse(source))
    assert not any(s.type == "param_block" for s in statements)


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.stem)
def test_script_keeps_the_secret_password_to_backupsecret_and_restoresecret(script: Path):
    assert password_leaks(script.read_text(encoding="utf-8")) == []


def test_only_the_secret_operations_read_the_password():
    readers = {p.stem for p in SCRIPTS if PASSWORD_TEXT.search(p.read_text(encoding="utf-8"))}
    assert readers == {"Backup-MasterSecret", "Restore-MasterSecret"}


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.stem)
def test_script_uses_no_powershell_7_syntax(script: Path):
    # Windows PowerShell 5.1 has no ternary, ?? / ??=, ?. or ForEach-Object -Parallel, && / ||.
    code = "\n".join(line.split("#", 1)[0] for line in script.read_text(encoding="utf-8").splitlines())
    code = re.sub(r"'[^'\n]*'|\"[^\"\n]*\"", "''", code)  # strings may say anything
    assert not re.search(r"\?\?|\?\.|-Parallel\b|&&|\|\||\s\?\s[^:]+\s:\s", code), script.name


def test_no_psobject_wrapped_value_is_passed_inside_an_invokemember_argument_array():
    """PowerShell unwraps a PSObject passed as a method's own argument, not one inside an [object[]]: a value
    made by New-Object (cmdlet output, PSObject-wrapped) reaches InvokeMember wrapped and the binder refuses it
    (oising/poke#3). Every variable inside InvokeMember's argument array is a cast value or .psobject.BaseObject."""
    import re

    for script in SCRIPTS:
        text = script.read_text(encoding="utf-8")
        for call in re.finditer(r"InvokeMember\([^\n]*(?:\n[^\n]*){0,2}?\[object\[\]\]@\((?P<args>[^)]*)\)", text):
            for arg in (a.strip() for a in call.group("args").split(",")):
                if not arg.startswith("$") or arg.endswith(".psobject.BaseObject"):
                    continue
                assigned = re.findall(rf"^\s*\{arg}\s*=\s*(.+)$", text, re.M)
                assert assigned and all(re.match(r"\[(string|int|bool)\]", a) for a in assigned), \
                    f"{script.name}: {arg} reaches InvokeMember as is, and is not a cast value ({assigned})"
