"""The kind suite's gate and setup.

The suite runs against a cluster that is already up with the chart and the demo worker
installed: `make kind-up` (Docker and kind: cluster, images, Prometheus, chart) or
hack/e2e-install.sh on any cluster (GPU clusters included), then `make e2e [KUBECONFIG=...]`.
Bringing a cluster up (image builds, `helm --wait`) never happens inside a test's setup, where
it would count against the per-test timeouts. Without kubectl, a cluster that answers, or the
chart in E2E_NAMESPACE, every e2e test skips with that reason; with LATENCYSLO_REQUIRE_E2E=1
(the GitHub kind job) it fails instead, so the suite can never pass there by skipping.
"""

from __future__ import annotations

import os

import pytest

from tests.e2e.cluster import Kube, current_context, missing_prerequisite

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
        item.add_marker(pytest.mark.skip(reason=f"e2e suite: {reason}"))


@pytest.fixture(scope="session")
def kube() -> Kube:
    kube = Kube(context=current_context())
    kube.reset()
    return kube
