"""The layers go one way and nothing imports in a circle (issue 29).

    command line (advisor/cli)  →  advisor (ask, audit, recommend, export)  ┐
                                →  trainer (train, merge, eval, probe, demo) ┴→  core (contracts and shared library)

Every import counts, at module level or inside a function: an import inside a function still ties the two
modules together, it only hides the tie from Python's import order. Only imports for type checkers (`if
TYPE_CHECKING:`) are left out: they never run (a method unit names the estimator's request type in its
signatures, the estimator calls the unit)."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("core", "advisor", "trainer")
CLI = "advisor.cli"


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")}


def _type_checking_only(tree: ast.AST) -> set[int]:
    """ids of the import nodes inside `if TYPE_CHECKING:` blocks."""
    out: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            out.update(id(n) for stmt in node.body for n in ast.walk(stmt))
    return out


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """The project modules `name` imports: `from a.b import c` is a.b.c when that is a module, else a.b."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip = _type_checking_only(tree)
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            for alias in node.names:
                target = f"{base}.{alias.name}"
                out.add(target if target in known else base)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
    return {m for m in out if m in known and m != name}


def import_graph() -> dict[str, set[str]]:
    mods = modules()
    known = set(mods)
    return {name: imports_of(name, path, known) for name, path in mods.items()}


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.get(root, ()))))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    m = stack.pop()
                    on_stack.discard(m)
                    component.append(m)
                    if m == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def layer(module: str) -> str:
    if module == CLI or module.startswith(CLI + "."):
        return "cli"
    return module.split(".")[0]


ALLOWED = {  # which layer may import which
    "cli": {"cli", "advisor", "trainer", "core"},
    "advisor": {"advisor", "core"},
    "trainer": {"trainer", "core"},
    "core": {"core"},
}


def wrong_way(graph: dict[str, set[str]]) -> list[str]:
    return sorted(f"{a} -> {b}" for a, targets in graph.items() for b in targets if layer(b) not in ALLOWED[layer(a)])


def test_no_import_circles():
    assert circles(import_graph()) == []


def test_layers_point_one_way():
    assert wrong_way(import_graph()) == []


def test_the_checks_can_fail():
    """A circle hidden behind an import inside a function, and an import up the layers, are both caught."""
    graph = defaultdict(set, {"trainer.a": {"trainer.b"}, "trainer.b": {"trainer.c"}, "trainer.c": {"trainer.a"},
                              "core.x": {"advisor.y"}, "advisor.y": {"trainer.a"}, "advisor.cli.z": {"trainer.a"}})
    assert circles(graph) == [["trainer.a", "trainer.b", "trainer.c"]]
    assert wrong_way(graph) == ["advisor.y -> trainer.a", "core.x -> advisor.y"]


def test_the_graph_sees_imports_inside_functions_not_those_for_type_checkers(tmp_path):
    src = tmp_path / "m.py"
    src.write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from trainer.data import Collator\n"
                   "def f():\n    from core.errors import UserError\n    import trainer.run\n", encoding="utf-8")
    known = {"core.errors", "trainer.run", "trainer.data", "advisor.m"}
    assert imports_of("advisor.m", src, known) == {"core.errors", "trainer.run"}


def test_the_shared_core_is_its_own_package_and_torch_free():
    """core/ holds what both sides read; importing it loads neither torch nor the advisor or the trainer."""
    import subprocess
    import sys

    code = ("import sys, core.errors, core.files, core.methods, core.data, core.estimate, core.train_config, "
            "core.probe_report, core.eval_report, core.conditions, core.exported, core.project; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'advisor', 'trainer', 'transformers'}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "[]"
