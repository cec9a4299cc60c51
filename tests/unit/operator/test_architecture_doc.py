"""docs/architecture.md names the module that owns each stage of a control step: every module
it names exists, and every module of the operator's top level is named (a split or a rename
that leaves the document behind fails here)."""

from __future__ import annotations

import re
from pathlib import Path

import slo_local
import slo_operator

REPO = Path(__file__).resolve().parents[3]
DOC = REPO / "docs" / "architecture.md"
OPERATOR = Path(slo_operator.__file__).parent
LOCAL = Path(slo_local.__file__).parent
NAMED = re.compile(r"`((?:[\w]+/)*[\w]+\.py|[\w]+/)`")


def _named() -> set[str]:
    return set(NAMED.findall(DOC.read_text()))


def _exists(name: str) -> bool:
    """Paths are relative to the operator package, to `local/`, or to the repository."""
    return any((root / name).exists() for root in (OPERATOR, LOCAL.parent, REPO))


def test_every_module_named_exists() -> None:
    named = _named()
    assert len(named) > 20  # the pattern still finds the names
    assert sorted(name for name in named if not _exists(name)) == []


def test_every_top_level_module_is_named() -> None:
    top = {path.name for path in OPERATOR.glob("*.py")} - {"__init__.py"}
    # the process entry points and settings are not stages of a step
    outside = {"cli.py", "run.py", "settings.py", "shards.py", "types.py"}
    assert sorted(top - outside - _named()) == []
