"""The words of a decision: which actions it takes and why (pure)."""

from __future__ import annotations

import math

from slo_operator.spec import Action, LatencySLOSpec
from slo_operator.types import RuntimeConfig

# Which action names a decision when several knobs move (most urgent first).
ACTION_ORDER = (
    Action.DEGRADE_VARIANT,
    Action.SCALE_UP,
    Action.WIDEN_WINDOW,
    Action.RESTORE_VARIANT,
    Action.SCALE_DOWN,
    Action.NARROW_WINDOW,
)


def actions(current: RuntimeConfig, target: RuntimeConfig, order: list[str]) -> list[Action]:
    acts: list[Action] = []
    if target.replicas > current.replicas:
        acts.append(Action.SCALE_UP)
    elif target.replicas < current.replicas:
        acts.append(Action.SCALE_DOWN)
    if target.batch_window_ms > current.batch_window_ms:
        acts.append(Action.WIDEN_WINDOW)
    elif target.batch_window_ms < current.batch_window_ms:
        acts.append(Action.NARROW_WINDOW)
    if target.variant != current.variant:
        rank = {v: i for i, v in enumerate(order)}
        worse = rank.get(target.variant, 99) > rank.get(current.variant, 99)
        acts.append(Action.DEGRADE_VARIANT if worse else Action.RESTORE_VARIANT)
    return sorted(acts, key=ACTION_ORDER.index)


def settings_note(current: RuntimeConfig, target: RuntimeConfig) -> str:
    """The workers' settings the spec sets and `current` does not have, in words ("" if
    none): they are written even where no knob moves (the controller would hold)."""
    parts = []
    if target.max_batch_size != current.max_batch_size:
        parts.append(f"max batch size {current.max_batch_size} -> {target.max_batch_size}")
    if target.sets_queue_wait(current):
        parts.append(
            f"queue wait limit {current.queue_wait_words()} -> {target.queue_wait_words()}"
        )
    return f"{' and '.join(parts)}, as the spec sets" if parts else ""


def fmt_ms(x: float | None) -> str:
    if x is None or not math.isfinite(x):
        return "unbounded"
    return f"{x:.0f}ms"


def explain(
    spec: LatencySLOSpec,
    current: RuntimeConfig,
    target: RuntimeConfig,
    p_obs: float,
    rate: float,
    need: int,
    feasible: bool,
    serving: int,
    predicted: float,
    correction: float,
    notes: list[str],
    *,
    saving: bool = False,
    served: float | None = None,
) -> str:
    """The decision's reason. `served`: the quantile of the requests not refused
    (`Observation.model_latency_ms`), named where refusals set `p_obs` apart from it."""
    target_ms = spec.target_latency_ms
    rel = ">" if p_obs > target_ms else "<="
    q = f"p{spec.objective.percentile:g}"  # the objective's percentile, as the status names it
    parts = [f"{q} {p_obs:.0f}ms {rel} {target_ms:g}ms target at {rate:.0f} req/s"]
    if served is not None and round(served) < round(p_obs):
        parts[0] += f" ({q} {served:.0f}ms of the requests not refused)"
    pref = spec.variants.effective_preferred
    if target.replicas > current.replicas:
        parts.append(
            f"{target.replicas - current.replicas} more replica(s) for the sustained rate "
            f"({current.replicas} -> {target.replicas})"
        )
    elif target.replicas < current.replicas:
        parts.append(f"{need} replica(s) suffice: {current.replicas} -> {target.replicas}")
    if target.variant != current.variant:
        if target.variant == pref:
            parts.append(f"{pref} restored: {serving} ready replica(s) hold the aim with it")
        elif saving:
            parts.append(
                f"{target.variant} serves on the {serving} ready replica(s) instead of "
                f"{need} of {pref} (saving replicas)"
            )
        elif target.variant != pref and current.variant == pref:
            waiting = max(0, target.replicas - serving)
            until = f"until {waiting} more replica(s) are ready" if waiting else "for now"
            parts.append(f"{target.variant} bridges {until}")
        else:
            parts.append(f"variant {current.variant} -> {target.variant}")
    if target.batch_window_ms != current.batch_window_ms:
        parts.append(f"window {current.batch_window_ms} -> {target.batch_window_ms}ms")
    if not feasible:
        parts.append(f"even {spec.replicas.max} replicas (replicas.max) cannot meet the aim")
    if not target.differs(current):
        parts.append(
            f"holding {current.replicas} replica(s), {current.variant}, "
            f"window {current.batch_window_ms}ms"
        )
    parts.extend(notes)
    parts.append(f"predicted {q} {fmt_ms(predicted)} (model x{correction:.2f})")
    return "; ".join(parts)


def ceiling_note(spec: LatencySLOSpec, rate: float) -> str:
    """Why the preferred variant waits, or a faster one serves ahead: the ceiling rule."""
    burst = f"{rate:.0f} req/s" if math.isfinite(rate) else "a burst"
    return f"replicas.max of {spec.variants.effective_preferred} did not hold {burst} lately"
