"""The control loop of one LatencySLO, shared by the operator and the local demo.

`ControlLoop.step(spec, now=...)` is one interval (docs/architecture.md has the whole story):

1. **read** the configuration in force from the `Actuator`;
2. **observe** through the `MetricsSource`, over the controller's ranges;
3. **decide** with the `Controller` (`slo_operator.policy`), unless there is a conflict, or a
   change recorded by an earlier step is still `pending` (then it is finished instead, or
   dropped when it is older than the controller's gap limit);
4. **record the intended change as `pending`** (memory, then status) before acting, then
   **act** (the controller decides Enforce / Recommend / Paused) and book each knob's outcome;
5. **report**: the status, conditions and Events (`slo_operator.report`), saved only when they
   changed (`slo_operator.memory.Persister`).

Crash safety: the memory is saved *before* the status with `pending`, and the actuator is
called only after both are stored. An operator that dies after that point restarts, finds
`pending`, and applies the same absolute target instead of deciding again (a change already
done is a no-op); one older than the gap limit is dropped (the world has moved on). After a
restart the controller's trust is reset: scale-down and variant switches wait for one
stabilization window of fresh data.

No Kubernetes or kopf code: the ports (`slo_operator.ports`) are injected. Between steps,
`slo_operator.look` looks at the metrics."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from slo_operator import status as st
from slo_operator.act import Acted, Acting
from slo_operator.conflicts import Claim, Conflict, find_conflict
from slo_operator.errors import (
    ActuationError,
    ForeignObjectError,
    MetricsError,
    StoreError,
    TargetNotFoundError,
)
from slo_operator.memory import LoopMemory, Persister, phase_of
from slo_operator.policy import Controller, ControllerParams, OperatorLimits
from slo_operator.ports import Actuator, MetricsSource, Recorder, StateStore
from slo_operator.report import Facts, ReadyOverride, build_report, invalid_spec_status
from slo_operator.spec import DecisionRecord, LatencySLOSpec, LatencySLOStatus
from slo_operator.types import (
    ApplyResult,
    Decision,
    Fault,
    Observation,
    ProfileSet,
    Ranges,
    RuntimeConfig,
)

__all__ = ["Claim", "Conflict", "ControlLoop", "StepResult", "find_conflict"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class StepResult:
    """What one step produced (also for the caller's logs and tests)."""

    status: LatencySLOStatus
    events: tuple[st.Event, ...]
    memory: dict[str, Any]
    decision: Decision | None = None
    applied: ApplyResult | None = None
    acted: bool = False
    observation: Observation | None = None
    save_error: str | None = None


class ControlLoop:
    """One LatencySLO's observe -> decide -> act loop (see module docs)."""

    def __init__(
        self,
        *,
        name: str,
        namespace: str,
        metrics: MetricsSource,
        actuator: Actuator,
        profiles: ProfileSet,
        store: StateStore | None = None,
        recorder: Recorder | None = None,
        limits: OperatorLimits | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.name = name
        self.namespace = namespace
        self.metrics = metrics
        self.actuator = actuator
        self.baseline = profiles
        self.persister = Persister(store, phase_of(namespace, name))
        self.acting = Acting(actuator, self.persister)
        self.recorder = recorder
        self.limits = limits or OperatorLimits()
        self.clock = clock
        self.status = LatencySLOStatus()
        self.memory = LoopMemory()
        self.controller: Controller | None = None
        self.seen: tuple[RuntimeConfig, int] | None = None  # after the last step that decided

    def restore(self, status: Mapping[str, Any] | None, memory: Mapping[str, Any] | None) -> None:
        """Start from what an earlier operator left (the object's status and memory)."""
        if status:
            try:
                self.status = LatencySLOStatus.model_validate(dict(status))
            except ValidationError as exc:
                log.warning("%s/%s: ignoring unreadable status: %s", self.namespace, self.name, exc)
                pending = status.get("pending")
                try:
                    record = DecisionRecord.model_validate(pending) if pending else None
                except ValidationError:
                    record = None
                self.status = LatencySLOStatus(pending=record)
        try:
            self.memory = LoopMemory.load(memory)
        except (TypeError, ValueError, OverflowError) as exc:  # e.g. a 400-digit number
            log.warning("%s/%s: unreadable memory ignored: %s", self.namespace, self.name, exc)
            self.memory = LoopMemory()
        self.controller = None

    def _controller(self, params: ControllerParams, now: float) -> Controller:
        if self.controller is None:
            saved = self.memory.controller
            self.controller = Controller.restore(params, self.baseline, saved, now)
        else:
            self.controller.reconfigure(params)
        return self.controller

    # ------------------------------------------------------------------ the step

    async def step(
        self,
        spec: LatencySLOSpec | Mapping[str, Any],
        *,
        now: float | None = None,
        generation: int | None = None,
        conflict: Conflict | None = None,
    ) -> StepResult:
        started = time.perf_counter()
        now = self.clock() if now is None else now
        checked: LatencySLOSpec | None = None
        try:
            checked = (
                spec
                if isinstance(spec, LatencySLOSpec)
                else LatencySLOSpec.model_validate(dict(spec))
            )
        except ValidationError as exc:
            result = await self._invalid_spec(exc, now, generation)
        else:
            result = await self._step(checked, now, generation, conflict)
        if self.recorder is not None:
            obs, ctl = result.observation, self.controller
            self.recorder.record_step(
                self.namespace,
                self.name,
                spec=checked,
                status=result.status,
                decision=result.decision,
                trust=ctl.trust(obs) if ctl is not None and obs is not None else None,
                duration_s=time.perf_counter() - started,
            )
        return result

    async def _invalid_spec(
        self, exc: ValidationError, now: float, generation: int | None
    ) -> StepResult:
        status = invalid_spec_status(self.status, exc, now=now, generation=generation)
        memory = self._memory_json()
        save_error = await self._save(status, memory, now)
        self.status = status
        return StepResult(status=status, events=(), memory=memory or {}, save_error=save_error)

    def _memory_json(self) -> dict[str, Any] | None:
        if self.controller is not None:
            return self.memory.dump(self.controller.memory())
        return None

    async def _step(
        self, spec: LatencySLOSpec, now: float, generation: int | None, conflict: Conflict | None
    ) -> StepResult:
        params = ControllerParams.build(spec, self.limits)
        spec = params.spec  # the effective spec (replicas.max capped)
        controller = self._controller(params, now)
        previous = self.status
        current, ready, unreadable = await self._read()
        if conflict is None and unreadable is not None and unreadable.reason == "Conflict":
            conflict = Conflict("ForeignConfigMap", unreadable.message)
        observation: Observation | None = None
        if current is not None:
            observation = await self._observe(spec, ready, now, params.ranges)
        trusted = observation is not None and controller.trust(observation).latency
        self.memory.credit(spec, observation, trusted, now)

        pending = previous.pending
        acted: Acted | None = None
        if current is None:
            acted = None  # nothing known, nothing done; a pending change waits for the target
        elif conflict is not None:
            pending = None
            acted = Acted(current, ready=ReadyOverride("False", "Conflict", conflict.message))
        else:
            if pending is not None and now - pending.time.timestamp() > params.pending_expiry_s:
                log.warning(
                    "%s/%s: dropping a change recorded %.0fs ago, never finished: %s",
                    self.namespace,
                    self.name,
                    now - pending.time.timestamp(),
                    pending.reason,
                )
                pending = None
            if pending is not None:
                acted = await self.acting.finish_pending(pending, spec, controller, current)
            else:
                assert observation is not None
                acted = await self.acting.decide_and_act(
                    controller, observation, current, previous, generation, now, self.memory
                )
            pending = None
        self.seen = (acted.in_force, ready) if acted and acted.decision and not conflict else None
        report = build_report(
            Facts(
                spec=spec,
                previous=previous,
                now=now,
                generation=generation,
                observation=observation,
                in_force=acted.in_force if acted is not None else None,
                ready_replicas=ready,
                conflict=conflict,
                ready=unreadable or (acted.ready if acted is not None else None),
                record=acted.record if acted is not None else None,
                history=acted.history if acted is not None else None,
                change_events=acted.events if acted is not None else (),
                degraded_fraction=controller.degraded_fraction(now),
                attainment=self.memory.attainment.share(now),
                breached=self.memory.breached,
                pending=pending,
            )
        )
        self.memory.breached = report.breached
        memory = self.memory.dump(controller.memory())
        save_error = await self._save(report.status, memory, now)
        self.status = report.status
        return StepResult(
            status=report.status,
            events=report.events,
            memory=memory,
            decision=acted.decision if acted is not None else None,
            applied=acted.applied if acted is not None else None,
            acted=acted is not None and acted.applied is not None,
            observation=observation,
            save_error=save_error,
        )

    # ------------------------------------------------------------------ the stages

    async def _read(self) -> tuple[RuntimeConfig | None, int, ReadyOverride | None]:
        try:
            current, ready = await self.actuator.read()
        except ForeignObjectError as exc:  # reported as a Conflict; nothing is touched
            return None, 0, ReadyOverride("False", "Conflict", str(exc))
        except TargetNotFoundError as exc:
            return (
                None,
                0,
                ReadyOverride("False", "TargetNotFound", f"cannot read the target: {exc}"),
            )
        except ActuationError as exc:
            why = f"cannot read the target: {exc}"
            return None, 0, ReadyOverride("False", "TargetUnavailable", why)
        return current, ready, None

    async def _observe(
        self, spec: LatencySLOSpec, ready: int, now: float, ranges: Ranges
    ) -> Observation:
        try:
            return await self.metrics.observe(spec, self.namespace, ready, now, ranges)
        except MetricsError as exc:  # sources report failures as data; a typed one is too
            why = f"metrics source failed: {exc}"
            return Observation.failed(now, ready, why, Fault.QUERY_FAILED, ranges)

    async def _save(
        self, status: LatencySLOStatus, memory: Mapping[str, Any] | None, now: float
    ) -> str | None:
        try:
            await self.persister.save(status, memory, now)
        except StoreError as exc:  # the next step tries again; the step's result stands
            log.warning("%s/%s: saving status failed: %s", self.namespace, self.name, exc)
            return str(exc)
        return None
