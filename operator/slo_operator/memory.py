"""The control loop's memory and how it is persisted.

`LoopMemory` is what the loop remembers between steps besides the controller's own state: the
attainment ledger (`attainment.lastHour`), when the last step ran, and whether an SLOBreached
Event is outstanding. `LoopMemory.dump(controller_memory)` is the JSON stored on the object.

`Persister` writes status and memory through the `StateStore` only when they changed:

- the **status** when it differs from the last one written, ignoring `observed.sampledAt`,
  and at least every `STATUS_REFRESH_S` (so `sampledAt` still shows a live operator);
- the **memory** when its durable part changed (everything except what moves with the clock:
  ledgers, recommendation and rate histories, the last quantile, the learned factors' last
  digits), and at least every `MEMORY_CHECKPOINT_S`. A restart loses at most one checkpoint
  of the clock-driven part; it resets trust anyway.

A forced save (the intent recorded before acting) writes both.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from slo_operator import status as st
from slo_operator.ports import StateStore
from slo_operator.spec import LatencySLOSpec, LatencySLOStatus
from slo_operator.types import Observation

MEMORY_VERSION = 1
ATTAINMENT_WINDOW_S = 3600.0
STATUS_REFRESH_S = 300.0
"""An unchanged status is written again after this long (its `observed.sampledAt` moves)."""
MEMORY_CHECKPOINT_S = 300.0
"""The memory's clock-driven part is written at least this often."""
_PROGRESS = frozenset(
    {
        "lastDecisionAt",
        "freshSince",
        "recommendations",
        "rates",
        "lastP99",
        "degraded",
        "correctionSamples",
    }
)
"""Controller-state fields that move with the clock: checkpointed, not compared."""


@dataclass(slots=True)
class LoopMemory:
    """The loop's own memory (see module docs)."""

    controller: Mapping[str, Any] | None = None
    """The controller's saved state, as loaded (for `Controller.restore`)."""
    attainment: st.TimeShare = field(default_factory=lambda: st.TimeShare(ATTAINMENT_WINDOW_S))
    last_step_at: float | None = None
    breached: bool = False

    @classmethod
    def load(cls, saved: Mapping[str, Any] | None) -> LoopMemory:
        data = dict(saved or {})
        if data.get("version") != MEMORY_VERSION:
            data = {}
        last = data.get("lastStepAt")
        policy = data.get("policy")
        return cls(
            controller=policy if isinstance(policy, Mapping) else None,
            attainment=st.TimeShare.from_json(data.get("attainment"), ATTAINMENT_WINDOW_S),
            last_step_at=float(last) if isinstance(last, int | float) else None,
            breached=bool(data.get("breached", False)),
        )

    def credit(
        self, spec: LatencySLOSpec, observation: Observation | None, trusted: bool, now: float
    ) -> None:
        """Credit the interval since the last step to the attainment ledger (trusted data
        only; a gap longer than two intervals is not credited: nobody was watching)."""
        span = 2.0 * spec.policy.interval_seconds
        last = self.last_step_at
        start = max(last, now - span) if last is not None else now - span / 2
        p = observation.p99_ms if observation is not None else None
        if p is not None and trusted:
            self.attainment.add(start, now, p <= spec.objective.latency_ms)
        self.last_step_at = now

    def dump(self, controller: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "version": MEMORY_VERSION,
            "policy": dict(controller),
            "attainment": self.attainment.to_json(),
            "lastStepAt": self.last_step_at,
            "breached": self.breached,
        }


def durable(memory: Mapping[str, Any] | None) -> str:
    """The part of a memory that must be written as soon as it changes (a comparison key)."""
    if memory is None:
        return ""
    policy = {k: v for k, v in dict(memory.get("policy") or {}).items() if k not in _PROGRESS}
    if isinstance(policy.get("correction"), float):
        policy["correction"] = round(policy["correction"], 2)
    factors = policy.get("profileFactors")
    if isinstance(factors, Mapping):
        policy["profileFactors"] = {k: _round(v) for k, v in factors.items()}
    key = {"version": memory.get("version"), "policy": policy, "breached": memory.get("breached")}
    return json.dumps(key, sort_keys=True, default=str)


def status_key(status: Mapping[str, Any] | None) -> str:
    """A status as compared for a rewrite: everything but `observed.sampledAt`."""
    if status is None:
        return ""
    data = dict(status)
    observed = data.get("observed")
    if isinstance(observed, Mapping):
        data["observed"] = {k: v for k, v in observed.items() if k != "sampledAt"}
    return json.dumps(data, sort_keys=True, default=str)


def _round(value: Any) -> Any:
    return round(value, 2) if isinstance(value, float) and math.isfinite(value) else value


class Persister:
    """Writes status and memory through a `StateStore` when they changed (see module docs)."""

    def __init__(self, store: StateStore | None) -> None:
        self.store = store
        self._status = ""
        self._status_at = -math.inf
        self._memory = ""
        self._memory_at = -math.inf

    async def save(
        self,
        status: LatencySLOStatus,
        memory: Mapping[str, Any] | None,
        now: float,
        *,
        force: bool = False,
    ) -> None:
        """Write what changed or is due; raises `errors.StoreError` (nothing is marked as
        written then, so the next step tries again)."""
        status_json = status.model_dump(by_alias=True, mode="json")
        s_key, m_key = status_key(status_json), durable(memory)
        write_status = force or s_key != self._status or now - self._status_at >= STATUS_REFRESH_S
        write_memory = memory is not None and (
            force or m_key != self._memory or now - self._memory_at >= MEMORY_CHECKPOINT_S
        )
        if self.store is None or not (write_status or write_memory):
            return
        await self.store.save(
            status_json if write_status else None, memory if write_memory else None
        )
        if write_status:
            self._status, self._status_at = s_key, now
        if write_memory:
            self._memory, self._memory_at = m_key, now
