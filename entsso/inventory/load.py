"""Loading an inventory file: YAML with its line numbers, every problem turned into one InventoryError.

`check_inventory(path)` reads and validates the file without its secrets; each problem names its line.
`load_inventory(path)` also reads the secrets it names, for a run.
"""
from __future__ import annotations

import difflib
import hashlib
import os
import re
import types
import typing
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from entsso.inventory.rules import estate_rules
from entsso.inventory.schema import Inventory, InventoryError
from entsso.inventory.secrets import read_secrets

# Keys that would hold a secret written into the file (password_env, which names a variable, is fine).
_SECRET_KEY = re.compile(r"(?i)^(?:.*password|passwd|pwd|secret|.*_secret|credential|credentials)$")


# --- loading ------------------------------------------------------------------------------------------
class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key written twice (PyYAML would silently keep the last one)."""


def _construct_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    seen: dict[Any, Any] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"the key {key!r} is written twice in the same mapping; keep one", key_node.start_mark)
        seen[key] = True
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def check_inventory(path: str | os.PathLike[str] | None) -> Inventory:
    """Load and validate the inventory at `path` without reading any secret (python -m entsso.inventory).
    Each problem names its line in the file. Raises InventoryError."""
    if path is None or str(path) == "":
        raise InventoryError("no inventory given: pass --inventory FILE (see docs/inventory.md and "
                             "inventory/example.yml)")
    p = Path(path)
    where = str(path)
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        raise InventoryError(f"{where}: no such file; check the path given to --inventory "
                             f"(relative paths start at {Path.cwd()})") from None
    except IsADirectoryError:
        raise InventoryError(f"{where}: is a folder, not an inventory file; name the .yml file itself") from None
    except OSError as exc:
        raise InventoryError(f"{where}: cannot be read ({exc.strerror}); check its permissions") from None
    try:
        loader = _UniqueKeyLoader(data.decode("utf-8"))
        try:
            # composed first, constructed second (what yaml.load does): the nodes keep their line numbers
            root = loader.get_single_node()
            doc = loader.construct_document(root) if root is not None else None
        finally:
            loader.dispose()
    except UnicodeDecodeError:
        raise InventoryError(f"{where}: is not UTF-8 text; save it as UTF-8") from None
    except yaml.YAMLError as exc:
        raise InventoryError(f"{where}: is not valid YAML ({_yaml_problem(exc)}); check indentation and "
                             "quoting there (write Windows paths in single quotes: 'C:\\SSOBackup')") from None
    if not isinstance(doc, dict):
        kind = "empty" if doc is None else f"a {type(doc).__name__}"
        raise InventoryError(f"{where}: the top level is {kind}, not a mapping; start with keys such as "
                             "`environment:`, `cluster:`, `sql:` (see inventory/example.yml)")
    problems = _literal_secrets(doc, ())
    if problems:
        raise InventoryError(_join(where, problems, root))
    try:
        inventory = Inventory.model_validate(doc)
    except ValidationError as exc:
        raise InventoryError(_join(where, [_describe(e) for e in exc.errors(include_url=False)], root)) from None
    problems = estate_rules(inventory)
    if problems:
        raise InventoryError(_join(where, problems, root))
    inventory._path = p
    inventory._sha256 = hashlib.sha256(data).hexdigest()
    return inventory


def load_inventory(path: str | os.PathLike[str] | None, prompt: bool = False) -> Inventory:
    """Load, validate and complete (secrets) the inventory at `path`. Raises InventoryError."""
    inventory = check_inventory(path)
    secrets, problems = read_secrets(inventory, prompt)
    if problems:
        raise InventoryError(_join(str(path), problems))
    inventory._secrets = secrets
    return inventory


def _join(where: str, problems: list[str], root: yaml.Node | None = None) -> str:
    if root is not None:
        problems = [_with_line(root, p) for p in problems]
    if len(problems) == 1:
        return f"{where}: {problems[0]}"
    return f"{where}: {len(problems)} problems:\n" + "\n".join(f"  - {p}" for p in problems)


_PATH_PART = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def _with_line(root: yaml.Node, problem: str) -> str:
    """'line 12: cluster.primary: …': the line of the field a problem names (its nearest written parent when
    the field is missing), as yamllint and ansible-lint give it."""
    field = problem.split(": ", 1)[0]
    if " " in field or field == "(top level)":
        return problem
    parts: list[str | int] = [int(i) if i else k for k, i in _PATH_PART.findall(field)]
    line = _line_of(root, parts)
    return f"line {line}: {problem}" if line else problem


def _line_of(node: yaml.Node, parts: list[str | int]) -> int | None:
    """The 1-based line where the YAML node at `parts` (or the deepest part of it that exists) starts."""
    line: int | None = None
    for part in parts:
        if isinstance(node, yaml.MappingNode):
            match = next(((k, v) for k, v in node.value if isinstance(k, yaml.ScalarNode) and k.value == str(part)),
                         None)
            if match is None:
                return line or node.start_mark.line + 1
            line, node = match[0].start_mark.line + 1, match[1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            break
    return line


def _yaml_problem(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    if mark is not None:
        return f"line {mark.line + 1}, column {mark.column + 1}: {problem}"
    return problem


def _dotted(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif isinstance(part, str) and ("[" in part or part in ("str", "int", "dict", "list")):
            continue  # pydantic's union/validator tags, not a field
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


def _literal_secrets(doc: Any, loc: tuple[Any, ...]) -> list[str]:
    """Keys that carry a secret in the file itself; refused whatever their place."""
    found: list[str] = []
    if isinstance(doc, dict):
        for key, value in doc.items():
            here = loc + (key,)
            if isinstance(key, str) and _SECRET_KEY.match(key) and not key.lower().endswith("_env"):
                found.append(f"{_dotted(here)}: a secret written into the file is refused (inventories are copied, "
                             f"committed and attached to change records); remove it and name an environment "
                             f"variable instead, e.g. `password_env: ENTSSO_WINRM_PASSWORD`, then export that "
                             f"variable before the run")
            else:
                found += _literal_secrets(value, here)
    elif isinstance(doc, list):
        for i, item in enumerate(doc):
            found += _literal_secrets(item, loc + (i,))
    return found


def _unwrap(annotation: Any, part: Any) -> Any:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        models = [a for a in typing.get_args(annotation) if a is not type(None)]
        return _unwrap(models[0], part) if len(models) == 1 else annotation
    if origin is typing.Annotated:
        return _unwrap(typing.get_args(annotation)[0], part)
    return annotation


def _container_item(annotation: Any) -> Any:
    origin = typing.get_origin(annotation)
    if origin is list:
        return typing.get_args(annotation)[0]
    if origin is dict:
        return typing.get_args(annotation)[1]
    return annotation


def _fields_at(loc: tuple[Any, ...]) -> list[str]:
    current: Any = Inventory
    for part in loc:
        current = _unwrap(current, part)
        if isinstance(current, type) and issubclass(current, BaseModel):
            if not isinstance(part, str) or part not in current.model_fields:
                return []
            current = current.model_fields[part].annotation
        else:
            current = _unwrap(_container_item(current), part)
    current = _unwrap(current, None)
    current = _unwrap(_container_item(current), None) if not (
        isinstance(current, type) and issubclass(current, BaseModel)) else current
    if isinstance(current, type) and issubclass(current, BaseModel):
        return list(current.model_fields)
    return []


def _describe_field(loc: tuple[Any, ...]) -> str:
    parent, name = loc[:-1], loc[-1]
    current: Any = Inventory
    for part in parent:
        current = _unwrap(current, part)
        if isinstance(current, type) and issubclass(current, BaseModel):
            current = current.model_fields[part].annotation if part in current.model_fields else None
        else:
            current = _unwrap(_container_item(current), part)
    current = _unwrap(current, None)
    if isinstance(current, type) and issubclass(current, BaseModel) and name in current.model_fields:
        return current.model_fields[name].description or ""
    return ""


_TYPE_WORDS = {
    "int_type": "a whole number", "int_parsing": "a whole number", "int_from_float": "a whole number",
    "float_type": "a number of seconds", "float_parsing": "a number of seconds",
    "bool_type": "true or false", "bool_parsing": "true or false",
    "string_type": "text (put it in quotes)", "list_type": "a list", "dict_type": "a mapping",
    "model_type": "a mapping of keys", "model_attributes_type": "a mapping of keys",
}


def _describe(error: ErrorDetails) -> str:
    loc = tuple(p for p in error["loc"] if not (isinstance(p, str) and "[" in p))
    field = _dotted(loc)
    kind = error["type"]
    given = error.get("input")
    shown = _shown(given)
    if kind == "missing":
        meaning = _describe_field(loc)
        return f"{field}: missing; add it" + (f" ({meaning})" if meaning else "")
    if kind == "extra_forbidden":
        key = str(loc[-1])
        known = _fields_at(loc[:-1])
        close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
        hint = f"did you mean `{close[0]}`?" if close else f"known keys here: {', '.join(known)}"
        return f"{field}: unknown key; {hint} (see docs/inventory.md)"
    if kind in _TYPE_WORDS:
        return f"{field}: {shown} is not {_TYPE_WORDS[kind]}; write {_TYPE_WORDS[kind]} here"
    if kind == "literal_error":
        expected = error.get("ctx", {}).get("expected", "")
        return f"{field}: {shown} is not one of {expected}; use one of them"
    if kind in ("greater_than", "greater_than_equal", "less_than_equal", "less_than"):
        ctx = error.get("ctx", {})
        bound = {"greater_than": f"greater than {ctx.get('gt')}", "greater_than_equal": f"at least {ctx.get('ge')}",
                 "less_than_equal": f"at most {ctx.get('le')}", "less_than": f"less than {ctx.get('lt')}"}[kind]
        what = "a positive number of seconds" if kind == "greater_than" and ctx.get("gt") == 0 else bound
        return f"{field}: {shown} is not allowed; it must be {what}"
    if kind in ("too_short", "string_too_short"):
        if isinstance(given, list):
            need = error.get("ctx", {}).get("min_length", 1)
            return f"{field}: the list is empty or too short; list at least {need}"
        return f"{field}: is empty; write a value"
    if kind == "inventory":
        return f"{field}: {error['msg']}"
    return f"{field}: {error['msg']} (given {shown})"


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
