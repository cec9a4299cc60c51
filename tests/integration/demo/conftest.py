"""Fixtures of the demo's integration tests: model families and worker environments."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.support.worker import REPO_ROOT, build_fixture_family

WORKER_ENV = {"PYTHONPATH": os.pathsep.join([str(REPO_ROOT), str(REPO_ROOT / "operator")])}
"""Workers of the fixture families import `tests.support.worker` (the slow classifier)."""


@pytest.fixture(scope="session")
def fixture_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny three-variant family (starts in a few seconds, answers in ~1 ms)."""
    return build_fixture_family(tmp_path_factory.mktemp("demo-fixture-model"))


@pytest.fixture(scope="session")
def slow_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny family with 8 ms more per forward pass: queues and batches form."""
    return build_fixture_family(tmp_path_factory.mktemp("demo-slow-model"), delay_ms=8)
