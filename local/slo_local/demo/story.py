"""The five acts of the demo's story, read off a recording (times from the start of the load).

- `breach`: the load step breaches the target: the first moment at or after the step that
  the clients' p99 over a 5-second bin, or the p99 the controller observed, is over the
  target;
- `bridge`: the fast knob (a cheaper variant, or the batch window) changed at or after the
  step and no later than one control interval after the controller first saw the breach;
- `scale_up`: a replica more ordered at or after the step;
- `restore`: after the bridge, the preferred variant back on a replica set that has grown;
- `scale_down`: after the load fell, the extra replica released.

Each is the time of the act, or None where it did not happen (a baseline that never moves
the variant has no bridge and no restore). Judged from the recording only: the decisions
the actuator applied and the latencies the clients measured.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from slo_local.demo.timeline import Recording
from slo_operator.sim.metrics import RECOVERY_BIN_S

ACTS = ("breach", "bridge", "scale_up", "restore", "scale_down")
SLACK_S = 1.0
"""A control step that ran late by up to this much still counts as "within one interval"."""


@dataclass(frozen=True)
class Story:
    breach: float | None
    bridge: float | None
    scale_up: float | None
    restore: float | None
    scale_down: float | None

    def to_json(self) -> dict[str, float | None]:
        return {a: None if getattr(self, a) is None else round(getattr(self, a), 1) for a in ACTS}

    @property
    def complete(self) -> bool:
        return all(getattr(self, a) is not None for a in ACTS)

    def missing(self) -> list[str]:
        return [a for a in ACTS if getattr(self, a) is None]

    def verdict(self) -> str:
        """One line: the acts in order with their times, and what did not happen."""
        parts = []
        for act in ACTS:
            t = getattr(self, act)
            parts.append(f"{act.replace('_', '-')} {'-' if t is None else f'{t:.0f}s'}")
        missing = ", ".join(self.missing())
        head = "story complete" if self.complete else f"story incomplete (no {missing})"
        return f"{head}: " + ", ".join(parts)


def read_story(rec: Recording, step_at: float | None, fall_at: float | None) -> Story:
    """The acts of `rec` (see module docs); `step_at` / `fall_at`: when the load rose and fell."""
    if step_at is None:
        return Story(None, None, None, None, None)
    target = rec.target_ms
    seen = [
        s.t
        for s in rec.steps
        if s.t >= step_at and s.latency_ms is not None and s.latency_ms > target
    ]
    first_bin = int(step_at // RECOVERY_BIN_S) * RECOVERY_BIN_S
    bins = [
        b
        for b in range(first_bin, math.ceil(rec.seconds), RECOVERY_BIN_S)
        if rec.quantile_ms(b, b + RECOVERY_BIN_S) > target
    ]
    client = [max(float(b), step_at) for b in bins]
    breach = min([*seen, *client], default=None)

    changes = [s for s in rec.changes if s.t >= step_at]
    rank = {v: i for i, v in enumerate(rec.variant_names)}
    """Variants in quality order (the SLO's `allowed`): a higher rank is cheaper."""
    bridge = None
    if breach is not None:
        deadline = (seen[0] if seen else breach) + rec.interval_s + SLACK_S
        bridge = next(
            (
                s.t
                for s in changes
                if s.t <= deadline
                and (
                    rank.get(s.after.variant, 0) > rank.get(s.before.variant, 0)
                    or s.after.batch_window_ms != s.before.batch_window_ms
                )
            ),
            None,
        )
    scale_up = next((s.t for s in changes if s.after.replicas > s.before.replicas), None)
    restore = None
    if bridge is not None and scale_up is not None:
        restore = next(
            (
                s.t
                for s in changes
                if s.t >= bridge
                and s.after.variant == rec.preferred
                and s.before.variant != rec.preferred
                and s.after.replicas > 1
            ),
            None,
        )
    scale_down = None
    if scale_up is not None and fall_at is not None:
        scale_down = next(
            (
                s.t
                for s in changes
                if s.t >= max(fall_at, scale_up) and s.after.replicas < s.before.replicas
            ),
            None,
        )
    return Story(breach, bridge, scale_up, restore, scale_down)
