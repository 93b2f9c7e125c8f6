"""The dependency rule, checked on the code: every import inside tsegossip/ points down or sideways.

Layers (ARCHITECTURE.md): vocabulary → spec → planner → constructs; the provider uses backends,
observation and the verdict; the commands (check, report, deploy) and the CLI sit on top; the lab sits
beside, on the vocabulary only. Every import counts, function-level ones and those under
`if TYPE_CHECKING:` included (a type-only import upward is still a circle to a reader). No cycles either.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "tsegossip"

VOCABULARY = {"tsegossip", "errors", "phases", "keys", "schemas", "waiting", "atomicfile", "agentshape",
              "agentconfig", "resource_schema", "expectations", "delivery", "statelocation"}

# layer → the layers its modules may import (besides their own)
ALLOWED: dict[str, set[str]] = {
    "vocabulary": set(),
    "spec": {"vocabulary"},
    "planner": {"vocabulary", "spec"},
    "constructs": {"vocabulary", "spec", "planner"},
    "app": {"vocabulary", "spec", "planner", "constructs"},
    "backends": {"vocabulary"},
    "observe": {"vocabulary"},
    "verdict": {"vocabulary", "observe"},
    "provider": {"vocabulary", "backends", "observe", "verdict"},
    "commands": {"vocabulary", "spec", "planner", "observe", "verdict", "commands"},
    "lab": {"vocabulary"},
    "cli": {"vocabulary", "spec", "planner", "observe", "verdict", "commands", "lab"},
}


def layer_of(module: str) -> str:
    parts = module.split(".")
    head = parts[1] if len(parts) > 1 else "tsegossip"
    if head in VOCABULARY:
        return "vocabulary"
    if head in ("spec", "planner", "constructs", "backends", "observe", "verdict", "provider", "lab"):
        if head == "lab" and len(parts) > 2 and parts[2] == "cli":
            return "cli"  # the lab's commands are part of the CLI
        return head
    if head == "app":
        return "app"  # the cdktf app's wiring (main.py's, and inside a user's own App)
    if head in ("repairplan", "rotation"):
        return "planner"  # the repair of stragglers, a key rotation's stages: plans beside the planner, pure
    if head == "accounting":
        return "verdict"  # beside the verdict: observe and the vocabulary only
    if head in ("check", "report", "rotation_report", "deploy", "discover", "repair"):
        return "commands"
    if head in ("cli", "__main__"):
        return "cli"
    raise AssertionError(f"{module}: no layer assigned; add it to tests/test_layers.py and ARCHITECTURE.md")


def module_name(path: Path) -> str:
    rel = path.relative_to(PKG.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path) -> set[str]:
    """The tsegossip modules `path` imports at run time (relative imports resolved)."""
    me = module_name(path)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.split(".")[0] == "tsegossip"}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "tsegossip":
                continue
            out.add(target)
            if not node.module or node.level:  # `from . import observe` names modules too
                out |= {f"{target}.{a.name}" for a in node.names if _is_module(f"{target}.{a.name}")}
        elif isinstance(node, ast.Call) and ast.unparse(node.func).endswith("import_module") and node.args:
            arg = node.args[0]
            if isinstance(arg, ast.Constant) and str(arg.value).startswith("tsegossip"):
                out.add(str(arg.value))
    out.discard(me)
    return out


def _is_module(name: str) -> bool:
    rel = Path(*name.split("."))
    return (PKG.parent / rel).with_suffix(".py").exists() or (PKG.parent / rel / "__init__.py").exists()


def graph() -> dict[str, set[str]]:
    return {module_name(p): imports_of(p) for p in sorted(PKG.rglob("*.py"))}


def violations(g: dict[str, set[str]]) -> list[str]:
    out = []
    for mod, deps in sorted(g.items()):
        mine = layer_of(mod)
        for dep in sorted(deps):
            theirs = layer_of(dep)
            if theirs != mine and theirs not in ALLOWED[mine]:
                out.append(f"{mod} ({mine}) imports {dep} ({theirs}); {mine} may import: "
                           f"{', '.join(sorted(ALLOWED[mine])) or 'nothing outside its layer'}")
    return out


def cycles(g: dict[str, set[str]]) -> list[list[str]]:
    """Import cycles between modules (a package's __init__ importing its own submodules is not one)."""
    def edges(m: str) -> set[str]:
        return {d for d in g.get(m, ()) if d in g and not m.startswith(d + ".") and not d.startswith(m + ".")}

    found, state = [], {}

    def visit(m: str, stack: list[str]) -> None:
        state[m] = 1
        stack.append(m)
        for d in sorted(edges(m)):
            if state.get(d) == 1:
                found.append(stack[stack.index(d):] + [d])
            elif d not in state:
                visit(d, stack)
        stack.pop()
        state[m] = 2

    for m in sorted(g):
        if m not in state:
            visit(m, [])
    return found


def test_every_import_follows_the_layers():
    assert violations(graph()) == []


def test_no_import_cycles():
    assert cycles(graph()) == []


def test_fails_on_an_upward_import():
    g = graph()
    g["tsegossip.planner"] = g["tsegossip.planner"] | {"tsegossip.constructs.gossip"}
    g["tsegossip.observe"] = g.get("tsegossip.observe", set()) | {"tsegossip.provider"}
    problems = violations(g)
    assert any(p.startswith("tsegossip.planner (planner) imports tsegossip.constructs.gossip (constructs)")
               for p in problems), problems
    assert any("imports tsegossip.provider (provider)" in p for p in problems), problems


def test_fails_on_a_cycle():
    g = graph()
    g["tsegossip.phases"] = g["tsegossip.phases"] | {"tsegossip.keys"}
    g["tsegossip.keys"] = g["tsegossip.keys"] | {"tsegossip.phases"}
    assert any(set(c) == {"tsegossip.keys", "tsegossip.phases"} for c in cycles(g)), cycles(g)


def test_reads_relative_function_level_and_lazy_imports(tmp_path):
    # the scanner itself: a function-level relative import is seen
    g = graph()
    assert "tsegossip.constructs._cdk" in g["tsegossip.constructs.gossip"]
    assert "tsegossip.planner" not in g["tsegossip.expectations"]


@pytest.mark.parametrize("module", sorted(graph()))
def test_every_module_has_a_layer(module):
    assert layer_of(module) in ALLOWED
