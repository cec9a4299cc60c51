"""Sharding by namespace: namespace claims (Leases) against the emulated API server.

Each operator claims the namespaces it watches; an operator whose list overlaps another live
operator's refuses to start, naming the namespace and the holder, and keeps nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

import kmock
import kopf
import pytest
from kubernetes.aio import client as k8s

from slo_operator.run import run_operator
from slo_operator.settings import OperatorSettings, SettingsError, load_settings
from slo_operator.shards import LEASE_NAME, ShardClaims, ShardConflict, holder_of
from tests.support import kube as kb

LEASES = "coordination.k8s.io/v1/leases"

pytestmark = pytest.mark.filterwarnings("ignore:read_binary is deprecated:DeprecationWarning")


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def kube() -> AsyncIterator[kb.KubeEmulator]:
    async with kb.KubeEmulator() as emulator, kmock.Server(emulator):
        yield emulator


@pytest.fixture
async def api(kube: kb.KubeEmulator) -> AsyncIterator[k8s.ApiClient]:
    async with k8s.ApiClient(k8s.Configuration(host=str(kube.url).rstrip("/"))) as client:
        yield client


def lease_holder(kube: kb.KubeEmulator, namespace: str) -> str | None:
    lease = kube.get(LEASES, namespace, LEASE_NAME)
    return None if lease is None else lease["spec"]["holderIdentity"]


async def test_disjoint_lists_both_start(kube, api) -> None:
    a = ShardClaims(api, "ops/a", ["team-a", "team-b"])
    b = ShardClaims(api, "ops/b", ["team-c"])
    await a.acquire()
    await b.acquire()
    assert [lease_holder(kube, ns) for ns in ("team-a", "team-b", "team-c")] == [
        "ops/a",
        "ops/a",
        "ops/b",
    ]
    lease = kube.get(LEASES, "team-a", LEASE_NAME)
    assert lease["spec"]["leaseDurationSeconds"] == 60
    assert lease["metadata"]["labels"] == {"app.kubernetes.io/managed-by": "latencyslo-operator"}


async def test_overlap_refuses_the_second_and_it_keeps_nothing(kube, api) -> None:
    first = ShardClaims(api, "ops/a", ["team-a", "team-b"])
    await first.acquire()
    second = ShardClaims(api, "ops/b", ["team-z", "team-b"])  # team-z free, team-b taken
    with pytest.raises(ShardConflict) as caught:
        await second.acquire()
    message = str(caught.value)
    for part in ("'team-b'", "'ops/a'", "'ops/b'", "watchNamespaces"):
        assert part in message
    assert (caught.value.namespace, caught.value.holder) == ("team-b", "ops/a")
    # the claim it took before the conflict was given back; the first keeps its own
    assert lease_holder(kube, "team-z") is None
    assert second.held == ()
    assert lease_holder(kube, "team-b") == "ops/a"


async def test_the_same_identity_restarting_takes_its_claims_back(kube, api) -> None:
    await ShardClaims(api, "ops/a", ["team-a"]).acquire()  # a pod killed without release
    again = ShardClaims(api, "ops/a", ["team-a"])
    await again.acquire()
    assert again.held == ("team-a",)


async def test_an_expired_claim_is_taken_over_and_the_old_holder_learns_it(kube, api) -> None:
    clock = Clock()
    old = ShardClaims(api, "ops/a", ["team-a"], clock=clock)
    await old.acquire()
    newcomer = ShardClaims(api, "ops/b", ["team-a"], clock=clock)
    with pytest.raises(ShardConflict):
        await newcomer.acquire()  # still valid
    clock.now += 61  # the old holder stopped renewing for longer than the lease
    await newcomer.acquire()
    assert lease_holder(kube, "team-a") == "ops/b"
    with pytest.raises(ShardConflict):
        await old.renew()
    assert old.lost is not None
    assert old.lost.holder == "ops/b"


async def test_release_lets_the_next_operator_start_at_once(kube, api) -> None:
    first = ShardClaims(api, "ops/a", ["team-a"])
    await first.acquire()
    await first.release()
    assert lease_holder(kube, "team-a") is None
    await ShardClaims(api, "ops/b", ["team-a"]).acquire()
    assert lease_holder(kube, "team-a") == "ops/b"


async def test_two_starting_at_the_same_instant_cannot_both_win(kube, api) -> None:
    claimants = [ShardClaims(api, f"ops/{i}", ["team-a", "team-b"]) for i in range(4)]
    outcomes = await asyncio.gather(*(c.acquire() for c in claimants), return_exceptions=True)
    winners = [c for c, o in zip(claimants, outcomes, strict=True) if o is None]
    assert len(winners) <= 1
    assert all(isinstance(o, ShardConflict) for o in outcomes if o is not None)
    holders = {lease_holder(kube, ns) for ns in ("team-a", "team-b")}
    if winners:
        assert holders == {winners[0].identity}


async def test_keep_renews_and_stops_the_operator_when_a_claim_is_lost(kube, api) -> None:
    clock = Clock()
    mine = ShardClaims(api, "ops/a", ["team-a"], clock=clock, renew_s=0.05)
    await mine.acquire()
    renewed_before = kube.get(LEASES, "team-a", LEASE_NAME)["spec"]["renewTime"]
    stop = asyncio.Event()
    keeper = asyncio.create_task(mine.keep(stop))
    clock.now += 5
    await kb.wait_for(
        lambda: kube.get(LEASES, "team-a", LEASE_NAME)["spec"]["renewTime"] != renewed_before,
        what="a renewal",
    )
    assert not stop.is_set()
    # cut off for longer than the lease: another operator takes the namespace over
    keeper.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await keeper
    clock.now += 120
    await ShardClaims(api, "ops/b", ["team-a"], clock=clock).acquire()
    keeper = asyncio.create_task(mine.keep(stop))
    await asyncio.wait_for(stop.wait(), timeout=5)
    await keeper
    assert mine.lost is not None
    assert mine.lost.holder == "ops/b"


def test_holder_of_reads_expiry() -> None:
    lease = {
        "spec": {
            "holderIdentity": "x",
            "leaseDurationSeconds": 60,
            "renewTime": "2026-01-01T00:00:00.000000Z",
        }
    }
    at = 1767225600.0  # 2026-01-01T00:00:00Z
    assert holder_of(lease, at + 59) == "x"
    assert holder_of(lease, at + 61) is None
    assert holder_of({"spec": {}}, at) is None


def test_shard_id_settings() -> None:
    settings = load_settings(
        {"shard_id": "latencyslo-system/shard-a", "namespaces": ("team-a",)}, environ={}
    )
    assert settings.shard_id == "latencyslo-system/shard-a"
    env = {"LATENCYSLO_SHARD_ID": "a", "LATENCYSLO_NAMESPACES": "x,y"}
    assert load_settings({}, environ=env).shard_id == "a"
    assert load_settings({}, environ={}).shard_id is None
    with pytest.raises(SettingsError, match="needs --namespace"):
        load_settings({"shard_id": "a"}, environ={})
    with pytest.raises(SettingsError, match="--shard-id / \\$LATENCYSLO_SHARD_ID"):
        load_settings({"shard_id": "bad id!", "namespaces": ("x",)}, environ={})


# ------------------------------------------------------------------ the operator itself


def settings_for(namespaces: tuple[str, ...], shard_id: str) -> OperatorSettings:
    return OperatorSettings(
        prometheus_url="http://127.0.0.1:9",
        namespaces=namespaces,
        standalone=True,
        metrics_port=0,
        liveness=None,
        shard_id=shard_id,
    )


async def start(kube: kb.KubeEmulator, settings: OperatorSettings, stop: asyncio.Event) -> Any:
    url = str(kube.url).rstrip("/")
    ready = asyncio.Event()
    task = asyncio.create_task(
        run_operator(
            settings,
            api_configuration=k8s.Configuration(host=url),
            connection=kopf.ConnectionInfo(server=url, insecure=True),
            stop_flag=stop,
            ready_flag=ready,
        )
    )
    await asyncio.wait(
        [task, asyncio.ensure_future(ready.wait())], return_when=asyncio.FIRST_COMPLETED
    )
    return task


async def test_the_second_operator_with_an_overlapping_list_refuses_to_start(kube) -> None:
    stop_a, stop_b, stop_c = asyncio.Event(), asyncio.Event(), asyncio.Event()
    a = await start(kube, settings_for(("team-a", "team-b"), "ops/shard-a"), stop_a)
    try:
        assert not a.done()
        assert lease_holder(kube, "team-b") == "ops/shard-a"

        b = await start(kube, settings_for(("team-b", "team-c"), "ops/shard-b"), stop_b)
        with pytest.raises(ShardConflict, match="'team-b' is already watched by the operator"):
            await asyncio.wait_for(b, timeout=10)
        assert lease_holder(kube, "team-c") is None  # nothing kept by the refused one
        # no watch was opened by the refused operator in team-c
        assert not any(
            "/namespaces/team-c/latencyslos" in r.url.path and r.method.value == "GET" for r in kube
        )

        c = await start(kube, settings_for(("team-c",), "ops/shard-c"), stop_c)
        assert not c.done()
        assert lease_holder(kube, "team-c") == "ops/shard-c"
        assert not a.done()
        stop_c.set()
        await asyncio.wait_for(c, timeout=20)
        assert lease_holder(kube, "team-c") is None  # given back on a clean stop
    finally:
        stop_a.set()
        await asyncio.wait_for(a, timeout=20)
    assert lease_holder(kube, "team-a") is None
    assert lease_holder(kube, "team-b") is None
