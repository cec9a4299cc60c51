"""kill -9 of a serving worker mid-batch under load: only its requests in flight are lost.

One round of `bench/local_chaos.py`'s kill campaign on real worker processes (the slow
fixture family, so batches form): two replicas behind the router, an open-loop Poisson load,
SIGKILL to a replica while requests are routed to it, and the actuator's replacement. The
assertions are accounting, not timing: every request sent is recorded, every failure was in
flight on the killed worker (routed to it before its exit, finished after the kill), the
router's own in-flight count agrees with the records, and exactly one replacement is ready
and routed, the dead replica in the router no more.
"""

from __future__ import annotations

import asyncio
import importlib
import math
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from slo_local.actuator import LocalActuator, State
from slo_local.loadgen import LoadGenerator, Router
from slo_operator.types import RuntimeConfig
from tests.integration.demo.conftest import WORKER_ENV

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

BENCH = Path(__file__).resolve().parents[3] / "bench"


def _bench() -> ModuleType:
    """bench/local_chaos.py, imported as a module (the script's own functions are tested)."""
    if str(BENCH) not in sys.path:
        sys.path.append(str(BENCH))
    return importlib.import_module("local_chaos")


async def test_kill_9_mid_batch_loses_only_the_requests_in_flight_on_the_worker(
    slow_model: Path, tmp_path: Path
) -> None:
    chaos = _bench()
    router = Router()
    two = RuntimeConfig(2, 0, 16, "full")
    act = LocalActuator(slow_model, tmp_path, two, router, env=WORKER_ENV)
    try:
        await act.start(timeout_s=90)
        rng = np.random.default_rng(13)
        arrivals = np.cumsum(rng.exponential(1 / 30.0, 3000))  # 30 req/s, far past the end
        gen = LoadGenerator(arrivals, router, ["good food", "bad service"])
        load = asyncio.create_task(gen.run())
        await asyncio.sleep(1.0)
        kill = await chaos.kill_mid_batch(act, router, gen, min_in_flight=1, timeout_s=60)
        await asyncio.sleep(1.0)  # the replacement serves
        gen.stop()
        records = await asyncio.wait_for(load, 60)
        await gen.aclose()

        assert len(records) == gen.sent  # nothing sent goes unrecorded
        counts = chaos.kill_accounting(records, kill, 0.0, math.inf)  # every request
        print(counts)
        assert counts["lost_beyond_in_flight"] == 0, counts["lost_examples"]
        assert counts["in_flight_at_kill"] == kill.in_flight >= 1  # records agree with router
        assert counts["failed"] == counts["failed_in_flight_on_victim"]
        assert counts["ok"] + counts["failed"] == counts["sent"] > 0

        victim = next(r for r in act.replicas if r.name == kill.victim)
        assert victim.state is State.STOPPED
        assert victim.exit_code == -9
        assert kill.recovered_s is not None
        assert len(kill.spawned) == 1  # one replacement, no double
        replacement = next(r for r in act.replicas if r.name == kill.spawned[0])
        assert replacement.state is State.READY
        assert kill.victim not in router.names
        assert sorted(router.names) == sorted(
            r.name for r in act.replicas if r.state is State.READY
        )
        assert len(router.names) == 2
    finally:
        await act.close()
