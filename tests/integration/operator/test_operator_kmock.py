"""The operator end to end: kopf's real reactor against kmock's Kubernetes emulator."""

from __future__ import annotations

import json

from tests.integration.operator.conftest import (
    DEPLOYMENT,
    NAMESPACE,
    actuation_writes,
    condition,
    operator_settings,
    running_operator,
    seed_workload,
    slo_spec,
    status_of,
)
from tests.support import kube as kb


async def test_create_fills_status(kube, prometheus_api, pods, profiles_file):
    await seed_workload(kube, pods)
    settings = operator_settings(prometheus_api.url, profiles_file)
    async with running_operator(kube, settings):
        await kube.create(kb.LATENCYSLOS, kb.latencyslo(NAMESPACE, "sentiment", slo_spec()))
        await kb.wait_for(lambda: condition(status_of(kube), "SLOMet"), what="SLOMet condition")
        status = status_of(kube)
        print(json.dumps(status, indent=2))
    assert status["observed"]["p99Ms"] == 60.0
    assert actuation_writes(kube) == []
