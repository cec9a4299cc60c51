"""What one demo run is: the LatencySLO, the measured profile, the workload, the start.

Everything here is pure and cheap (no processes, no torch), so the closed-loop test and the
simulator agreement build the very same `Scenario` as `latencyslo demo`.

The default story, sized from the measured profile rather than hard-coded rates: the base
load is `load_fraction` (0.43) of what ONE replica of the preferred variant sustains at the
aim (headroom * target) according to the performance model, and the `step` workload doubles
it a quarter of the way in; after the workload, a cool-down at the starting rate. On the
two-core machine this was tuned on, one replica of `full` serving in the demo (HTTP, a busy
neighbour core, sparse batches) is slower than the back-to-back batches `latencyslo
calibrate` times, and cannot hold x2: the p99 breaches, the controller adds a replica and
bridges with `quantized`, restores `full` on two replicas, and releases the second replica
in the cool-down. The model alone (calibrated times) would hold x2 on one replica: that gap
is what the controller's measured profile scale and correction factor learn at run time.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from slo_operator.model.queueing import max_throughput_rps, predict
from slo_operator.sim.workloads import NAMES as WORKLOADS
from slo_operator.sim.workloads import Workload, make_workload
from slo_operator.spec import LatencySLOSpec
from slo_operator.types import ProfileSet, RuntimeConfig

HERE = Path(__file__).parent
DEFAULT_SLO = HERE / "slo.yaml"
DEFAULT_PROFILE = HERE / "profile-cpu-1thread.json"
"""`latencyslo calibrate --threads 1` of the demo model on the development machine (2 cores)."""
DEFAULT_DURATION_S = 80.0
DEFAULT_WARMUP_S = 20.0
"""Unscored seconds at the starting rate before t = 0, so that the run starts from a steady
state: warm workers, a full objective window, and the controller past its start-up guard
(no variant switch before one scale-down stabilization window of fresh data)."""
DEFAULT_COOLDOWN_S = 45.0
"""Scored seconds back at the starting rate after the workload, so that the run shows the
way back too: the preferred variant restored and the extra replica released."""
DEFAULT_LOAD_FRACTION = 0.43
DEFAULT_NAMESPACE = "demo"
DEFAULT_TOKENS = 16
"""Tokens per request text when the profile does not say (`latencyslo calibrate`'s default)."""
DEMO_WORKLOADS = ("step", "ramp", "bursty", "trace")


class ScenarioError(ValueError):
    """A demo input that cannot be used (names the file or option and the rule)."""


def default_model_dir() -> Path:
    """Where the worker finds the demo model by default (`inference_worker.demo_model`'s
    `default_model_dir`, repeated here so that the demo process never imports torch)."""
    env = os.environ.get("LATENCYSLO_MODEL_DIR")
    if env:
        return Path(env).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "latencyslo" / "demo-model"


@dataclass(frozen=True)
class SLOFile:
    """A LatencySLO manifest as the API server would store it."""

    name: str
    namespace: str
    spec: LatencySLOSpec


def load_slo(path: str | Path) -> SLOFile:
    """Read and validate a LatencySLO YAML (the same checks as `latencyslo validate`)."""
    from slo_operator.validate import admit, check_document, classify, read_documents

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ScenarioError(f"--slo {path}: {exc}") from None
    import io

    for doc in read_documents(io.StringIO(text)):
        if doc.error is not None:
            raise ScenarioError(f"--slo {path}: document {doc.index}: {doc.error}")
        if classify(doc.content) != "latencyslo":
            continue
        problems = check_document(doc.content)
        if problems:
            listed = "; ".join(f"{p.path or '.'}: {p.message}" for p in problems[:5])
            raise ScenarioError(f"--slo {path}: not a valid LatencySLO: {listed}")
        admitted = admit(doc.content)
        meta = admitted.get("metadata") or {}
        return SLOFile(
            name=str(meta.get("name") or path.stem),
            namespace=str(meta.get("namespace") or DEFAULT_NAMESPACE),
            spec=LatencySLOSpec.model_validate(admitted["spec"]),
        )
    raise ScenarioError(f"--slo {path}: no LatencySLO document in the file")


def load_profiles(path: str | Path) -> ProfileSet:
    try:
        return ProfileSet.load(path)
    except (OSError, KeyError, TypeError, ValueError) as exc:
        raise ScenarioError(f"--profile {path}: not a ProfileSet JSON ({exc})") from None


def capacity_rps(spec: LatencySLOSpec, profiles: ProfileSet, variant: str | None = None) -> float:
    """Requests per second ONE replica of `variant` holds at the aim (model, best window)."""
    name = variant or spec.variants.effective_preferred
    profile = profiles.variants.get(name)
    if profile is None:
        raise ScenarioError(f"the profile has no variant {name!r}")
    max_batch = spec.batching.max_batch_size
    lo, hi = spec.batching.min_window_ms, spec.batching.max_window_ms
    windows = sorted({lo, hi, *(w for w in (0, 1, 2, 5, 10, 20, 50, 100) if lo <= w <= hi)})

    def meets(rate: float) -> bool:
        return any(
            predict(profile, rate, 1, w, max_batch, spec.quantile).p99_ms <= spec.aim_latency_ms
            for w in windows
        )

    low, high = 0.0, max_throughput_rps(profile, max_batch)
    if not meets(1e-6):
        return 0.0
    for _ in range(40):
        mid = (low + high) / 2
        low, high = (mid, high) if meets(mid) else (low, mid)
    return low


@dataclass(frozen=True)
class Scenario:
    """Everything that defines one run, for the demo and for the simulator alike."""

    slo: SLOFile
    profiles: ProfileSet
    workload: Workload
    base_rps: float
    initial: RuntimeConfig
    capacity_rps: float
    """One replica of the preferred variant at the aim, per the model."""
    warmup_s: float = DEFAULT_WARMUP_S
    cooldown_s: float = 0.0

    @property
    def scored_s(self) -> float:
        """Seconds on the timeline: the workload, then the cool-down."""
        return self.workload.duration_s + self.cooldown_s

    def arrivals(self) -> np.ndarray:
        """Every arrival time, from the start of the warm-up: Poisson at the starting rate
        for `warmup_s`, the workload's own arrivals shifted by `warmup_s`, then Poisson at
        the starting rate again for `cooldown_s` (both seeded)."""
        rng = np.random.default_rng(self.workload.seed + 424_242)
        rate = float(self.workload.rate(0.0))

        def poisson(start: float, seconds: float) -> np.ndarray:
            n = rng.poisson(rate * seconds) if seconds > 0 else 0
            return start + np.sort(rng.uniform(0.0, seconds, size=n))

        warm = poisson(0.0, self.warmup_s)
        cool = poisson(self.warmup_s + self.workload.duration_s, self.cooldown_s)
        return np.concatenate((warm, self.workload.arrivals() + self.warmup_s, cool))

    @property
    def spec(self) -> LatencySLOSpec:
        return self.slo.spec

    @property
    def tokens(self) -> int:
        """Tokens per request text: the length the profile was measured at."""
        return int(self.profiles.extra.get("tokens", DEFAULT_TOKENS))

    @property
    def duration_s(self) -> float:
        return self.workload.duration_s

    def step_at(self) -> float | None:
        """When the load first rises above its starting rate (None if it never does)."""
        rates = self.workload.knots_rps
        start = float(rates[0])
        for t, r in zip(self.workload.knots_t.tolist(), rates.tolist(), strict=True):
            if r > start * 1.05:
                return float(t)
        return None

    def describe(self) -> dict[str, Any]:
        return {
            "slo": self.slo.name,
            "namespace": self.slo.namespace,
            "target_ms": self.spec.target_latency_ms,
            "percentile": self.spec.objective.percentile,
            "workload": self.workload.name,
            "duration_s": self.duration_s,
            "base_rps": round(self.base_rps, 2),
            "peak_rps": round(self.workload.peak_rps, 2),
            "one_replica_capacity_rps": round(self.capacity_rps, 2),
            "step_at_s": self.step_at(),
            "warmup_s": self.warmup_s,
            "cooldown_s": self.cooldown_s,
            "profile": self.profiles.source,
            "tokens_per_request": self.tokens,
        }


def build_scenario(
    *,
    slo_file: str | Path = DEFAULT_SLO,
    profile_file: str | Path = DEFAULT_PROFILE,
    workload: str = "step",
    duration_s: float = DEFAULT_DURATION_S,
    base_rps: float | None = None,
    load_fraction: float = DEFAULT_LOAD_FRACTION,
    trace_file: str | Path | None = None,
    seed: int = 0,
    warmup_s: float = DEFAULT_WARMUP_S,
    cooldown_s: float = DEFAULT_COOLDOWN_S,
) -> Scenario:
    """The scenario of one demo run (see the module docs for the defaults)."""
    if workload not in WORKLOADS:
        raise ScenarioError(f"--workload {workload!r}: one of {', '.join(DEMO_WORKLOADS)}")
    if not duration_s > 0 or not math.isfinite(duration_s):
        raise ScenarioError(f"--duration must be > 0 seconds, got {duration_s}")
    slo = load_slo(slo_file)
    profiles = load_profiles(profile_file)
    spec = slo.spec
    missing = [v for v in spec.variants.allowed if v not in profiles.variants]
    if missing:
        raise ScenarioError(f"--profile {profile_file}: no profile for variant(s) {missing}")
    capacity = capacity_rps(spec, profiles)
    if base_rps is None:
        if load_fraction <= 0:
            raise ScenarioError(f"the load fraction must be > 0, got {load_fraction}")
        base_rps = load_fraction * capacity
    if not base_rps > 0:
        raise ScenarioError(f"--rate must be > 0 req/s, got {base_rps}")
    rescale = workload == "trace" and _is_timestamps(trace_file)
    try:
        wl = make_workload(
            workload,
            base_rps=base_rps,
            duration_s=duration_s,
            seed=seed,
            trace_file=trace_file,
            target_mean_rps=base_rps if rescale else None,
        )
    except (OSError, ValueError) as exc:
        raise ScenarioError(f"--workload {workload}: {exc}") from None
    initial = RuntimeConfig(
        replicas=max(1, spec.replicas.min),
        batch_window_ms=spec.batching.min_window_ms,
        max_batch_size=spec.batching.max_batch_size,
        variant=spec.variants.effective_preferred,
    )
    for name, value in (("--warmup", warmup_s), ("--cooldown", cooldown_s)):
        if not 0 <= value <= 3600 or value != int(value):
            raise ScenarioError(f"{name} must be whole seconds in 0..3600, got {value}")
    return Scenario(
        slo, profiles, wl, float(base_rps), initial, capacity, float(warmup_s), float(cooldown_s)
    )


def _is_timestamps(trace_file: str | Path | None) -> bool:
    """A timestamp trace (the Azure format, the shipped one) is rescaled to the base rate;
    a `t_seconds,rps` trace is replayed at its own rates."""
    if trace_file is None:
        return True
    try:
        with Path(trace_file).open(encoding="utf-8") as fh:
            header = fh.readline().strip().lower()
    except OSError:
        return True  # make_workload reports the file's problem
    return header.startswith("timestamp")


def model_accuracy(model_dir: Path) -> dict[str, float]:
    """Held-out accuracy per variant from the model's `variants.json` (no torch needed)."""
    try:
        manifest = json.loads((model_dir / "variants.json").read_text())
    except (OSError, ValueError):
        return {}
    return {
        name: float(v["accuracy"])
        for name, v in (manifest.get("variants") or {}).items()
        if isinstance(v, dict) and v.get("accuracy") is not None
    }
