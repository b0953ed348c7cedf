"""T-SQL's rules that SQLite does not keep, for the lab's SQL engine (sqlengine.py): what SQL Server
refuses (a string that does not convert to int, 245; a column neither grouped nor aggregated, 8120; a
parameter a procedure does not have, 8145) and the bits of T-SQL the engine answers itself (IF … ELSE,
@@VERSION, DB_NAME()). Each with its source in docs/domain-notes.md ("T-SQL as the lab's engine keeps it")."""
from __future__ import annotations

import re
from typing import Any

from sqlglot import exp

from entsso.lab.sqlerrors import EngineError

# ------------------------------------------------------------------------------------------ procedures

# Each modelled procedure's parameters, as its Learn page (and msdb's source) declares them.
PROCEDURE_PARAMETERS: dict[str, tuple[str, ...]] = {
    "sp_update_job": ("@job_id", "@job_name", "@new_name", "@enabled", "@description", "@start_step_id",
                      "@category_name", "@owner_login_name", "@notify_level_eventlog", "@notify_level_email",
                      "@notify_level_netsend", "@notify_level_page", "@notify_email_operator_name",
                      "@notify_netsend_operator_name", "@notify_page_operator_name", "@delete_level",
                      "@automatic_post"),
    "sp_start_job": ("@job_name", "@job_id", "@error_flag", "@server_name", "@step_name", "@output_flag"),
    "sp_stop_job": ("@job_name", "@job_id", "@originating_server", "@server_name"),
    "sp_getapplock": ("@resource", "@lockmode", "@lockowner", "@locktimeout", "@dbprincipal"),
    "sp_releaseapplock": ("@resource", "@lockowner", "@dbprincipal"),
    "sp_forcefullbackup": (),
}


def check_parameters(proc: str, named: dict[str, Any], positional: list[Any]) -> None:
    """SQL Server's 8145 for a named parameter the procedure does not declare, 8144 for too many arguments."""
    declared = PROCEDURE_PARAMETERS.get(proc.lower())
    if declared is None:
        return
    for name in named:
        if name.lower() not in declared:
            raise EngineError(8145, 2, 16, f"{name} is not a parameter for procedure {proc}.")
    if len(positional) > len(declared):
        raise EngineError(8144, 2, 16, f"Procedure or function {proc} has too many arguments specified.")


# ------------------------------------------------------------------------------------------ conversions


class ConversionFailed(Exception):
    """Raised inside SQLite by lab_int: the value SQL Server could not convert to int."""

    def __init__(self, value: Any, kind: str) -> None:
        super().__init__(value)
        self.value = value
        self.kind = kind


def conversion_error(exc: ConversionFailed) -> EngineError:
    return EngineError(245, 1, 16, f"Conversion failed when converting the {exc.kind} value '{exc.value}' to data "
                                   "type int.")


def lab_int(value: Any, kind: str) -> Any:
    """SQLite's function for T-SQL's implicit conversion of a character value to int (int has the higher
    precedence): an integer string converts, anything else fails as SQL Server's 245."""
    if value is None or isinstance(value, int):
        return value
    text = str(value).strip()
    if re.fullmatch(r"[+-]?\d+", text):
        return int(text)
    raise ConversionFailed(value, kind)


_COMPARISONS = (exp.EQ, exp.NEQ, exp.GT, exp.GTE, exp.LT, exp.LTE)


def _side(node: exp.Expression, columns: dict[str, str]) -> str | None:
    """'int', 'char' (varchar/nvarchar) or None (another type, or one the lab does not know) for an operand."""
    if isinstance(node, exp.Paren):
        return _side(node.this, columns)
    if isinstance(node, exp.Literal):
        return "char" if node.is_string else ("int" if re.fullmatch(r"\d+", node.this) else None)
    if isinstance(node, exp.National):
        return "char"
    if isinstance(node, exp.Neg):
        return _side(node.this, columns)
    if isinstance(node, exp.Column):
        return columns.get(node.name.lower())
    if isinstance(node, (exp.Count,)):
        return "int"
    return None


