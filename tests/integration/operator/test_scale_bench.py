"""bench/operator_scale.py at a few objects: its check of the operator's decisions works.

The benchmark compares each object's first decision in the status the operator wrote with the
decision the same controller takes for that object alone. A form that drifts on one side (a
new field in a decision's snapshot) reads as a wrong decision on every object, so this runs
the real operator, a real Prometheus and the benchmark's own comparison at four objects.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
pytestmark = [pytest.mark.prometheus, pytest.mark.slow, pytest.mark.timeout(300)]


def test_every_first_decision_is_the_controllers_alone(tmp_path: Path) -> None:
    out = tmp_path / "scale.json"
    args = ["--objects", "4", "--interval", "10", "--warmup", "1", "--intervals", "2"]
    done = subprocess.run(
        [sys.executable, str(REPO / "bench" / "operator_scale.py"), *args, "--json", str(out)],
        capture_output=True, text=True, check=False, cwd=REPO, timeout=280,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["decisions_checked"] == 4
    assert result["decision_differences"] == []
    assert result["decision_correct_share"] == 1.0
