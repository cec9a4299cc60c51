"""The import graph: no cycles, and the worker, the operator and the local tooling meet only
through `slo_contracts` (the operator image ships neither the worker nor the local tooling).

Every import statement counts, also one inside a function: a lazy import still ties the two
modules together."""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import inference_worker
import slo_contracts
import slo_local
import slo_operator

ROOTS = {
    pkg.__name__: Path(pkg.__file__).parent
    for pkg in (slo_operator, slo_contracts, slo_local, inference_worker)
}
MAY_IMPORT = {
    "slo_contracts": set(),
    "inference_worker": {"slo_contracts"},
    "slo_operator": {"slo_contracts"},
    "slo_local": {"slo_contracts", "slo_operator", "inference_worker"},
}


def _modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for package, root in ROOTS.items():
        for path in sorted(root.rglob("*.py")):
            parts = (package, *path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join(parts)] = path
    return found


MODULES = _modules()


def _imports(path: Path, module: str) -> Iterator[str]:
    """Every module named by an import statement of `path` (relative ones resolved)."""
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".")
                anchor = anchor[: len(anchor) - node.level + (1 if is_package else 0)]
                base = ".".join([*anchor, base] if base else anchor)
            yield base
            yield from (f"{base}.{alias.name}" for alias in node.names)


def _graph() -> dict[str, set[str]]:
    return {
        name: {m for m in _imports(path, name) if m in MODULES and m != name}
        for name, path in MODULES.items()
    }


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

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
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 10 * len(graph)))
    try:
        for v in sorted(graph):
            if v not in index:
                visit(v)
    finally:
        sys.setrecursionlimit(limit)
    return found


def test_no_import_cycles() -> None:
    assert _cycles(_graph()) == []


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


@pytest.mark.parametrize("package", sorted(MAY_IMPORT))
def test_packages_meet_only_through_the_contracts(package: str) -> None:
    others = set(MAY_IMPORT) - {package}
    bad = sorted(
        f"{name} imports {target}"
        for name, path in MODULES.items()
        if name.split(".")[0] == package
        for target in _imports(path, name)
        if target.split(".")[0] in others - MAY_IMPORT[package]
    )
    assert bad == []


def test_the_contracts_need_only_the_standard_library() -> None:
    outside = sorted(
        f"{name} imports {target}"
        for name, path in MODULES.items()
        if name.startswith("slo_contracts")
        for target in _imports(path, name)
        if target
        and target.split(".")[0] not in sys.stdlib_module_names
        and not target.startswith("slo_contracts")
    )
    assert outside == []


def test_every_package_is_seen() -> None:
    seen = {name.split(".")[0] for name in MODULES}
    assert seen == set(MAY_IMPORT)
    assert len(MODULES) > 40
