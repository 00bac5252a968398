"""The package's import graph points one way: no cycles, keys.py only at the edge, leaf helpers.

Every `import` and `from ... import` inside sora2api/ counts, including those under
TYPE_CHECKING and inside functions: a cycle hidden behind a lazy import is still a cycle a
newcomer has to untangle.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent / "sora2api"
PACKAGE = "sora2api"


def _module_name(path: Path) -> str:
    parts = [PACKAGE, *path.relative_to(ROOT).with_suffix("").parts]
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The package modules `name` imports, anywhere in its source."""
    is_package = path.name == "__init__.py"
    package = name if is_package else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = package.split(".")
                base_parts = base_parts[: len(base_parts) - (node.level - 1)]
                base = ".".join(base_parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            for alias in node.names:
                # `from pkg import name` imports the module pkg.name when there is one.
                sub = f"{base}.{alias.name}"
                found.add(sub if sub in known else base)
    return {m for m in found if m in known and m != name}


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules)
    return {name: _imports(name, path, known) for name, path in modules.items()}


def _components(graph: dict[str, set[str]]) -> list[set[str]]:
    """The strongly connected components of more than one module (Tarjan): each holds cycles."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component: set[str] = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                components.append(component)

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return components


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One concrete (shortest) cycle per tangled component."""
    return [_one_cycle(graph, component) for component in _components(graph)]


def _one_cycle(graph: dict[str, set[str]], component: set[str]) -> list[str]:
    """A shortest path from the component's first module back to itself, inside the component."""
    start = min(component)
    previous: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following: list[str] = []
        for v in frontier:
            for w in sorted(graph[v] & component):
                if w == start:
                    path = [v]
                    while path[-1] != start:
                        path.append(previous[path[-1]])
                    return [start, *reversed(path[:-1]), start]
                if w not in previous:
                    previous[w] = v
                    following.append(w)
        frontier = following
    raise AssertionError(f"no cycle found in component {sorted(component)}")


def test_the_walker_sees_every_kind_of_import() -> None:
    graph = _graph()
    # Relative, parent-relative, `from pkg import module` and the package itself are resolved.
    assert f"{PACKAGE}.keys" in graph[f"{PACKAGE}.routes.common"]
    assert f"{PACKAGE}.routes.admin" in graph[f"{PACKAGE}.routes"]
    assert f"{PACKAGE}.store" in graph[f"{PACKAGE}.app"]
    # Imports inside functions count too (__main__ imports the app lazily to start fast).
    assert f"{PACKAGE}.app" in graph[f"{PACKAGE}.__main__"]
    assert f"{PACKAGE}.simulator.state" in graph
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]


def test_the_import_graph_has_no_cycle() -> None:
    graph = _graph()
    lines = [
        f"  {' -> '.join(_one_cycle(graph, c))}\n    (all tangled: {', '.join(sorted(c))})"
        for c in _components(graph)
    ]
    if lines:
        pytest.fail("import cycles:\n" + "\n".join(lines), pytrace=False)


def test_only_the_app_and_the_routes_import_keys() -> None:
    keys = f"{PACKAGE}.keys"
    importers = sorted(name for name, deps in _graph().items() if keys in deps)
    allowed = [n for n in importers if n == f"{PACKAGE}.app" or n.startswith(f"{PACKAGE}.routes")]
    assert importers == allowed, f"keys.py is imported outside app.py and routes/: {importers}"


def _within(name: str, target: str) -> bool:
    return name == target or name.startswith(f"{target}.")


def _importers(graph: dict[str, set[str]], target: str) -> list[str]:
    """Modules outside `target` (a module or a package) that import it or a module inside it."""
    return sorted(
        name
        for name, deps in graph.items()
        if not _within(name, target) and any(_within(d, target) for d in deps)
    )


def test_imports_point_down_from_the_entry_point() -> None:
    graph = _graph()
    assert _importers(graph, f"{PACKAGE}.app") == [f"{PACKAGE}.__main__"]
    assert _importers(graph, f"{PACKAGE}.routes") == [f"{PACKAGE}.app"]
    # The simulator is the upstream's contract, not a part of the service: neither imports the
    # other, so a test against it proves the service and not a shared helper.
    assert _importers(graph, f"{PACKAGE}.simulator") == []
    simulator = f"{PACKAGE}.simulator"
    outside = {
        dep
        for name, deps in graph.items()
        if _within(name, simulator)
        for dep in deps
        if not _within(dep, simulator)
    }
    assert outside == set()


@pytest.mark.parametrize("leaf", ["mask", "jwt", "upstream.errors", "keys"])
def test_leaf_modules_import_nothing_from_the_package_that_imports_back(leaf: str) -> None:
    graph = _graph()
    name = f"{PACKAGE}.{leaf}"
    if leaf == "keys":
        # keys.py names the types of its AppKeys; those modules must never need keys.py back.
        assert all(f"{PACKAGE}.keys" not in graph[dep] for dep in graph[name])
    else:
        assert graph[name] == set(), f"{name} imports {sorted(graph[name])}"


def test_errors_imports_only_leaf_modules() -> None:
    graph = _graph()
    deps = graph[f"{PACKAGE}.errors"]
    assert all(graph[dep] == set() for dep in deps), {d: sorted(graph[d]) for d in deps}


def test_the_cleanup_contexts_live_in_app_py(tmp_path: Path) -> None:
    from sora2api.app import create_app
    from sora2api.config import build_config

    app = create_app(build_config({}, source="test", env={}, base_dir=str(tmp_path)))
    contexts = list(app.cleanup_ctx)
    assert len(contexts) >= 8
    elsewhere = [
        f"{c.__module__}.{c.__qualname__}" for c in contexts if c.__module__ != "sora2api.app"
    ]
    assert elsewhere == [], "start-up order is read in one place: app.py"
