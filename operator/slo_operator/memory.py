"""The control loop's memory and how it is persisted.

`LoopMemory` is what the loop remembers between steps besides the controller's own state: the
attainment ledger (`attainment.lastHour`), when the last step ran, and whether an SLOBreached
Event is outstanding. `LoopMemory.dump(controller_memory)` is the JSON stored on the object.

`Persister` writes status and memory through the `StateStore` only when they changed:

- the **status** when it differs from the last one written as a user reads it: figures
  compared at `RESOLUTION` (5 %: a measured rate or percentile that only jitters is not a
  change), messages, timestamps and a decision's wording left out (a decision's action and
  configurations, every condition's status and reason, the configuration in force, pending
  and history are compared exactly); and at least every `STATUS_REFRESH_S` (so `sampledAt`
  and the figures still show a live operator);
- the **memory** when its durable part changed (everything except what moves with the clock:
  ledgers, recommendation and rate histories, the last quantile; the learned correction and
  profile factors compared at `RESOLUTION`), and at least every `MEMORY_CHECKPOINT_S`. A
  restart loses at most one checkpoint of the clock-driven part; it resets trust anyway.

A forced save (the intent recorded before acting) writes both.

The periodic rewrites of different LatencySLOs are spread over their periods: each object's
first periodic rewrite comes early by a fraction of the period fixed by its name (`phase_of`,
the same place in the period its control steps take), so
objects created together do not all refresh in the same interval, and the API server sees the
same small load every interval.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from slo_operator import status as st
from slo_operator.ports import StateStore
from slo_operator.spec import LatencySLOSpec, LatencySLOStatus
from slo_operator.types import Observation

MEMORY_VERSION = 1
ATTAINMENT_WINDOW_S = 3600.0
STATUS_REFRESH_S = 600.0
"""An unchanged status is written again after this long (its `observed.sampledAt` moves).
With the memory's checkpoint, a steady LatencySLO makes 1/40 + 1/80 writes per 15 s interval
(0.0375: docs/operator.md, Sizing)."""
MEMORY_CHECKPOINT_S = 1200.0
"""The memory's clock-driven part is written at least this often: a restart loses at most
this much of the attainment ledger and of the rate and recommendation histories."""
_PROGRESS = frozenset(
    {
        "lastDecisionAt",
        "freshSince",
        "recommendations",
        "needs",
        "carried",
        "rates",
        "lastP99",
        "degraded",
        "correctionSamples",
    }
)
"""Controller-state fields that move with the clock: checkpointed, not compared."""
RESOLUTION = 0.05
"""Relative resolution at which figures are compared for a rewrite (5 %)."""
_WORDING = frozenset({"message", "reason", "time", "sampledAt", "predictedLatencyMs"})
"""Status keys that are wording or clock, not state: left out of the comparison (a
condition's `reason` is kept: it is a state, e.g. `Breached`)."""


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
        p = observation.latency_ms if observation is not None else None
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


def durable(memory: Mapping[str, Any] | None) -> Any:
    """The part of a memory that must be written as soon as it changes (compared with
    `changed`: the learned correction and profile factors at `RESOLUTION`)."""
    if memory is None:
        return None
    policy = {k: v for k, v in dict(memory.get("policy") or {}).items() if k not in _PROGRESS}
    return {"version": memory.get("version"), "policy": policy, "breached": memory.get("breached")}


def status_changed(old: Mapping[str, Any] | None, new: Mapping[str, Any] | None) -> bool:
    """Whether a user reading the status sees a change from `old` to `new` (module docs):
    `changed` on what is left after messages, timestamps and a decision's wording, except in
    `history` (an entry added is a change). Walked in place: only the parts that differ are
    visited, nothing is copied."""
    return _visible_changed(old, new, "")


def _shown(key: str, parent: str) -> bool:
    return key not in _WORDING or (key == "reason" and parent == "condition")


def _visible_changed(old: Any, new: Any, key: str) -> bool:
    if old == new or key == "history":
        return old != new and changed(old, new)
    if isinstance(old, Mapping) and isinstance(new, Mapping):
        shown = [k for k in old if _shown(k, key)]
        if len(shown) != sum(1 for k in new if _shown(k, key)) or any(k not in new for k in shown):
            return True
        return any(_visible_changed(old[k], new[k], k) for k in shown if old[k] != new[k])
    if isinstance(old, list) and isinstance(new, list):
        inner = "condition" if key == "conditions" else key
        return len(old) != len(new) or any(
            _visible_changed(a, b, inner) for a, b in zip(old, new, strict=True) if a != b
        )
    return changed(old, new)


def changed(old: Any, new: Any) -> bool:
    """Whether `new` differs from `old` beyond `RESOLUTION`: floats by their relative
    difference (against the value last written, so a figure that only jitters never flaps
    across a boundary), everything else exactly."""
    # equal parts are skipped by one comparison in C: only what differs is walked
    if isinstance(old, Mapping) and isinstance(new, Mapping):
        return old.keys() != new.keys() or any(
            changed(old[k], new[k]) for k in old if old[k] != new[k]
        )
    if isinstance(old, list) and isinstance(new, list):
        return len(old) != len(new) or any(
            changed(a, b) for a, b in zip(old, new, strict=True) if a != b
        )
    numbers = (int, float)
    if (
        isinstance(old, numbers)
        and isinstance(new, numbers)
        and not isinstance(old, bool)
        and not isinstance(new, bool)
        and (isinstance(old, float) or isinstance(new, float))
    ):
        if not (math.isfinite(old) and math.isfinite(new)):
            return not (old == new or (math.isnan(old) and math.isnan(new)))
        return abs(new - old) > RESOLUTION * max(abs(old), abs(new))
    return bool(old != new)


def phase_of(namespace: str, name: str) -> float:
    """This object's place in a period, in [0, 1): a hash of its name, so the steps and the
    periodic rewrites of many LatencySLOs spread evenly over their periods and each keeps its
    place across restarts."""
    return zlib.crc32(f"{namespace}/{name}".encode()) / 2**32


class Persister:
    """Writes status and memory through a `StateStore` when they changed (see module docs)."""

    def __init__(self, store: StateStore | None, phase: float = 0.0) -> None:
        self.store = store
        self.phase = phase
        """In [0, 1): how early in its period this object's first periodic rewrite comes."""
        self._status: Any = None
        self._status_at = -math.inf
        self._memory: Any = None
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
        m_key = durable(memory)
        write_status = (
            force
            or status_changed(self._status, status_json)
            or now - self._status_at >= STATUS_REFRESH_S
        )
        write_memory = memory is not None and (
            force or changed(self._memory, m_key) or now - self._memory_at >= MEMORY_CHECKPOINT_S
        )
        if self.store is None or not (write_status or write_memory):
            return
        await self.store.save(
            status_json if write_status else None, memory if write_memory else None
        )
        if write_status:
            self._status_at = self._rewritten_at(self._status_at, now, STATUS_REFRESH_S)
            self._status = status_json
        if write_memory:
            self._memory_at = self._rewritten_at(self._memory_at, now, MEMORY_CHECKPOINT_S)
            self._memory = m_key

    def _rewritten_at(self, last: float, now: float, period: float) -> float:
        """When the period of the write just made starts: `now`, except for the first write,
        whose period is shortened by `phase` of it (spreading objects over the period)."""
        return now - self.phase * period if last == -math.inf else now
