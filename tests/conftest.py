"""Suite-wide rules.

- `@pytest.mark.prometheus` tests need the real `prometheus` binary. Without it they skip with
  that reason, except when LATENCYSLO_REQUIRE_PROMETHEUS=1 (CI), where they fail instead, so a
  missing install can never pass silently.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from slo_local.promserver import PrometheusServer, prometheus_binary

REQUIRE_PROMETHEUS = os.environ.get("LATENCYSLO_REQUIRE_PROMETHEUS") == "1"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if prometheus_binary():
        return
    for item in items:
        if "prometheus" in item.keywords:
            if REQUIRE_PROMETHEUS:
                raise pytest.UsageError(
                    "LATENCYSLO_REQUIRE_PROMETHEUS=1 but the 'prometheus' binary is not on PATH "
                    "(apt-get install prometheus)"
                )
            item.add_marker(
                pytest.mark.skip(
                    reason="needs the 'prometheus' binary on PATH (apt-get install prometheus)"
                )
            )


@pytest.fixture
def prometheus() -> Iterator[PrometheusServer]:
    """A real Prometheus on a free loopback port, scraping every second, file-based targets."""
    with PrometheusServer(scrape_interval_s=1.0) as server:
        yield server
