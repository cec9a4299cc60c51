"""`Controller`: the one object that decides, held by the operator's control loop, the simulator
and the demo alike (pure: no I/O, no clock reads).

```python
controller = Controller(ControllerParams.build(spec, limits), baseline_profiles)
decision = controller.step(observation, current, now)
if decision.apply:
    controller.applied(actuator_result)      # each knob booked on its own outcome
```

It owns, in one place: trust (`policy.trust`), learning (the model's correction factor and the
per-variant profile factors, `policy.profiles`), sizing and bridging (`policy.core`), the bounds
(`ControllerParams.bounded`), and what to remember after an apply that failed in part: a
change counts as done only for the knobs whose write succeeded (no cooldown or dwell starts for
a scale that was never written). A `step` not followed by `applied` (the change could not even
be recorded) counts as nothing done.

Its memory is `ControllerState` (JSON through `memory()` / `Controller.restore`), persisted by
the operator so that a restart keeps what was learned; a restored controller's trust is reset,
so scale-down and variant switches wait for one stabilization window of fresh data.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from slo_operator.policy.core import propose, record_applied
from slo_operator.policy.feedback import CLEAR_BREACH
from slo_operator.policy.history import at_burst_front, risen
from slo_operator.policy.params import ControllerParams
from slo_operator.policy.profiles import ProfileFit, fit_profiles
from slo_operator.policy.state import ControllerState, initial_state
from slo_operator.policy.trust import Trust, assess
from slo_operator.spec import Action
from slo_operator.types import ApplyResult, Decision, Observation, ProfileSet, RuntimeConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class _Proposed:
    """A decision waiting for its outcome."""

    before: ControllerState
    """The state with everything learned this step, nothing applied yet."""
    current: RuntimeConfig
    decision: Decision
    now: float


class Controller:
    """One LatencySLO's controller (see module docs)."""

    def __init__(
        self,
        params: ControllerParams,
        baseline: ProfileSet,
        state: ControllerState | None = None,
    ) -> None:
        self.params = params
        self.baseline = baseline
        self._state = state if state is not None else initial_state(0.0)
        self._proposed: _Proposed | None = None
        self.last_fit: ProfileFit | None = None
        """The profiles the last step predicted with, and their factors."""

    # ------------------------------------------------------------------ construction

    @classmethod
    def restore(
        cls,
        params: ControllerParams,
        baseline: ProfileSet,
        memory: Mapping[str, Any] | None,
        now: float,
    ) -> Controller:
        """A controller from its saved memory with its trust reset, or a fresh one at `now`.

        Cooldowns, dwell times, recommendations, the quality budget and everything learned
        (correction, profile factors, start-up time) survive; `fresh_since` does not."""
        if memory:
            try:
                state = ControllerState.from_dict(dict(memory))
            except (KeyError, TypeError, ValueError) as exc:
                log.warning("discarding unreadable controller state: %s", exc)
            else:
                return cls(params, baseline, dataclasses.replace(state, fresh_since=None))
        return cls(params, baseline, initial_state(now))

    def reconfigure(self, params: ControllerParams) -> None:
        """New parameters (the spec or the operator's limits changed); the state is kept."""
        self.params = params

    # ------------------------------------------------------------------ the step

    @property
    def state(self) -> ControllerState:
        """The state as booked so far (a decision still waiting for `applied` not counted)."""
        return self._proposed.before if self._proposed is not None else self._state

    def trust(self, observation: Observation) -> Trust:
        return assess(self.params, observation)

    def bounded(self, config: RuntimeConfig) -> RuntimeConfig:
        return self.params.bounded(config)

    def step(self, observation: Observation, current: RuntimeConfig, now: float) -> Decision:
        """Decide for one interval. A decision with `apply` waits for `applied`."""
        state = self.state  # a change never reported as applied counts as not done
        self._proposed = None
        state, fit = self._fit(observation, state)
        self.last_fit = fit
        decision, after = propose(self.params, observation, current, fit.profiles, state, now)
        if decision.apply:
            self._proposed = _Proposed(after, current, decision, now)
        self._state = after
        return decision

    def urgent(self, observation: Observation, current: RuntimeConfig, now: float) -> bool:
        """The early look between two steps: True when the measured quantile is over twice
        the target, or over it with the recent rate up by `RISE_CONFIRMS` on the rate last
        sized for or on the quantile window's (a burst's front), and a decision now would
        add replicas or bridge with a faster variant. Nothing is booked or learned; the
        caller steps at once when True."""
        state = self.state
        target = self.params.spec.target_latency_ms
        p_obs, recent = observation.latency_ms, observation.recent_request_rate
        last = state.rates[-1][1] if state.rates else None
        stepped = risen(recent, last) or at_burst_front(recent, observation.request_rate)
        if p_obs is None or not (p_obs >= CLEAR_BREACH * target or (p_obs > target and stepped)):
            return False
        state, fit = self._fit(observation, state)
        decision, _ = propose(self.params, observation, current, fit.profiles, state, now)
        urgent = (Action.SCALE_UP, Action.DEGRADE_VARIANT)
        return decision.apply and any(a in urgent for a in decision.actions)

    def _fit(
        self, observation: Observation, state: ControllerState
    ) -> tuple[ControllerState, ProfileFit]:
        """The profiles to predict with, and the state with what they measured. Only a window
        whose quantile may be acted on teaches a profile factor: the batches at a burst's tail,
        in a window that ends below minRequestRate, measured `full` 1.7 times slower than it
        serves under load, and that factor then sized the next burst's replicas."""
        batch = observation.batch if self.trust(observation).latency else None
        fit = fit_profiles(self.baseline, batch, dict(state.profile_factors))
        return state.with_profile_factors(fit.measured_alone), fit

    def applied(self, result: ApplyResult) -> None:
        """Book the outcome of applying the last decision, knob by knob."""
        proposed, self._proposed = self._proposed, None
        if proposed is None:
            return
        self._state = record_applied(
            proposed.before,
            proposed.current,
            proposed.decision.target,
            proposed.now,
            replicas=result.replicas_set,
            config=result.config_written,
        )

    # ------------------------------------------------------------------ memory

    def memory(self) -> dict[str, Any]:
        """The state as JSON (what `restore` reads)."""
        return self.state.to_dict()

    def memory_if_applied(self) -> dict[str, Any]:
        """The state as it will be once the waiting decision is fully applied: what the
        operator records *before* acting, so that a crash after the apply loses nothing."""
        proposed = self._proposed
        if proposed is None:
            return self.memory()
        done = record_applied(
            proposed.before,
            proposed.current,
            proposed.decision.target,
            proposed.now,
            replicas=True,
            config=True,
        )
        return done.to_dict()

    def degraded_fraction(self, now: float) -> float:
        """Share of the quality-budget window spent off the preferred variant."""
        window = self.params.spec.variants.quality_budget.window_minutes * 60.0
        return min(1.0, max(0.0, self.state.degraded_seconds(now, window) / window))
