"""Load a `bench/` script as a module (the benchmarks are scripts, not a package)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

BENCH = Path(__file__).resolve().parents[3] / "bench"


def load(script: str, module_name: str) -> ModuleType:
    """`bench/<script>` executed as a fresh module named `module_name`."""
    spec = importlib.util.spec_from_file_location(module_name, BENCH / script)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
