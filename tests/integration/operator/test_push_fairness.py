"""One tenant's slow pods do not starve another tenant's push.

Twenty pods of namespace `slow` never answer; they ask for more calls than the operator's
shared limit (16) has slots, and get at most half of them. A push to namespace `fast`'s
healthy pod, started while they hold theirs, gets a slot at once and completes in its normal
time (with every slot held by the silent pods it waited 1.2 s, for their deadlines); the slow
push ends within its own fan-out bound, every pod accounted for.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.integration.operator.test_push_limits import CONFIG, actuators, seed
from tests.support.badpeer import BadPeer

pytestmark = pytest.mark.filterwarnings("ignore:read_binary is deprecated:DeprecationWarning")

TIMEOUT_S = 1.5


async def test_a_tenant_with_silent_pods_does_not_delay_another_tenants_push(kube) -> None:
    async with BadPeer("silent") as silent, BadPeer("ok") as healthy:
        await seed(kube, silent.port, pods=20, namespace="slow")
        await seed(kube, healthy.port, pods=1, namespace="fast")
        async with actuators(kube, "slow", "fast", push_timeout_s=TIMEOUT_S) as (slow, fast):
            started = time.monotonic()
            slow_push = asyncio.ensure_future(slow.push(CONFIG))
            await asyncio.sleep(0.3)  # the silent pods hold all the slots they may
            assert silent.open_now == 8  # half of the 16: one namespace never holds them all
            fast_started = time.monotonic()
            fast_result = await asyncio.wait_for(fast.push(CONFIG), 10)
            fast_took = time.monotonic() - fast_started
            slow_result = await asyncio.wait_for(slow_push, 15)
            slow_took = time.monotonic() - started
    assert fast_result == (1, 1, [])
    assert fast_took < TIMEOUT_S / 2, f"the healthy push waited {fast_took:.2f}s for a slot"
    total, acked, errors = slow_result
    assert (total, acked, len(errors)) == (20, 0, 20)
    assert slow_took <= 3 * TIMEOUT_S + 1.0  # its own fan-out bound, queueing included
