"""A short fuzz run of `latencyslo validate` (the long one: bench/fuzz_validate.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from slo_operator import validate
from tests.support.validate_fuzz import Generator, fuzz, run_once

EXAMPLES = [
    yaml.safe_load(path.read_text())
    for path in sorted((Path(__file__).parents[3] / "examples").glob("*.yaml"))
]


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_generated_and_hostile_manifests_get_a_verdict_each() -> None:
    report = fuzz(300, seed=7, examples=EXAMPLES)
    assert report.violations == []
    # both paths exercised
    assert report.valid > 10, report.as_json()
    assert report.invalid > 100, report.as_json()


def test_the_generator_makes_valid_and_invalid_cases() -> None:
    gen = Generator(3, EXAMPLES)
    kinds = {gen.text()[0] for _ in range(200)}
    assert {"schema", "one-field", "truncated", "deep-nesting"} <= kinds


def test_a_crash_would_be_seen(monkeypatch: pytest.MonkeyPatch) -> None:
    """A validator that raises is reported as a violation, not passed over."""
    code, output, exception, _ = run_once(b"apiVersion: latencyslo.io/v1alpha1\nkind: [\n")
    assert exception is None
    assert code == 1
    assert "Traceback" not in output

    def boom(*_: object, **__: object) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(validate, "problems_of", boom)
    report = fuzz(20, seed=1, examples=EXAMPLES)
    assert report.violations
    assert any("RuntimeError" in p for v in report.violations for p in v["problems"])
