"""Fixture model families shared by the worker integration tests (built once per session)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.worker import build_fixture_family


@pytest.fixture(scope="session")
def fixture_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny three-variant family."""
    return build_fixture_family(tmp_path_factory.mktemp("fixture-model"))


@pytest.fixture(scope="session")
def slow_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same family, each forward pass taking 40 ms more (queues build up)."""
    return build_fixture_family(tmp_path_factory.mktemp("slow-model"), delay_ms=40)
