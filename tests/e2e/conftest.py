"""The kind suite's gate and setup.

Without Docker (a daemon answering `docker info`), kind, kubectl or helm every e2e test skips
with that reason; with LATENCYSLO_REQUIRE_E2E=1 (the GitHub kind job) it fails instead, so the
suite can never pass there by skipping. The session fixture runs hack/kind-up.sh (cluster,
images, Prometheus, chart with the demo worker) unless LATENCYSLO_E2E_SKIP_SETUP=1.
"""

from __future__ import annotations

import os
import subprocess

import pytest

from tests.e2e.cluster import REPO, Kube, missing_prerequisite

REQUIRE_E2E = os.environ.get("LATENCYSLO_REQUIRE_E2E") == "1"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    e2e = [item for item in items if item.get_closest_marker("e2e")]
    if not e2e:
        return
    reason = missing_prerequisite()
    if reason is None:
        return
    if REQUIRE_E2E:
        raise pytest.UsageError(f"LATENCYSLO_REQUIRE_E2E=1 but the kind suite cannot run: {reason}")
    for item in e2e:
        item.add_marker(pytest.mark.skip(reason=f"kind suite needs Docker and kind: {reason}"))


@pytest.fixture(scope="session")
def kube() -> Kube:
    if os.environ.get("LATENCYSLO_E2E_SKIP_SETUP") != "1":
        subprocess.run(["bash", str(REPO / "hack" / "kind-up.sh")], cwd=REPO, check=True)
    kube = Kube()
    kube.reset()
    return kube
