"""The tree is checked, not just drawn (docs/architecture.md, "Layers"): every import in entsso/ — at the top,
inside a function or under TYPE_CHECKING — points down the layers, never up and never round in a cycle.

    remote ← domain ← estate ← change ← report ← the plugin and the tools
    inventory stands apart (the change and everything above may read it);
    lab imports nothing of the suite, and only the plugin starts it."""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "entsso"

ORDER = ["remote", "domain", "estate", "change", "report"]
# what each layer may import besides itself
ALLOWED = {
    "remote": set(),
    "domain": {"remote"},
    "estate": {"remote", "domain"},
    "inventory": set(),
    "change": {"remote", "domain", "estate", "inventory"},
    "report": {"remote", "domain", "estate", "change", "inventory"},
    "tools": {"remote", "domain", "estate", "change", "inventory"},
    "top": {"remote", "domain", "estate", "change", "report", "inventory", "tools", "top", "lab"},
    "lab": set(),
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def layer(module: str) -> str:
    parts = module.split(".")
    if len(parts) == 1:
        return "top"
    if parts[1] in ALLOWED and parts[1] != "top":
        return parts[1]
    return "top"  # entsso.plugin, entsso.__main__, entsso.discover and the plugin's own split modules


def imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.split(".")[0] == "entsso"}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "entsso":
            out.add(node.module)
            for a in node.names:  # `from entsso.domain import sso` imports a module
                if (PACKAGE.parent / (node.module.replace(".", "/") + "/" + a.name + ".py")).exists() or \
                        (PACKAGE.parent / (node.module.replace(".", "/") + "/" + a.name)).is_dir():
                    out.add(f"{node.module}.{a.name}")
    return out


def graph() -> dict[str, set[str]]:
    return {module_name(p): imports(p) for p in PACKAGE.rglob("*.py")}


def wrong_arrows(g: dict[str, set[str]]) -> list[str]:
    wrong = []
    for importer, imported in g.items():
        for target in imported:
            if target == "entsso":
                continue
            a, b = layer(importer), layer(target)
            if a != b and b not in ALLOWED[a]:
                wrong.append(f"{importer} ({a}) imports {target} ({b})")
    return sorted(wrong)


def test_every_import_points_down_the_layers():
    wrong = wrong_arrows(graph())
    assert not wrong, "\n".join(wrong)


def test_nothing_but_the_plugin_imports_the_lab_and_the_lab_imports_nothing_of_the_suite():
    g = graph()
    users = sorted(m for m, imported in g.items() if layer(m) != "lab" and any(layer(t) == "lab" for t in imported))
    assert users == ["entsso.plugin"], users
    lab_out = sorted(t for m, imported in g.items() if layer(m) == "lab" for t in imported if layer(t) != "lab")
    assert not lab_out, lab_out


def find_cycle(g: dict[str, set[str]]) -> list[str]:
    modules = set(g)
    edges = {m: {t for t in g[m] if t in modules and t != m} for m in modules}
    # a package's __init__ that re-exports its own modules is not a cycle of the layers
    for m in list(edges):
        edges[m] = {t for t in edges[m] if not t.startswith(m + ".")}
    state: dict[str, int] = {}
    cycle: list[str] = []

    def visit(m: str, path: list[str]) -> bool:
        state[m] = 1
        for t in sorted(edges[m]):
            if state.get(t) == 1:
                cycle.extend(path[path.index(t):] + [m, t] if t in path else [m, t])
                return True
            if t not in state and visit(t, path + [m]):
                return True
        state[m] = 2
        return False

    for m in sorted(modules):
        if m not in state and visit(m, []):
            break
    return cycle


def test_no_import_cycle_between_modules():
    cycle = find_cycle(graph())
    assert not cycle, " -> ".join(cycle)


def test_the_checks_themselves_can_fail():
    """A domain module importing the runbook, and two modules importing each other, are caught."""
    assert wrong_arrows({"entsso.domain.x": {"entsso.change.runbook"}}) == [
        "entsso.domain.x (domain) imports entsso.change.runbook (change)"]
    assert wrong_arrows({"entsso.lab.x": {"entsso.remote.winrm"}})
    assert find_cycle({"entsso.domain.a": {"entsso.domain.b"}, "entsso.domain.b": {"entsso.domain.a"}})
    assert not find_cycle({"entsso.domain.a": {"entsso.domain.b"}, "entsso.domain.b": set()})


def test_tests_pre_and_tests_post_only_call_the_checks():
    """Every check lives in entsso.estate.checks: the gate's and the post-state's tests judge what a check
    returns and build no Finding of their own (issue 23: one home for every check)."""
    built = []
    for folder in ("tests_pre", "tests_post"):
        for path in (ROOT / folder).glob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) == "Finding":
                    built.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not built, built
