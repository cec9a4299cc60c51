"""A quality budget as long as its window (`maxDegradedFraction: 1`), in the closed loop: a
load that `replicas.max` of the preferred variant cannot hold and a faster variant can is
bridged once and held, not restored every minute as if the budget were spent."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from slo_operator.sim.engine import SimSettings
from slo_operator.sim.plant import measured_plant
from slo_operator.sim.policies import LatencySLOPolicy
from slo_operator.sim.profiles import MEASURED_PROFILE, default_profiles
from slo_operator.sim.runner import default_spec
from slo_operator.sim.sweep import INITIAL_UTILIZATION, fleet_start, prepare

SECONDS = 1200


@pytest.mark.skipif(not MEASURED_PROFILE.is_file(), reason="the shipped measured profile")
def test_a_budget_as_long_as_its_window_holds_the_bridge(tmp_path: Path) -> None:
    """250 req/s on at most two replicas: `full` holds about 126 within the target there,
    `quantized` about 470. With the whole one-minute window as budget the bridge stays; the
    budget's "spent" check used to end it every 45 s (the window still held the minute's
    first 15 s), and each restore breached and was bridged again: 48 switches an hour on a
    ramp with such a spec."""
    base = default_spec()
    spec = base.model_copy(
        update={
            "replicas": base.replicas.model_copy(update={"min": 1, "max": 2}),
            "variants": base.variants.model_copy(
                update={
                    "quality_budget": base.variants.quality_budget.model_copy(
                        update={"max_degraded_fraction": 1.0, "window_minutes": 1}
                    )
                }
            ),
        }
    )
    path = tmp_path / "flat.csv"
    path.write_text("t_seconds,rps\n" + "".join(f"{s},250\n" for s in range(SECONDS)))
    profiles, _ = default_profiles()
    prep = prepare("trace", spec=spec, profiles=profiles, settings=SimSettings(),
                   plant=measured_plant(MEASURED_PROFILE), seed=0, trace_file=path)  # fmt: skip
    cal = prep.calibration(spec.variants.effective_preferred)
    start = fleet_start(spec, cal, prep.first_minute_rps, INITIAL_UTILIZATION)
    trace = prep.simulate(LatencySLOPolicy(spec, profiles), start)
    metrics = prep.score(trace)
    switches = int(np.count_nonzero(np.diff(np.asarray(trace.variant)[prep.warmup_s :])))
    assert switches <= 2, switches
    assert metrics["slo_attainment_requests"] >= 0.98, metrics["slo_attainment_requests"]
