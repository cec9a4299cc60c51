"""The decision core and the model stay pure: no cluster, HTTP, metrics or torch imports."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import slo_operator

FORBIDDEN = (
    "kopf",
    "kubernetes",
    "httpx",
    "prometheus_api_client",
    "prometheus_client",
    "aiohttp",
    "torch",
)
PACKAGE = Path(slo_operator.__file__).parent
PURE = sorted((PACKAGE / "policy").rglob("*.py")) + sorted((PACKAGE / "model").rglob("*.py"))


def _imported(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize("path", PURE, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_module_imports_nothing_forbidden(path: Path) -> None:
    bad = {n for n in _imported(path) if n.split(".")[0] in FORBIDDEN}
    assert not bad, f"{path.name} imports {bad}"


def test_importing_the_core_loads_nothing_forbidden() -> None:
    code = (
        "import sys, slo_operator.policy, slo_operator.model; "
        f"print(','.join(m for m in {FORBIDDEN!r} if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == ""


def test_there_is_something_to_check() -> None:
    assert len(PURE) >= 5
