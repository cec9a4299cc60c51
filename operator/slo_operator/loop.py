"""The control loop of one LatencySLO, shared by the operator and the local demo.

`ControlLoop.step(spec, now=...)` is one interval:

1. **read** the configuration in force from the `Actuator` (replicas, window, batch, variant);
2. **observe** through the `MetricsSource` (never raises: failures are "no data" observations)
   and refresh the performance profiles;
3. **decide** with the policy core, unless there is a conflict, or a change recorded by an
   earlier step is still `pending` (then it is finished instead, see below);
4. **record the intended change as `pending`** through the `StateStore` (status + controller
   memory), and only then **act** (Enforce mode only; Recommend and Paused never act);
5. build the new **status** (API.md), the **Events** to post, update the operator metrics and
   save the final status (pending cleared).

Crash safety: the memory (policy state, ledgers) is saved *before* the status with `pending`,
and the actuator is called only after both are stored. An operator that dies after that
point restarts, finds `pending`, and applies the same absolute target instead of deciding
again: a change already done is a no-op, so nothing happens twice. An operator that dies
before `pending` is stored acted on nothing. After a restart the policy state comes back from
the memory with its trust reset, so scale-down and variant switches wait for one stabilization
window of fresh data (as with `initial_state`, used when there is no memory).

The loop holds no Kubernetes or kopf code: ports are injected, so the unit tests use fakes and
the demo uses local processes.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from pydantic import ValidationError

from slo_operator import status as st
from slo_operator.spec import (
    Action,
    AttainmentStatus,
    ConditionType,
    CurrentStatus,
    DecisionRecord,
    LatencySLOSpec,
    LatencySLOStatus,
    Mode,
    ObservedStatus,
    QualityBudgetStatus,
    ReplicaBounds,
)
from slo_operator.types import (
    Actuator,
    ApplyResult,
    Decision,
    MetricsSource,
    Observation,
    ProfileSet,
    RuntimeConfig,
)

log = logging.getLogger(__name__)

MEMORY_VERSION = 1
ATTAINMENT_WINDOW_S = 3600.0


class Policy(Protocol):
    """The decision core as the loop uses it."""

    def restore(self, data: Mapping[str, Any] | None, now: float) -> Any:
        """Controller state from saved memory, or the initial (restart-guarded) state."""
        ...

    def decide(
        self,
        spec: LatencySLOSpec,
        observation: Observation,
        current: RuntimeConfig,
        profiles: ProfileSet,
        state: Any,
        now: float,
    ) -> tuple[Decision, Any]: ...

    def dump(self, state: Any) -> dict[str, Any]: ...

    def degraded_fraction(self, state: Any, spec: LatencySLOSpec, now: float) -> float | None:
        """Share of the quality-budget window spent off the preferred variant."""
        ...


class CorePolicy:
    """`slo_operator.policy` (the pure decision core) behind the `Policy` protocol."""

    def __init__(self) -> None:
        from slo_operator import policy as core

        self._core = core

    def restore(self, data: Mapping[str, Any] | None, now: float) -> Any:
        """The saved state with its trust reset, or a fresh state.

        Cooldowns, dwell times, recommendations, the quality budget and the learned correction
        survive a restart; `fresh_since` does not, so scale-down and variant switches wait for
        one stabilization window of fresh data, exactly as with `initial_state`.
        """
        if data:
            try:
                state = self._core.ControllerState.from_dict(dict(data))
            except (KeyError, TypeError, ValueError) as exc:
                log.warning("discarding unreadable controller state: %s", exc)
            else:
                return dataclasses.replace(state, fresh_since=None)
        return self._core.initial_state(now)

    def decide(
        self,
        spec: LatencySLOSpec,
        observation: Observation,
        current: RuntimeConfig,
        profiles: ProfileSet,
        state: Any,
        now: float,
    ) -> tuple[Decision, Any]:
        return self._core.decide(spec, observation, current, profiles, state, now)  # type: ignore[no-any-return]

    def dump(self, state: Any) -> dict[str, Any]:
        return dict(state.to_dict())

    def degraded_fraction(self, state: Any, spec: LatencySLOSpec, now: float) -> float | None:
        window = spec.variants.quality_budget.window_minutes * 60.0
        return min(1.0, max(0.0, state.degraded_seconds(now, window) / window))


class StateStore(Protocol):
    """Where status and controller memory are persisted (the LatencySLO object, or nothing)."""

    async def save(self, status: Mapping[str, Any], memory: Mapping[str, Any]) -> None: ...


class Recorder(Protocol):
    """Operator metrics sink (`slo_operator.opmetrics.OperatorMetrics`)."""

    def record_step(
        self,
        namespace: str,
        name: str,
        *,
        spec: LatencySLOSpec | None,
        status: LatencySLOStatus,
        action: Action | None,
        duration_s: float,
    ) -> None: ...


@dataclass(frozen=True, slots=True)
class Conflict:
    """Why this LatencySLO must not act (another controller steers the same Deployment)."""

    reason: str
    message: str


@dataclass(frozen=True, slots=True)
class Claim:
    """A LatencySLO claiming a Deployment, for `find_conflict`."""

    created: str
    name: str


def find_conflict(
    *,
    name: str,
    deployment: str,
    hpas: Iterable[str],
    claims: Iterable[Claim],
) -> Conflict | None:
    """An HPA on the Deployment, or an older LatencySLO with the same target (oldest wins)."""
    hpa_names = sorted(set(hpas))
    if hpa_names:
        listed = ", ".join(hpa_names)
        return Conflict(
            "HorizontalPodAutoscaler",
            f"HorizontalPodAutoscaler {listed} also scales Deployment {deployment}: this "
            "LatencySLO changes nothing while it exists",
        )
    ordered = sorted(set(claims), key=lambda c: (c.created, c.name))
    if ordered and ordered[0].name != name:
        return Conflict(
            "DuplicateLatencySLO",
            f"LatencySLO {ordered[0].name} (older) already steers Deployment {deployment}: "
            "this LatencySLO changes nothing while it exists",
        )
    return None


def invalid_spec_status(
    previous: LatencySLOStatus | Mapping[str, Any] | None,
    error: ValidationError,
    *,
    now: float,
    generation: int | None,
) -> LatencySLOStatus:
    """The status for a spec that does not validate: Ready=False (InvalidSpec), rest kept."""
    if isinstance(previous, LatencySLOStatus):
        status = previous.model_copy(deep=True)
    else:
        try:
            status = LatencySLOStatus.model_validate(dict(previous or {}))
        except ValidationError:
            status = LatencySLOStatus()
    problems = "; ".join(
        f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in error.errors()[:5]
    )
    status.observed_generation = generation
    status.conditions = st.set_condition(
        status.conditions,
        ConditionType.READY,
        "False",
        "InvalidSpec",
        f"spec rejected, nothing done: {problems}",
        now=now,
        generation=generation,
    )
    return status


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


@dataclass(slots=True)
class _Memory:
    """Controller memory persisted between steps (JSON in the store)."""

    policy_state: Any = None
    attainment: st.TimeShare = field(default_factory=lambda: st.TimeShare(ATTAINMENT_WINDOW_S))
    last_step_at: float | None = None
    breached: bool = False


@dataclass(slots=True)
class _Outcome:
    """What the decide/act part of one step produced."""

    next_state: Any
    decision: Decision | None = None
    applied: ApplyResult | None = None
    acted: bool = False
    record: DecisionRecord | None = None
    in_force: RuntimeConfig | None = None
    ready: tuple[str, str, str] | None = None
    """(status, reason, message) of the Ready condition, when not the default."""
    events: list[st.Event] = field(default_factory=list)


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
        policy: Policy | None = None,
        max_replicas: int | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.name = name
        self.namespace = namespace
        self.metrics = metrics
        self.actuator = actuator
        self.baseline = profiles
        self.store = store
        self.recorder = recorder
        self.policy: Policy = policy if policy is not None else CorePolicy()
        self.max_replicas = max_replicas
        self.clock = clock
        self.status = LatencySLOStatus()
        self._memory: _Memory | None = None
        self._restored_memory: Mapping[str, Any] | None = None

    # ------------------------------------------------------------------ persistence

    def restore(self, status: Mapping[str, Any] | None, memory: Mapping[str, Any] | None) -> None:
        """Start from what an earlier operator left (the object's status and memory)."""
        if status:
            try:
                self.status = LatencySLOStatus.model_validate(dict(status))
            except ValidationError as exc:
                log.warning("%s/%s: ignoring unreadable status: %s", self.namespace, self.name, exc)
                pending = status.get("pending") if isinstance(status, Mapping) else None
                try:
                    self.status = LatencySLOStatus(
                        pending=DecisionRecord.model_validate(pending) if pending else None
                    )
                except ValidationError:
                    self.status = LatencySLOStatus()
        self._restored_memory = dict(memory) if memory else None
        self._memory = None

    def _memory_for(self, now: float) -> _Memory:
        if self._memory is None:
            saved = self._restored_memory or {}
            if saved.get("version") != MEMORY_VERSION:
                saved = {}
            last = saved.get("lastStepAt")
            self._memory = _Memory(
                policy_state=self.policy.restore(saved.get("policy"), now),
                attainment=st.TimeShare.from_json(saved.get("attainment"), ATTAINMENT_WINDOW_S),
                last_step_at=float(last) if isinstance(last, int | float) else None,
                breached=bool(saved.get("breached", False)),
            )
        return self._memory

    def _dump_memory(self, memory: _Memory, policy_state: Any, now: float) -> dict[str, Any]:
        return {
            "version": MEMORY_VERSION,
            "policy": self.policy.dump(policy_state),
            "attainment": memory.attainment.to_json(),
            "lastStepAt": memory.last_step_at,
            "breached": memory.breached,
            "savedAt": now,
        }

    async def _save(self, status: LatencySLOStatus, memory: Mapping[str, Any]) -> None:
        if self.store is not None:
            await self.store.save(status.model_dump(by_alias=True, mode="json"), memory)

    # ------------------------------------------------------------------ the step

    def effective_spec(self, spec: LatencySLOSpec) -> LatencySLOSpec:
        """The spec with replicas.max clamped to the operator's hard cap."""
        cap = self.max_replicas
        if cap is None or spec.replicas.max <= cap:
            return spec
        bounds = ReplicaBounds(min=min(spec.replicas.min, cap), max=cap)
        return spec.model_copy(update={"replicas": bounds})

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
        if not isinstance(spec, LatencySLOSpec):
            try:
                spec = LatencySLOSpec.model_validate(dict(spec))
            except ValidationError as exc:
                return await self._invalid_spec(exc, now, generation, started)
        result = await self._step(self.effective_spec(spec), now, generation, conflict)
        if self.recorder is not None:
            self.recorder.record_step(
                self.namespace,
                self.name,
                spec=spec,
                status=result.status,
                action=result.decision.action if result.decision else None,
                duration_s=time.perf_counter() - started,
            )
        return result

    async def _invalid_spec(
        self, exc: ValidationError, now: float, generation: int | None, started: float
    ) -> StepResult:
        status = invalid_spec_status(self.status, exc, now=now, generation=generation)
        if self._memory is not None:
            memory: Mapping[str, Any] = self._dump_memory(
                self._memory, self._memory.policy_state, now
            )
        else:
            memory = self._restored_memory or {}
        save_error = await self._final_save(status, dict(memory))
        self.status = status
        if self.recorder is not None:
            self.recorder.record_step(
                self.namespace,
                self.name,
                spec=None,
                status=status,
                action=None,
                duration_s=time.perf_counter() - started,
            )
        return StepResult(status=status, events=(), memory=dict(memory), save_error=save_error)

    async def _final_save(self, status: LatencySLOStatus, memory: Mapping[str, Any]) -> str | None:
        try:
            await self._save(status, memory)
        except Exception as exc:  # the next step tries again; never lose the step's result
            log.warning("%s/%s: saving status failed: %s", self.namespace, self.name, exc)
            return f"{type(exc).__name__}: {exc}"
        return None

    async def _observe(self, spec: LatencySLOSpec, ready: int, now: float) -> Observation:
        try:
            return await self.metrics.observe(spec, self.namespace, ready, now)
        except Exception as exc:  # a source must not raise; if one does, it is "no data"
            return Observation(
                at=now,
                p99_ms=None,
                request_rate=None,
                samples=None,
                age_seconds=None,
                ready_replicas=ready,
                error=f"metrics source failed: {type(exc).__name__}: {exc}",
            )

    async def _profiles(self, spec: LatencySLOSpec) -> ProfileSet:
        try:
            measured = await self.metrics.profiles(spec, self.namespace)
        except Exception as exc:
            log.debug("profiles unavailable: %s", exc)
            measured = None
        return measured if measured is not None else self.baseline

    async def _step(
        self,
        spec: LatencySLOSpec,
        now: float,
        generation: int | None,
        conflict: Conflict | None,
    ) -> StepResult:
        previous = self.status
        status = previous.model_copy(deep=True)
        status.observed_generation = generation
        memory = self._memory_for(now)
        outcome = _Outcome(next_state=memory.policy_state)

        # 1. read what is in force
        current: RuntimeConfig | None = None
        ready = 0
        try:
            current, ready = await self.actuator.read()
        except Exception as exc:
            reason = "TargetNotFound" if "not found" in str(exc).lower() else "TargetUnavailable"
            outcome.ready = ("False", reason, f"cannot read the target: {exc}")
        outcome.in_force = current

        # 2. observe
        observation: Observation | None = None
        profiles = self.baseline
        if current is not None:
            observation = await self._observe(spec, ready, now)
            profiles = await self._profiles(spec)
        self._account(memory, spec, observation, now)

        # 3. decide and act, or finish an interrupted change, or stand aside
        if current is None:
            pass  # nothing known, nothing done; a pending change waits for the target
        elif conflict is not None:
            status.pending = None
            outcome.ready = ("False", "Conflict", conflict.message)
        elif status.pending is not None:
            pending, status.pending = status.pending, None
            await self._finish_pending(pending, spec, current, outcome)
        else:
            await self._decide_and_act(
                spec,
                observation,
                current,
                profiles,
                memory,
                status,
                previous,
                now,
                outcome,  # type: ignore[arg-type]
            )
        memory.policy_state = outcome.next_state
        if outcome.record is not None:
            status.last_decision = outcome.record
            if outcome.record.applied and outcome.acted:
                status.history = st.push_history(status.history, outcome.record)

        # 4. status, Events, save
        self._fill_status(status, spec, observation, outcome.in_force, ready, now)
        self._set_conditions(
            status, spec, observation, outcome.in_force, conflict, outcome.ready, now, generation
        )
        events = self._transition_events(
            previous, status, spec, observation, outcome.in_force, conflict, memory
        )
        memory_json = self._dump_memory(memory, memory.policy_state, now)
        save_error = await self._final_save(status, memory_json)
        self.status = status
        return StepResult(
            status=status,
            events=tuple(events + outcome.events),
            memory=memory_json,
            decision=outcome.decision,
            applied=outcome.applied,
            acted=outcome.acted,
            observation=observation,
            save_error=save_error,
        )

    def _account(
        self,
        memory: _Memory,
        spec: LatencySLOSpec,
        observation: Observation | None,
        now: float,
    ) -> None:
        """Credit the interval since the last step to the attainment ledger (trusted data
        only; a gap longer than two intervals is not credited: nobody was watching)."""
        span = 2.0 * spec.policy.interval_seconds
        last = memory.last_step_at
        start = max(last, now - span) if last is not None else now - span / 2
        p = observation.p99_ms if observation is not None else None
        if p is not None and self._trusted(spec, observation):
            memory.attainment.add(start, now, p <= spec.objective.latency_ms)
        memory.last_step_at = now

    async def _finish_pending(
        self,
        pending: DecisionRecord,
        spec: LatencySLOSpec,
        current: RuntimeConfig,
        outcome: _Outcome,
    ) -> None:
        """Apply the absolute target an interrupted step recorded (nothing is decided)."""
        mode = spec.policy.mode
        if mode is not Mode.ENFORCE:
            outcome.ready = (
                "True",
                "Paused" if mode is Mode.PAUSED else "Recommending",
                f"an interrupted change was dropped ({mode.value} mode): {pending.reason}",
            )
            return
        if pending.to is None:
            return
        target = self._bounded(st.config_of(pending.to, current.max_batch_size), spec)
        outcome.applied, outcome.in_force = await self._apply(target, current)
        outcome.acted = True
        outcome.record = pending.model_copy(
            update={
                "applied": outcome.applied.replicas_set or outcome.applied.config_written,
                "reason": st.clip(
                    f"{pending.reason} (finished after an interruption"
                    f"{self._errors_suffix(outcome.applied)})"
                ),
            }
        )
        before = (
            st.config_of(pending.from_, current.max_batch_size)
            if pending.from_ is not None
            else current
        )
        outcome.events += st.change_events(
            before,
            outcome.in_force,
            pending.reason,
            deployment=spec.target_ref.name,
            variant_order=spec.variants.allowed,
        )

    async def _decide_and_act(
        self,
        spec: LatencySLOSpec,
        observation: Observation,
        current: RuntimeConfig,
        profiles: ProfileSet,
        memory: _Memory,
        status: LatencySLOStatus,
        previous: LatencySLOStatus,
        now: float,
        outcome: _Outcome,
    ) -> None:
        decision, next_state = self.policy.decide(
            spec, observation, current, profiles, memory.policy_state, now
        )
        outcome.decision = decision
        outcome.next_state = next_state
        target = self._bounded(decision.target, spec)
        changed = st.differs(target, current)
        proposal = Decision(
            action=decision.action if changed else Action.HOLD,
            target=target,
            reason=decision.reason,
            predicted_p99_ms=decision.predicted_p99_ms,
            actions=decision.actions,
            apply=changed and decision.apply and spec.policy.mode is Mode.ENFORCE,
        )

        if not proposal.apply:
            outcome.record = st.decision_record(proposal, current, now=now, applied=False)
            if changed and spec.policy.mode is Mode.RECOMMEND:
                last = next((h for h in previous.history if not h.applied), None)
                if not st.same_change(outcome.record, last):
                    outcome.events.append(st.recommended_event(current, target, decision.reason))
                    status.history = st.push_history(status.history, outcome.record)
            return

        # Record the intent (memory, then status with `pending`) before touching anything.
        record = st.decision_record(proposal, current, now=now, applied=True)
        intent = status.model_copy(deep=True)
        intent.pending = record
        try:
            await self._save(intent, self._dump_memory(memory, next_state, now))
        except Exception as exc:
            outcome.next_state = memory.policy_state  # nothing recorded -> nothing done
            outcome.ready = (
                "False",
                "StatusWriteFailed",
                f"could not record the intended change, nothing done: {exc}",
            )
            return

        outcome.applied, outcome.in_force = await self._apply(target, current)
        outcome.acted = True
        took = outcome.applied.replicas_set or outcome.applied.config_written
        if not took:
            outcome.next_state = memory.policy_state  # the policy must not count it as done
        outcome.record = record.model_copy(
            update={
                "applied": took,
                "reason": st.clip(decision.reason + self._errors_suffix(outcome.applied)),
            }
        )
        outcome.events += st.change_events(
            current,
            outcome.in_force,
            decision.reason,
            deployment=spec.target_ref.name,
            variant_order=spec.variants.allowed,
        )

    @staticmethod
    def _errors_suffix(applied: ApplyResult) -> str:
        if not applied.errors:
            return ""
        took = applied.replicas_set or applied.config_written
        prefix = "partly applied" if took else "not applied"
        return f"; {prefix}: {'; '.join(applied.errors)}"

    @staticmethod
    def _bounded(target: RuntimeConfig, spec: LatencySLOSpec) -> RuntimeConfig:
        """Belt and braces: never write outside the spec's bounds."""
        replicas = min(max(target.replicas, spec.replicas.min), spec.replicas.max)
        window = min(
            max(target.batch_window_ms, spec.batching.min_window_ms), spec.batching.max_window_ms
        )
        variant = target.variant if target.variant in spec.variants.allowed else None
        return target.with_(
            replicas=replicas,
            batch_window_ms=window,
            variant=variant or spec.variants.effective_preferred,
        )

    async def _apply(
        self, target: RuntimeConfig, current: RuntimeConfig
    ) -> tuple[ApplyResult, RuntimeConfig]:
        try:
            applied = await self.actuator.apply(target)
        except Exception as exc:
            applied = ApplyResult(
                replicas_set=False,
                config_written=False,
                errors=(f"{type(exc).__name__}: {exc}",),
            )
        in_force = current
        if applied.replicas_set:
            in_force = in_force.with_(replicas=target.replicas)
        if applied.config_written:
            in_force = in_force.with_(
                batch_window_ms=target.batch_window_ms,
                max_batch_size=target.max_batch_size,
                variant=target.variant,
            )
        return applied, in_force

    @staticmethod
    def _trusted(spec: LatencySLOSpec, observation: Observation | None) -> bool:
        return (
            observation is not None
            and observation.error is None
            and observation.has_latency
            and observation.has_rate
            and observation.request_rate is not None
            and observation.request_rate >= spec.objective.min_request_rate
        )

    def _fill_status(
        self,
        status: LatencySLOStatus,
        spec: LatencySLOSpec,
        observation: Observation | None,
        in_force: RuntimeConfig | None,
        ready: int,
        now: float,
    ) -> None:
        memory = self._memory
        assert memory is not None
        if observation is not None:
            p = observation.p99_ms if observation.has_latency else None
            status.observed = ObservedStatus(
                p99_ms=round(p, 3) if p is not None else None,
                request_rate=_rounded(observation.request_rate),
                samples=_rounded(observation.samples),
                sampled_at=st.timestamp(observation.at),
            )
        if in_force is not None:
            status.current = CurrentStatus(
                replicas=in_force.replicas,
                ready_replicas=ready,
                batch_window_ms=in_force.batch_window_ms,
                max_batch_size=in_force.max_batch_size,
                variant=in_force.variant,  # type: ignore[arg-type]
            )
        degraded = self.policy.degraded_fraction(memory.policy_state, spec, now)
        status.quality_budget = QualityBudgetStatus(
            degraded_fraction=round(degraded, 4) if degraded is not None else 0.0
        )
        attained = memory.attainment.share(now)
        status.attainment = AttainmentStatus(
            last_hour=round(attained, 4) if attained is not None else None
        )

    def _set_conditions(
        self,
        status: LatencySLOStatus,
        spec: LatencySLOSpec,
        observation: Observation | None,
        in_force: RuntimeConfig | None,
        conflict: Conflict | None,
        ready_message: tuple[str, str, str] | None,
        now: float,
        generation: int | None,
    ) -> None:
        def put(type_: ConditionType, value: str, reason: str, message: str) -> None:
            status.conditions = st.set_condition(
                status.conditions,
                type_,
                value,  # type: ignore[arg-type]
                reason,
                message,
                now=now,
                generation=generation,
            )

        mode = spec.policy.mode
        if ready_message is not None:
            put(ConditionType.READY, *ready_message)
        else:
            last = status.last_decision
            summary = f"{last.action.value}: {last.reason}" if last is not None else "no decision"
            reason = {
                Mode.ENFORCE: "Reconciling",
                Mode.RECOMMEND: "Recommending",
                Mode.PAUSED: "Paused",
            }[mode]
            put(ConditionType.READY, "True", reason, f"{mode.value} mode; {summary}")

        if conflict is not None:
            put(ConditionType.CONFLICT, "True", conflict.reason, conflict.message)
        else:
            put(
                ConditionType.CONFLICT,
                "False",
                "NoConflict",
                "no other controller scales the target",
            )

        if observation is not None:
            target = spec.objective.latency_ms
            pct = spec.objective.percentile
            if observation.error is not None or not observation.has_latency:
                error = observation.error or "no latency data"
                put(ConditionType.METRICS_AVAILABLE, "False", st.metrics_reason(error), error)
                put(ConditionType.SLO_MET, "Unknown", "NoData", f"no usable latency data: {error}")
            else:
                age = observation.age_seconds
                aged = f", newest sample {age:.0f}s old" if age is not None else ""
                put(
                    ConditionType.METRICS_AVAILABLE,
                    "True",
                    "MetricsFresh",
                    f"p{pct:g} from {_count(observation.samples)} requests in "
                    f"{spec.objective.window_seconds}s{aged}",
                )
                rate = observation.request_rate or 0.0
                p = observation.p99_ms or 0.0
                if rate < spec.objective.min_request_rate:
                    put(
                        ConditionType.SLO_MET,
                        "Unknown",
                        "LowRequestRate",
                        f"{rate:.3g} req/s < minRequestRate {spec.objective.min_request_rate:g}: "
                        f"p{pct:g} {p:.1f}ms is not trusted",
                    )
                elif p <= target:
                    put(
                        ConditionType.SLO_MET,
                        "True",
                        "WithinTarget",
                        f"p{pct:g} {p:.1f}ms <= {target:g}ms at {rate:.3g} req/s",
                    )
                else:
                    put(
                        ConditionType.SLO_MET,
                        "False",
                        "Breached",
                        f"p{pct:g} {p:.1f}ms > {target:g}ms at {rate:.3g} req/s",
                    )

        if in_force is not None:
            preferred = spec.variants.effective_preferred
            budget = spec.variants.quality_budget
            spent = status.quality_budget.degraded_fraction if status.quality_budget else 0.0
            usage = (
                f"{spent:.0%} of the last {budget.window_minutes} minutes off {preferred} "
                f"(budget {budget.max_degraded_fraction:.0%})"
            )
            if in_force.variant != preferred:
                put(
                    ConditionType.QUALITY_DEGRADED,
                    "True",
                    "DegradedVariant",
                    f"serving {in_force.variant} instead of {preferred}; {usage}",
                )
            else:
                put(
                    ConditionType.QUALITY_DEGRADED,
                    "False",
                    "PreferredVariant",
                    f"serving {preferred}; {usage}",
                )

    def _transition_events(
        self,
        previous: LatencySLOStatus,
        status: LatencySLOStatus,
        spec: LatencySLOSpec,
        observation: Observation | None,
        in_force: RuntimeConfig | None,
        conflict: Conflict | None,
        memory: _Memory,
    ) -> list[st.Event]:
        events: list[st.Event] = []
        before, after = previous.conditions, status.conditions
        if conflict is not None and st.became(before, after, ConditionType.CONFLICT, "True"):
            events.append(st.conflict_event(conflict.message))
        if observation is not None and st.became(
            before, after, ConditionType.METRICS_AVAILABLE, "False"
        ):
            events.append(
                st.metrics_unavailable_event(observation.error or "no latency data", in_force)
            )
        slo = st.condition_status(after, ConditionType.SLO_MET)
        if observation is not None and observation.p99_ms is not None:
            args = (
                observation.p99_ms,
                spec.objective.latency_ms,
                observation.request_rate,
                spec.objective.percentile,
            )
            if slo == "False" and not memory.breached:
                memory.breached = True
                events.append(st.slo_breached_event(*args))
            elif slo == "True" and memory.breached:
                memory.breached = False
                events.append(st.slo_recovered_event(*args))
        return events


def _rounded(value: float | None, digits: int = 3) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return round(value, digits)


def _count(value: float | None) -> str:
    return "?" if value is None or not math.isfinite(value) else f"{value:.0f}"
