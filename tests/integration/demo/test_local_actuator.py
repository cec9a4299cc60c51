"""LocalActuator on real worker processes: scale up and down under load without losing a
request, push runtime config, replace a crashed replica, leave no process behind."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from slo_local.actuator import LocalActuator, State
from slo_local.loadgen import LoadGenerator, Router
from slo_operator.types import RuntimeConfig
from tests.integration.demo.conftest import WORKER_ENV

pytestmark = pytest.mark.slow


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def _wait(predicate: object, timeout_s: float = 60.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not predicate():  # type: ignore[operator]
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.05)


def _actuator(model: Path, workdir: Path, router: Router, replicas: int = 1) -> LocalActuator:
    """A LocalActuator of `replicas` `full` workers (window 0, batch 32) on `model`."""
    initial = RuntimeConfig(replicas, 0, 32, "full")
    return LocalActuator(
        model_dir=model, workdir=workdir, initial=initial, router=router, env=WORKER_ENV
    )


async def _admin_config(act: LocalActuator) -> list[dict[str, Any]]:
    """Each replica's answer to GET /admin/config."""
    headers = {"Authorization": f"Bearer {act.token}"}
    async with httpx.AsyncClient() as client:
        return [
            (await client.get(r.admin_url + "/admin/config", headers=headers)).json()
            for r in act.replicas
        ]


async def test_scale_up_push_and_scale_down_lose_no_request(
    slow_model: Path, tmp_path: Path
) -> None:
    router = Router()
    act = LocalActuator(
        model_dir=slow_model,
        workdir=tmp_path,
        initial=RuntimeConfig(1, 0, 16, "full"),
        router=router,
        env=WORKER_ENV,
    )
    pids: list[int] = []
    try:
        await act.start()
        assert await act.read() == (RuntimeConfig(1, 0, 16, "full"), 1)
        pids += act.pids()
        rng = np.random.default_rng(1)
        arrivals = np.cumsum(rng.exponential(1 / 40.0, 600))
        arrivals = arrivals[arrivals < 14.0]
        gen = LoadGenerator(arrivals, router, ["good food", "bad service"])
        load = asyncio.create_task(gen.run())
        await asyncio.sleep(1.0)

        up = await act.apply(RuntimeConfig(2, 5, 16, "distilled"))
        assert up.replicas_set
        assert up.config_written
        assert (up.pods_total, up.pods_acknowledged, up.errors) == (1, 1, ())
        assert act.snapshot().starting == 1
        await _wait(lambda: act.ready_count() == 2)
        pids += act.pids()
        assert len(act.startup_seconds()) == 2
        for answer in await _admin_config(act):
            assert answer == {
                "variant": "distilled",
                "batchWindowMs": 5,
                "maxBatchSize": 16,
                "maxQueueWaitMs": 0,  # the workers' own setting: the operator leaves it
            }
        assert (tmp_path / "runtime-config.json").read_text() == (
            '{"batchWindowMs": 5, "maxBatchSize": 16, "variant": "distilled"}'
        )
        await asyncio.sleep(3.0)  # both replicas serve

        down = await act.apply(RuntimeConfig(1, 5, 16, "distilled"))
        assert down.replicas_set
        assert not down.config_written
        victim = next(r for r in act.replicas if r.state is State.DRAINING)
        assert victim.name == "worker-2"  # the newest ready replica goes first
        assert victim.name not in router.names  # out of the Service before it drains
        records = await load
        await _wait(lambda: victim.state is State.STOPPED, 30.0)
        assert victim.exit_code == 0
        assert "drained" in victim.log_path.read_text()

        failed = [r for r in records if not r.ok]
        assert not failed, failed[:5]
        assert len(records) == len(arrivals)
        served_by = {r.replica for r in records}
        assert served_by == {"worker-1", "worker-2"}
        assert {r.variant for r in records} == {"full", "distilled"}
        await gen.aclose()
    finally:
        await act.close()
    assert not [p for p in pids if _alive(p)]
    assert all(r.state is State.STOPPED for r in act.replicas)


async def test_a_crashed_replica_is_replaced(fixture_model: Path, tmp_path: Path) -> None:
    router = Router()
    act = _actuator(fixture_model, tmp_path, router)
    try:
        await act.start()
        first = act.replicas[0]
        os.kill(first.proc.pid, signal.SIGKILL)
        await _wait(lambda: first.state is State.STOPPED)
        assert router.names == []  # no traffic to a dead process
        await _wait(lambda: act.ready_count() == 1)
        assert router.names == ["worker-2"]
        config, ready = await act.read()
        assert (config.replicas, ready) == (1, 1)
    finally:
        await act.close()


async def test_the_queue_wait_limit_is_pushed_once(fixture_model: Path, tmp_path: Path) -> None:
    """A limit the target sets reaches the running workers and is then in force (not written
    again at every step); a target that leaves it changes nothing."""
    act = _actuator(fixture_model, tmp_path, Router())
    try:
        await act.start()
        limited = RuntimeConfig(1, 0, 32, "full", max_queue_wait_ms=60)
        first = await act.apply(limited)
        assert first.config_written
        assert (first.pods_total, first.pods_acknowledged, first.errors) == (1, 1, ())
        assert await act.read() == (limited, 1)
        assert [answer["maxQueueWaitMs"] for answer in await _admin_config(act)] == [60]
        for target in (limited, limited.with_(max_queue_wait_ms=None)):
            again = await act.apply(target)
            assert not again.config_written
            assert again.pods_total == 0
        assert await act.read() == (limited, 1)
    finally:
        await act.close()


async def test_close_stops_starting_replicas_too(fixture_model: Path, tmp_path: Path) -> None:
    act = _actuator(fixture_model, tmp_path, Router())
    await act.start()
    await act.apply(RuntimeConfig(3, 0, 32, "full"))
    pids = act.pids()
    assert len(pids) == 3
    await act.close()
    assert not [p for p in pids if _alive(p)]


@pytest.mark.skipif(
    not hasattr(os, "sched_getaffinity") or len(os.sched_getaffinity(0)) < 2,
    reason="needs at least two CPUs to pin replicas apart",
)
async def test_replicas_are_pinned_to_different_cpus(fixture_model: Path, tmp_path: Path) -> None:
    act = _actuator(fixture_model, tmp_path, Router(), 2)
    try:
        await act.start()
        cpus = [os.sched_getaffinity(r.proc.pid) for r in act.replicas]
        assert all(len(c) == 1 for c in cpus)
        assert cpus[0] != cpus[1]
    finally:
        await act.close()