def strict_conversions(tree: exp.Expr, columns: dict[str, str]) -> exp.Expr:
    """The comparisons of an int with a character value, the character side wrapped in lab_int so that a
    value that does not convert fails as on SQL Server (SQLite would compare them as unequal)."""
    def wrap(node: exp.Expression) -> exp.Expression:
        # N'…' literals and the schema's character columns (sysname, nvarchar) are nvarchar; '…' is varchar
        kind = "varchar" if isinstance(node, exp.Literal) else "nvarchar"
        return exp.Anonymous(this="lab_int", expressions=[node.copy(), exp.Literal.string(kind)])

    def fix(node: exp.Expression) -> exp.Expression:
        if isinstance(node, _COMPARISONS):
            left, right = _side(node.this, columns), _side(node.expression, columns)
            if {left, right} == {"int", "char"}:
                if left == "char":
                    node.set("this", wrap(node.this))
                else:
                    node.set("expression", wrap(node.expression))
        elif isinstance(node, exp.In) and _side(node.this, columns) == "int":
            node.set("expressions", [wrap(e) if _side(e, columns) == "char" else e for e in node.expressions])
        return node

    return tree.transform(fix)


# ------------------------------------------------------------------------------------------ grouping



def check_grouping(tree: exp.Expr) -> None:
    """SQL Server's 8120: in a SELECT with GROUP BY or an aggregate, a column of the select list must be in
    the GROUP BY or inside an aggregate (SQLite takes any row's value instead)."""
    for select in tree.find_all(exp.Select):
        group = select.args.get("group")
        grouped = {g.sql().lower() for g in (group.expressions if group else [])}
        aggregated = any(_aggregates_of(e) for e in select.expressions)
        if not group and not aggregated:
            continue
        for item in select.expressions:
            bad = _ungrouped(item.this if isinstance(item, exp.Alias) else item, grouped, select)
            if bad is not None:
                raise EngineError(8120, 1, 16, f"Column '{bad}' is invalid in the select list because it is not "
                                               "contained in either an aggregate function or the GROUP BY clause.")


def _aggregates_of(node: exp.Expression) -> bool:
    # an aggregate of this SELECT, not of a subquery and not a window function (COUNT(*) OVER (…) groups nothing)
    return any(a.parent_select is node.parent_select and a.find_ancestor(exp.Window) is None
               for a in node.find_all(exp.AggFunc))


def _ungrouped(node: exp.Expression, grouped: set[str], select: exp.Select) -> str | None:
    if isinstance(node, (exp.AggFunc, exp.Subquery, exp.Exists)) and node.find_ancestor(exp.Window) is None:
        return None
    if node.sql().lower() in grouped:
        return None
    if isinstance(node, exp.Column):
        return _column_name(node, select)
    if isinstance(node, exp.Star):
        return "*"
    for child in node.iter_expressions():
        bad = _ungrouped(child, grouped, select)
        if bad is not None:
            return bad
    return None


def _column_name(col: exp.Column, select: exp.Select) -> str:
    """The column as SQL Server names it in 8120: with the table (its alias, or its name as written)."""
    if col.table:
        return f"{col.table}.{col.name}"
    source = select.args.get("from") or select.args.get("from_")
    tables = list(source.find_all(exp.Table)) if source is not None else []
    if len(tables) == 1:
        t = tables[0]
        written = ".".join(p for p in (t.catalog, t.db, t.name) if p)
        return f"{t.alias or written}.{col.name}"
    return col.name


# ------------------------------------------------------------------------------------------ globals

# @@VERSION as SQL Server 2022 RTM answers it (Learn, "@@VERSION (Transact-SQL)": product, version, build date,
# edition, operating system); the lab's SQL Server is 16.0.1000 (tds.py SERVER_VERSION)
VERSION = ("Microsoft SQL Server 2022 (RTM) - 16.0.1000.6 (X64) \n\tOct  8 2022 05:58:25 \n\tCopyright (C) 2022 "
           "Microsoft Corporation\n\tDeveloper Edition (64-bit) on Windows Server 2022 Datacenter 10.0 <X64> "
           "(Build 20348: ) (Hypervisor)\n")
