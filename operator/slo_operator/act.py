"""The act stage of a control step: decide and act, or finish a change an interrupted step
recorded; the crash-safe pending protocol lives here.

- `Acting.decide_and_act`: the controller decides; a change is recorded as `pending` (memory,
  then status, forced through the `Persister`) before the actuator is called; each knob is
  booked on its own outcome (`Controller.applied`); the decision record, the history entry
  and the Events of the change follow.
- `Acting.finish_pending`: the absolute target a pending record names is applied again (in
  Enforce mode only), inside the bounds in force now; nothing is decided.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from slo_operator import status as st
from slo_operator.errors import ActuationError, StoreError
from slo_operator.memory import LoopMemory, Persister
from slo_operator.policy import Controller
from slo_operator.ports import Actuator
from slo_operator.report import ReadyOverride
from slo_operator.spec import DecisionRecord, LatencySLOSpec, LatencySLOStatus, Mode
from slo_operator.types import ApplyResult, Decision, Observation, RuntimeConfig


@dataclass(frozen=True, slots=True)
class Acted:
    """What deciding and acting (or finishing a pending change) produced."""

    in_force: RuntimeConfig
    decision: Decision | None = None
    applied: ApplyResult | None = None
    record: DecisionRecord | None = None
    history: DecisionRecord | None = None
    ready: ReadyOverride | None = None
    events: tuple[st.Event, ...] = field(default=())


class Acting:
    """Decides and acts through one actuator (see module docs)."""

    def __init__(self, actuator: Actuator, persister: Persister) -> None:
        self.actuator = actuator
        self.persister = persister

    async def finish_pending(
        self,
        pending: DecisionRecord,
        spec: LatencySLOSpec,
        controller: Controller,
        current: RuntimeConfig,
    ) -> Acted:
        """Apply the absolute target an interrupted step recorded (nothing is decided)."""
        mode = spec.policy.mode
        if mode is not Mode.ENFORCE:
            why = f"an interrupted change was dropped ({mode.value} mode): {pending.reason}"
            reason = "Paused" if mode is Mode.PAUSED else "Recommending"
            return Acted(current, ready=ReadyOverride("True", reason, why))
        if pending.to is None:
            return Acted(current)
        target = controller.bounded(st.config_of(pending.to, current.max_batch_size))
        applied, in_force = await self.apply(target, current)
        before = (
            st.config_of(pending.from_, current.max_batch_size)
            if pending.from_ is not None
            else current
        )
        took = _took(applied, before, target)  # the change recorded, possibly done already
        record = pending.model_copy(
            update={
                "applied": took,
                "reason": st.clip(
                    f"{pending.reason} (finished after an interruption"
                    f"{_errors_suffix(applied, took)})"
                ),
            }
        )
        events = st.change_events(
            before,
            in_force,
            pending.reason,
            deployment=spec.target_ref.name,
            variant_order=spec.variants.allowed,
        )
        return Acted(
            in_force, applied=applied, record=record, history=record if took else None,
            events=tuple(events),
        )  # fmt: skip

    async def decide_and_act(
        self,
        controller: Controller,
        observation: Observation,
        current: RuntimeConfig,
        previous: LatencySLOStatus,
        generation: int | None,
        now: float,
        memory: LoopMemory,
    ) -> Acted:
        spec = controller.params.spec
        decision = controller.step(observation, current, now)
        target = decision.target
        if not decision.apply:
            record = st.decision_record(decision, current, now=now, applied=False)
            if decision.actions and spec.policy.mode is Mode.RECOMMEND:
                last = next((h for h in previous.history if not h.applied), None)
                if not st.same_change(record, last):
                    event = st.recommended_event(current, target, decision.reason)
                    return Acted(current, decision, record=record, history=record, events=(event,))
            return Acted(current, decision, record=record)

        # Record the intent (memory, then status with `pending`) before touching anything.
        record = st.decision_record(decision, current, now=now, applied=True)
        intent = previous.model_copy(deep=True, update={"pending": record})
        intent.observed_generation = generation
        memory = memory.dump(controller.memory_if_applied())
        try:
            await self.persister.save(intent, memory, now, force=True)
        except StoreError as exc:  # nothing recorded -> nothing done; the controller agrees
            why = f"could not record the intended change, nothing done: {exc}"
            return Acted(current, decision, ready=ReadyOverride("False", "StatusWriteFailed", why))

        applied, in_force = await self.apply(target, current)
        controller.applied(applied)
        took = _took(applied, current, target)
        record = record.model_copy(
            update={
                "applied": took,
                "reason": st.clip(decision.reason + _errors_suffix(applied, took)),
            }
        )
        events = st.change_events(
            current,
            in_force,
            decision.reason,
            deployment=spec.target_ref.name,
            variant_order=spec.variants.allowed,
        )
        history = record if took else None
        return Acted(in_force, decision, applied, record, history, events=tuple(events))

    async def apply(
        self, target: RuntimeConfig, current: RuntimeConfig
    ) -> tuple[ApplyResult, RuntimeConfig]:
        try:
            applied = await self.actuator.apply(target)
        except ActuationError as exc:
            applied = ApplyResult(replicas_set=False, config_written=False, errors=(str(exc),))
        in_force = current
        if applied.replicas_set:
            in_force = in_force.with_(replicas=target.replicas)
        if applied.config_written:
            in_force = target.config_over(in_force)
        return applied, in_force


def _took(applied: ApplyResult, current: RuntimeConfig, target: RuntimeConfig) -> bool:
    """Whether a knob that had to move did: each knob counts on its own outcome (a config
    write that found the target already there does not make a failed scale a change)."""
    scale = target.replicas != current.replicas
    config = target.config_differs(current)
    return (scale and applied.replicas_set) or (config and applied.config_written)


def _errors_suffix(applied: ApplyResult, took: bool) -> str:
    if not applied.errors:
        return ""
    prefix = "partly applied" if took else "not applied"
    return f"; {prefix}: {'; '.join(applied.errors)}"
