"""The shape of the package, read from its source: the import graph of src/superlens (every import
statement, at module level or inside a function, TYPE_CHECKING blocks included) has no circle; the
lower rooms (toy/, measures/, active/, capture/, profile/) never import the upper ones (report/,
sweep/, studies/); no module is over 600 lines; no private name (_x) is imported from another
module."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "superlens"
# the models, the measures, the study that trains, reading any model's layers and measuring them
LOWER = ("toy", "measures", "active", "capture", "profile")
UPPER = ("report", "sweep", "studies")  # what draws, sweeps and registers them
MAX_LINES = 600
# Modules allowed over MAX_LINES, each with its reason (none today).
OVER_MAX_LINES: set[str] = set()


def module_files() -> dict[str, Path]:
    """Dotted module name -> file, for every .py under src/superlens (a package is its __init__)."""
    out = {}
    for p in sorted(SRC.rglob("*.py")):
        parts = list(p.relative_to(SRC.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = p
    return out


def _resolve(name: str, mods: dict[str, Path]) -> str | None:
    """The superlens module that `name` lands in (the longest known prefix), or None if foreign."""
    while name and name not in mods:
        name = name.rpartition(".")[0]
    return name or None


def imports(mods: dict[str, Path]) -> tuple[dict[str, set[str]], list[tuple[str, str]]]:
    """(edges: module -> the superlens modules it imports, private: [(module, 'pkg.mod._name')])."""
    edges: dict[str, set[str]] = {m: set() for m in mods}
    private = []
    for m, path in mods.items():
        package = m if path.name == "__init__.py" else m.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [_resolve(a.name, mods) for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative: from the package, up level - 1
                    up = package.split(".")[:len(package.split(".")) - node.level + 1]
                    base = ".".join(up + ([base] if base else []))
                targets = []
                for a in node.names:
                    full = f"{base}.{a.name}"
                    if full in mods:  # a submodule
                        targets.append(full)
                        continue
                    targets.append(_resolve(base, mods))
                    if a.name.startswith("_") and targets[-1] is not None:
                        private.append((m, full))
            else:
                continue
            edges[m].update(t for t in targets if t is not None and t != m)
    return edges, private


def circles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def _room(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


@pytest.fixture(scope="module")
def graph():
    mods = module_files()
    edges, private = imports(mods)
    return mods, edges, private


def test_the_graph_reader_sees_every_kind_of_import(tmp_path):
    """The reader itself, on a made-up package: module-level, function-level, relative and
    TYPE_CHECKING imports are edges; a three-module circle is found; a private name is caught."""
    pkg = tmp_path / "superlens"
    (pkg / "a").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "a" / "__init__.py").write_text("from superlens.a.x import thing\n")
    (pkg / "a" / "x.py").write_text("def f():\n    from .y import _hidden\n")
    (pkg / "a" / "y.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                                    "    import superlens.a\n")
    (pkg / "b.py").write_text("import os\nfrom superlens import a\n")
    mods = {}
    for p in sorted(pkg.rglob("*.py")):
        parts = list(p.relative_to(tmp_path).with_suffix("").parts)
        mods[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = p
    edges, private = imports(mods)
    assert edges["superlens.b"] == {"superlens.a"}
    assert edges["superlens.a.x"] == {"superlens.a.y"}
    assert circles(edges) == [["superlens.a", "superlens.a.x", "superlens.a.y"]]
    assert private == [("superlens.a.x", "superlens.a.y._hidden")]


def test_no_import_circle(graph):
    _, edges, _ = graph
    assert circles(edges) == [], "import circles (each a set of modules that import each other)"


def test_lower_rooms_never_import_the_upper_ones(graph):
    _, edges, _ = graph
    upward = sorted((m, t) for m, ts in edges.items() if _room(m) in LOWER
                    for t in ts if _room(t) in UPPER)
    assert upward == []


def test_no_module_over_600_lines(graph):
    mods, _, _ = graph
    sizes = {m: len(p.read_text().splitlines()) for m, p in mods.items()}
    over = {m: n for m, n in sizes.items() if n > MAX_LINES and m not in OVER_MAX_LINES}
    assert over == {}, f"modules over {MAX_LINES} lines: split them along their jobs"


def test_no_private_name_crosses_a_module(graph):
    _, _, private = graph
    assert private == [], "a name shared between modules is public (no leading underscore)"