# database_id of the system databases (Learn, "sys.databases"): master 1, tempdb 2, model 3, msdb 4; the
# others from 5 in the engine's order
SYSTEM_DATABASE_IDS = {"master": 1, "tempdb": 2, "model": 3, "msdb": 4}
_GLOBAL = re.compile(r"(?i)@@(VERSION|SERVERNAME|SPID)\b")


def replace_globals(text: str, values: dict[str, Any], literal: Any) -> str:
    """@@VERSION, @@SERVERNAME, @@SPID in a statement's code (not its strings) as literals."""
    return _GLOBAL.sub(lambda m: literal(values[m.group(1).upper()]), text)


# ------------------------------------------------------------------------------------------ IF … ELSE

_STATEMENT_WORDS = ("SELECT", "EXEC", "EXECUTE", "BEGIN", "PRINT", "SET", "DECLARE", "USE", "RAISERROR",
                    "RETURN", "INSERT", "UPDATE", "DELETE", "IF", "WAITFOR", "THROW", "WITH")
_WORD = re.compile(r"[A-Za-z_@#][\w@#$]*|\S")


def _tokens(text: str):
    """(start, end, word upper or '', depth) of the code tokens of text, skipping strings, brackets and
    comments; depth counts parentheses and BEGIN … END blocks."""
    i, n, paren, block = 0, len(text), 0, 0
    while i < n:
        c = text[i]
        if c.isspace():
            i += 1
            continue
        if c in "'[\"" or (c in "Nn" and text[i + 1:i + 2] == "'"):
            close = "]" if c == "[" else '"' if c == '"' else "'"
            j = i + (2 if c in "Nn" else 1)
            while j < n:
                if text[j] == close:
                    if close == "'" and text[j + 1:j + 2] == "'":
                        j += 2
                        continue
                    break
                j += 1
            i = j + 1
            continue
        if text.startswith("--", i):
            j = text.find("\n", i)
            i = n if j < 0 else j
            continue
        m = _WORD.match(text, i)
        assert m is not None
        word = m.group(0).upper()
        if word == "(":
            paren += 1
        elif word == ")":
            paren -= 1
        elif word == "END" and paren == 0:
            block -= 1
        yield m.start(), m.end(), word, paren, block
        if word == "BEGIN" and paren == 0:
            block += 1
        i = m.end()


def split_if(stmt: str) -> tuple[str, str, str | None]:
    """IF <condition> <statement or BEGIN … END> [ELSE <statement or BEGIN … END>] as its three parts."""
    body = stmt.strip()[2:]
    cond_end = None
    for start, _end, word, paren, block in _tokens(body):
        if paren == 0 and block == 0 and word in _STATEMENT_WORDS and start > 0 and body[:start].strip():
            cond_end = start
            break
    if cond_end is None:
        raise EngineError(102, 1, 15, f"Incorrect syntax near '{body.strip()[-30:]}'.")
    cond, rest = body[:cond_end].strip(), body[cond_end:]
    nested_if = 0
    for start, end, word, paren, block in _tokens(rest):
        if paren or block:
            continue
        if word == "IF" and start > 0:
            nested_if += 1
        elif word == "ELSE":
            if nested_if:
                nested_if -= 1  # an ELSE belongs to the nearest IF without one
                continue
            return cond, rest[:start].strip(), rest[end:].strip()
    return cond, rest.strip(), None


def unwrap_block(text: str) -> str:
    """A BEGIN … END block's statements (the text itself when it is one statement)."""
    m = re.fullmatch(r"(?is)\s*BEGIN\b(.*)\bEND\s*;?\s*", text)
    return m.group(1) if m else text
