"""The shape of src/: no import circles between modules or between packages, short modules, packages that say their job.

Imports are read with `ast`, not by importing: those under ``if TYPE_CHECKING:``
and inside functions count too (a circle a type checker or a late import
hides is still a circle in the design).
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"
MAX_LINES = 500

Graph = dict[str, set[str]]


def module_files(src: Path = SRC) -> dict[str, Path]:
    """Every module under ``src``, by dotted name (a package by its ``__init__``)."""
    modules = {}
    for path in sorted(src.rglob("*.py")):
        parts = path.relative_to(src).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


def imported(name: str, path: Path, known: Iterable[str]) -> set[str]:
    """The modules of ``known`` that module ``name`` (at ``path``) imports, wherever the import stands."""
    known = set(known)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()

    def nearest(dotted: str) -> str | None:
        while dotted and dotted not in known:
            dotted = dotted.rpartition(".")[0]
        return dotted or None

    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            # `from pkg import name`: the module pkg.name if there is one, else pkg itself.
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names]
        else:
            continue
        found.update(module for target in targets if (module := nearest(target)) is not None)
    found.discard(name)
    return found


def module_graph(src: Path = SRC) -> Graph:
    files = module_files(src)
    return {name: imported(name, path, files) for name, path in files.items()}


def package_of(module: str, files: Mapping[str, Path]) -> str:
    """The node a module belongs to in the package graph: its folder, but each top-level module of transports alone."""
    if files[module].name == "__init__.py":
        return module
    parent = module.rpartition(".")[0]
    return module if parent in ("", "transports") else parent


def package_graph(modules: Graph, files: Mapping[str, Path]) -> Graph:
    packages: Graph = {}
    for module, targets in modules.items():
        source = package_of(module, files)
        edges = packages.setdefault(source, set())
        edges.update(package_of(target, files) for target in targets)
        edges.discard(source)
    return packages


def circles(graph: Graph) -> list[list[str]]:
    """One circle (``a -> b -> ... -> a``) for each group of nodes that reach each other; [] if the graph is acyclic."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[set[str]] = []

    def connect(node: str) -> None:  # Tarjan's strongly connected components
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                connect(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.add(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(group)

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return [_circle_in(graph, group) for group in groups]


def _circle_in(graph: Graph, group: set[str]) -> list[str]:
    """A shortest circle through the first node of ``group`` (breadth first, inside the group)."""
    start = min(group)
    came_from: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for target in sorted(graph.get(node, set()) & group):
                if target == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(came_from[path[-1]])
                    return [*reversed(path), start]
                if target not in came_from:
                    came_from[target] = node
                    following.append(target)
        frontier = following
    raise AssertionError(f"no circle in {group}")


def describe(found: list[list[str]]) -> str:
    return "\n".join(" -> ".join(circle) for circle in found)


def test_no_circle_between_modules() -> None:
    found = circles(module_graph())
    assert not found, "import circles between modules:\n" + describe(found)


def test_no_circle_between_packages() -> None:
    files = module_files()
    found = circles(package_graph(module_graph(), files))
    assert not found, "import circles between packages:\n" + describe(found)


@pytest.mark.parametrize("name", sorted(module_files()))
def test_module_is_short(name: str) -> None:
    lines = len(module_files()[name].read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_LINES, f"{name} has {lines} lines (at most {MAX_LINES})"


def test_every_package_says_its_job() -> None:
    folders = {path.parent for path in SRC.rglob("*.py")} - {SRC}
    silent = []
    for folder in sorted(folders):
        init = folder / "__init__.py"
        docstring = ast.get_docstring(ast.parse(init.read_text(encoding="utf-8"))) if init.exists() else None
        if not (docstring and docstring.strip()):
            silent.append(str(folder.relative_to(SRC)))
    assert not silent, f"packages without an __init__.py docstring: {silent}"


def test_a_circle_is_found(tmp_path: Path) -> None:
    """The checks above see circles of every kind they claim to: relative, under TYPE_CHECKING, in a function."""
    package = tmp_path / "top"
    for folder, text in {
        "": '"""Top."""\n',
        "low": '"""Low."""\n',
        "high": '"""High."""\n',
    }.items():
        (package / folder).mkdir(parents=True, exist_ok=True)
        (package / folder / "__init__.py").write_text(text)
    (package / "low" / "a.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ..high.b import B\n"
    )
    (package / "high" / "b.py").write_text("def f():\n    from top.low import c\nclass B: ...\n")
    (package / "low" / "c.py").write_text("from . import a\n")
    modules = module_graph(tmp_path)
    assert modules["top.low.a"] == {"top.high.b"}
    assert modules["top.high.b"] == {"top.low.c"}
    assert modules["top.low.c"] == {"top.low.a"}
    assert circles(modules) == [["top.high.b", "top.low.c", "top.low.a", "top.high.b"]]
    packages = package_graph(modules, module_files(tmp_path))
    assert circles(packages) == [["top.high", "top.low", "top.high"]]
    (package / "low" / "c.py").write_text("")
    modules = module_graph(tmp_path)
    assert circles(modules) == []
    assert circles(package_graph(modules, module_files(tmp_path))) == [["top.high", "top.low", "top.high"]]
