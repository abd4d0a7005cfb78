"""The package's layers: a module imports only from its own layer or lower ones, and nothing imports in a
circle. Every ``hhrnet_rt`` import counts, function-level ones included (a lazy import is for a heavy
optional dependency, never a way around this rule).

The layers, lowest first (docs/architecture.md, "Layout"; ``../shared/DESIGN.md``):

    core, data, _version  <  overlay, poses, draw, artifacts, endpoints  <  model, decode  <  runtime  <  track
      <  export, video  <  serve, cluster, bench, val  <  cli  <  the package root (the public facade)
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "hhrnet_rt"

# Layer of each top-level name under hhrnet_rt (a module or a sub-package); lower numbers are lower.
LAYERS: dict[str, int] = {
    "_version": 0,
    "core": 0,
    "data": 0,  # the bundled sample clip and its annotations (hhrnet_rt/data)
    "poses": 1,
    "draw": 1,
    "overlay": 1,  # the array-level drawing under poses.Poses.plot and draw.PoseAnnotator
    "artifacts": 1,
    "endpoints": 1,  # small HTTP endpoints (metrics, health, a live view): standard library and core only
    "model": 2,
    "decode": 2,
    "runtime": 3,
    "track": 4,
    "export": 5,
    "video": 5,
    "serve": 6,
    "cluster": 6,
    "bench": 6,
    "val": 6,  # room named for the evaluation package
    "cli": 7,
    "__main__": 8,
}
ROOT_LAYER = 8  # hhrnet_rt/__init__.py: the public facade may re-export from any layer

# Edges that break the rule today. It must stay empty: fix the code, never extend this list.
ALLOWED: set[tuple[str, str]] = set()


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}


def resolve(importer: str, is_package: bool, node: ast.ImportFrom) -> str:
    """The absolute module an ``ImportFrom`` names (relative imports resolved)."""
    if not node.level:
        return node.module or ""
    base = importer.split(".") if is_package else importer.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def imports_of(name: str, path: Path) -> set[str]:
    """Every hhrnet_rt module ``name`` imports, at any depth of the file (``from pkg import sub`` counts
    as an import of ``pkg.sub`` when that is a module)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "hhrnet_rt")
        elif isinstance(node, ast.ImportFrom):
            target = resolve(name, path.name == "__init__.py", node)
            if target.split(".")[0] != "hhrnet_rt":
                continue
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                found.add(sub if sub in MODULES else target)
    found.discard(name)
    return found


GRAPH = {name: imports_of(name, path) for name, path in MODULES.items()}


def layer_of(module: str) -> int:
    parts = module.split(".")
    if len(parts) == 1:
        return ROOT_LAYER
    if parts[1] not in LAYERS:
        raise AssertionError(f"{module}: hhrnet_rt.{parts[1]} has no layer; add it to LAYERS in this file")
    return LAYERS[parts[1]]


def test_every_module_has_a_layer():
    for name in MODULES:
        layer_of(name)


def test_no_import_runs_up_the_layers():
    upward = sorted(
        (importer, imported)
        for importer, targets in GRAPH.items()
        for imported in targets
        if layer_of(imported) > layer_of(importer) and (importer, imported) not in ALLOWED
    )
    assert not upward, "imports that run up the layers:\n" + "\n".join(f"  {a} -> {b}" for a, b in upward)


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm (iterative): the components of more than one module, i.e. the import cycles."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    cycles: list[list[str]] = []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph.get(start, ()))))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
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
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    cycles.append(sorted(component))
    return cycles


def test_no_import_cycles():
    graph = {a: {b for b in targets if (a, b) not in ALLOWED} for a, targets in GRAPH.items()}
    cycles = strongly_connected(graph)
    assert not cycles, "import cycles:\n" + "\n".join("  " + " <-> ".join(c) for c in cycles)


def test_the_allow_list_is_empty():
    assert not ALLOWED, "the layer rule has exceptions again; fix the imports instead"


@pytest.mark.parametrize(
    ("graph", "expected"),
    [
        ({"a": {"b"}, "b": {"a"}, "c": set()}, [["a", "b"]]),
        ({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}, [["a", "b", "c"]]),
        ({"a": {"b"}, "b": set()}, []),
    ],
)
def test_cycle_finder(graph, expected):
    assert strongly_connected(graph) == expected


def test_the_walk_sees_function_level_and_relative_imports(tmp_path):
    source = "def f():\n    from hhrnet_rt.cli import app\n    from . import paths\n"
    path = tmp_path / "x.py"
    path.write_text(source)
    found = imports_of("hhrnet_rt.core.x", path)
    assert found == {"hhrnet_rt.cli.app", "hhrnet_rt.core.paths"}


def graph_by_layer() -> dict[int, list[str]]:
    """For a failing run's eye: modules per layer."""
    out: dict[int, list[str]] = defaultdict(list)
    for name in MODULES:
        out[layer_of(name)].append(name)
    return out
