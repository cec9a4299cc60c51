"""Small modules with one job: no module of the operator package grows past ~500 lines."""

from __future__ import annotations

from pathlib import Path

import slo_contracts
import slo_operator

LIMIT = 520
PACKAGES = (Path(slo_operator.__file__).parent, Path(slo_contracts.__file__).parent)


def _sizes() -> dict[str, int]:
    sizes: dict[str, int] = {}
    for root in PACKAGES:
        for path in root.rglob("*.py"):
            name = str(path.relative_to(root)) if root == PACKAGES[0] else f"({path.name})"
            sizes[name] = len(path.read_text().splitlines())
    return sizes


def test_no_module_over_the_limit() -> None:
    over = {name: lines for name, lines in _sizes().items() if lines > LIMIT}
    assert over == {}


def test_the_control_loop_is_orchestration_only() -> None:
    assert _sizes()["loop.py"] <= 300
