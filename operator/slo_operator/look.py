"""A look between two steps: the metrics only, nothing read from or written to the cluster.

Between steps the operator (and the local demo) looks at the metrics every
`ControllerParams.look_s` seconds (`--look-interval`, never more often than the scrape
interval). A look asks the controller whether a decision now would answer a clear breach with
replicas or a faster variant (`Controller.urgent`: the quantile over twice the target, or over
it with the recent rate up 25 %); when it would, the caller steps at once instead of at the
next interval. A look learns and books nothing, reads no Kubernetes object (it takes the
configuration and ready replicas the last step saw), and is skipped until a step has decided
(no controller yet, a conflict, a pending change being finished). A metrics failure is no
reason to step early: the next step reports it; nor is a look that fails (logged with its
traceback, as a failed step is).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from slo_operator.errors import MetricsError
from slo_operator.loop import ControlLoop

log = logging.getLogger(__name__)


async def look(loop: ControlLoop, now: float | None = None) -> bool:
    """True when the step should run now (see module docs)."""
    controller, seen = loop.controller, loop.seen
    if controller is None or seen is None:
        return False
    current, ready = seen
    params = controller.params
    now = loop.clock() if now is None else now
    try:
        observation = await loop.metrics.observe(
            params.spec, loop.namespace, ready, now, params.ranges
        )
        return controller.urgent(observation, current, now)
    except MetricsError as exc:
        log.debug("%s/%s: look skipped: %s", loop.namespace, loop.name, exc)
    except Exception:  # a bug in a look must neither end the daemon nor bring a step forward
        log.exception("%s/%s: look failed", loop.namespace, loop.name)
    return False


async def wait_looking(
    loop: ControlLoop,
    seconds: float,
    sleep: Callable[[float], Awaitable[bool]],
    looked: Callable[[], Awaitable[bool]] | None = None,
    clock: Callable[[], float] | None = None,
) -> bool:
    """Wait `seconds` (`sleep(s)` returns True when the wait was cut short: stop), looking
    every `look_s` meanwhile; True when a look found the step due now. `looked` runs one look
    (default: `look(loop)`), e.g. inside the caller's concurrency slot."""
    run = looked or (lambda: look(loop))
    tick = loop.controller.params.look_s if loop.controller is not None else None
    monotonic = clock or asyncio.get_running_loop().time
    end = monotonic() + max(0.0, seconds)
    while True:
        left = end - monotonic()
        if tick is None or left <= tick:
            await sleep(max(0.0, left))
            return False
        if await sleep(tick):
            return False
        if await run():
            return True
