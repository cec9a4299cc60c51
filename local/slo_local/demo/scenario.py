"""What one demo run is: the LatencySLO, the measured profile, the workload, the start.

Everything here is pure and cheap (no processes, no torch), so the closed-loop test and the
simulator agreement build the very same `Scenario` as `latencyslo demo`.

The default story is sized from the machine as it is now, not from a constant: the demo first
measures the warm replica (`slo_local.demo.probe`): flat out, the requests per second one
replica of the preferred variant answers (its saturation), then at a low rate, its batch times
over the profile's (the machine's `factor` right now). `Scenario.resized` sets the starting
load to `load_fraction` (0.4) of what ONE replica sustains at the aim (headroom * target, the
profile scaled by that factor; never more than its measured saturation). The `step` workload
rises a quarter of the way in to 0.9 x the measured saturation: over what one replica of `full`
holds at the target whatever the machine's speed and however well the model foresees the rise,
and inside what two replicas hold (`DEFAULT_STEP_OVER_SATURATION`). After the workload, a
cool-down at `cooldown_fraction` (0.5) of the starting rate, where one replica clearly holds
the load again and the extra one is released within the run. Without the measurement (or with
`--rate`) the load is sized from the profile as shipped (the step x3 from the start).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, replace
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
DEFAULT_DURATION_S = 72.0
DEFAULT_WARMUP_S = 20.0
"""Unscored seconds at the starting rate before t = 0, so that the run starts from a steady
state: warm workers, a full objective window, and the controller past its start-up guard
(no variant switch before one scale-down stabilization window of fresh data)."""
DEFAULT_COOLDOWN_S = 45.0
"""Scored seconds back at the starting rate after the workload, so that the run shows the
way back too: the preferred variant restored and the extra replica released."""
DEFAULT_LOAD_FRACTION = 0.4
"""The starting rate over one replica's capacity at the aim, as measured on this machine."""
DEFAULT_COOLDOWN_FRACTION = 0.5
"""The cool-down's rate over the starting rate."""
DEFAULT_STEP_FACTOR = 3.0
"""The `step` workload's rise when no saturation was measured: x3, from 0.4 to 1.2 x one
replica's capacity at the aim per the model."""
DEFAULT_STEP_OVER_SATURATION = 0.9
"""Where the step rises to, over one replica's measured saturation. Sized on the model's
capacity instead (x3 above), the step breached one replica on some spells and not on others:
with batching, one replica runs past its capacity at the aim, and a model that is right at
small batches saw a rise to 1.2 x that capacity coming from the rate and acted before any
breach (p99 97 ms against 115). The saturation is measured, not modelled. At 1.0, 1.05 and
1.2 x it (one run each on two cores) one replica breached at once, but two replicas of
`full` sharing the cores with the load generator and Prometheus went over the target after
the restore (client p99 90-560 ms). At 0.8 x the story was complete in five make demo runs
in a row, but on a slower spell one replica sat at the edge of the target: the closed-loop
test failed its first attempt in three of four fresh runs (no bridge, or recovery in 40 s).
At 0.9 x it passed two of two on that spell (docs/demo.md)."""
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


def with_target(slo: SLOFile, target_ms: float) -> SLOFile:
    """`slo` with another latency target (everything else as written)."""
    objective = slo.spec.objective.model_copy(update={"latency_ms": float(target_ms)})
    return replace(slo, spec=slo.spec.model_copy(update={"objective": objective}))


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
            predict(profile, rate, 1, w, max_batch, spec.quantile).latency_ms <= spec.aim_latency_ms
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
    cooldown_rps: float | None = None
    """The cool-down's rate (None: the starting rate)."""
    load: LoadSpec | None = None
    """How the load was asked for, so that `resized` can rebuild it (None: fixed)."""
    machine_factor: float | None = None
    """The measured factor the load was sized with (None: sized from the profile alone)."""
    saturation_rps: float | None = None
    """One replica's measured saturation the load was sized with (None: not measured)."""

    def resized(self, factor: float, saturation_rps: float | None = None) -> Scenario:
        """This scenario with the load sized for a machine whose batches take `factor` times
        the profile's (every variant alike) and where one replica of the preferred variant
        answers `saturation_rps` flat out (see the module docs); a fixed rate (`--rate`)
        stays, only the measurements are recorded."""
        if not (factor > 0 and math.isfinite(factor)):
            raise ScenarioError(f"the measured factor must be > 0, got {factor}")
        sat = saturation_rps
        if sat is not None and not (sat > 0 and math.isfinite(sat)):
            raise ScenarioError(f"the measured saturation must be > 0 req/s, got {sat}")
        scaled = self.profiles.scaled(
            dict.fromkeys(self.profiles.variants, factor),
            source="scaled to the warm replica",
            extra={"scale": factor},
        )
        capacity = capacity_rps(self.spec, scaled)
        slo = self.slo
        if self.load is not None and self.load.stretch_target and factor > 1.0:
            # a slower machine: the demo's own target stretched by the same factor, so that
            # the story keeps its shape (every time x factor, every rate / factor)
            slo = with_target(slo, round(self.load.target_ms * factor))
            capacity = capacity_rps(slo.spec, scaled)
        measured = {"capacity_rps": capacity, "machine_factor": factor, "saturation_rps": sat}
        if not self.resizable or self.load is None:
            return replace(self, slo=slo, **measured)
        load = self.load
        base = load.load_fraction * (capacity if sat is None else min(capacity, sat))
        if sat is not None and load.workload == "step":
            load = replace(load, step_factor=load.step_over_saturation * sat / base)
        return replace(
            self,
            slo=slo,
            workload=load.workload_at(base),
            base_rps=base,
            cooldown_rps=base * load.cooldown_fraction,
            load=load,
            **measured,
        )

    @property
    def resizable(self) -> bool:
        """Whether `resized` sizes the load (not a fixed `--rate`, not a fixed load)."""
        return self.load is not None and not self.load.fixed_rate

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

        def poisson(start: float, seconds: float, rate: float) -> np.ndarray:
            n = rng.poisson(rate * seconds) if seconds > 0 else 0
            return start + np.sort(rng.uniform(0.0, seconds, size=n))

        warm = poisson(0.0, self.warmup_s, rate)
        cool_rate = rate if self.cooldown_rps is None else self.cooldown_rps
        cool = poisson(self.warmup_s + self.workload.duration_s, self.cooldown_s, cool_rate)
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

    def fall_at(self) -> float | None:
        """When the load falls below its highest rate for the last time (the cool-down's
        start for a step); None if it never falls within the timeline."""
        rates = [float(r) for r in self.workload.knots_rps.tolist()]
        times = [float(t) for t in self.workload.knots_t.tolist()]
        peak = max(rates)
        end = self.workload.duration_s
        cool = self.cooldown_rps if self.cooldown_rps is not None else rates[0]
        last_peak = max(t for t, r in zip(times, rates, strict=True) if r >= peak * 0.999)
        later = [t for t, r in zip(times, rates, strict=True) if t > last_peak and r < peak * 0.95]
        if later:
            return later[0]
        if self.cooldown_s > 0 and cool < peak * 0.95:
            return end
        return None

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
            "target_stretched_from_ms": self.load.target_ms
            if self.load is not None and self.load.target_ms != self.spec.target_latency_ms
            else None,
            "namespace": self.slo.namespace,
            "target_ms": self.spec.target_latency_ms,
            "percentile": self.spec.objective.percentile,
            "workload": self.workload.name,
            "duration_s": self.duration_s,
            "base_rps": round(self.base_rps, 2),
            "peak_rps": round(self.workload.peak_rps, 2),
            "one_replica_capacity_rps": round(self.capacity_rps, 2),
            "one_replica_saturation_rps": None
            if self.saturation_rps is None
            else round(self.saturation_rps, 2),
            "step_at_s": self.step_at(),
            "warmup_s": self.warmup_s,
            "cooldown_s": self.cooldown_s,
            "cooldown_rps": None if self.cooldown_rps is None else round(self.cooldown_rps, 2),
            "machine_factor": None
            if self.machine_factor is None
            else round(self.machine_factor, 4),
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
    cooldown_fraction: float = DEFAULT_COOLDOWN_FRACTION,
    step_factor: float = DEFAULT_STEP_FACTOR,
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
    if capacity <= 0:
        raise ScenarioError(
            f"--slo {slo_file}: one replica of {spec.variants.effective_preferred} misses the aim "
            f"({spec.aim_latency_ms:g} ms, {spec.policy.headroom:g} x objective.latencyMs) at "
            f"every rate by the profile: raise objective.latencyMs or prefer a faster variant"
        )
    if not 1 < step_factor <= 10:
        raise ScenarioError(f"the step factor must be in (1, 10], got {step_factor}")
    if not 0 < cooldown_fraction <= 10 or not math.isfinite(cooldown_fraction):
        raise ScenarioError(f"the cool-down fraction must be in (0, 10], got {cooldown_fraction}")
    fixed_rate = base_rps is not None
    if base_rps is None:
        if load_fraction <= 0:
            raise ScenarioError(f"the load fraction must be > 0, got {load_fraction}")
        base_rps = load_fraction * capacity
    if not base_rps > 0:
        raise ScenarioError(f"--rate must be > 0 req/s, got {base_rps}")
    load = LoadSpec(
        workload=workload,
        duration_s=float(duration_s),
        seed=seed,
        trace_file=None if trace_file is None else str(trace_file),
        load_fraction=load_fraction,
        cooldown_fraction=cooldown_fraction,
        fixed_rate=fixed_rate,
        step_factor=step_factor,
        stretch_target=Path(slo_file).resolve() == DEFAULT_SLO.resolve(),
        target_ms=spec.target_latency_ms,
    )
    wl = load.workload_at(float(base_rps))
    initial = RuntimeConfig(
        replicas=max(1, spec.replicas.min),
        batch_window_ms=spec.batching.min_window_ms,
        max_batch_size=spec.batching.max_batch_size,
        variant=spec.variants.effective_preferred,
        max_queue_wait_ms=spec.batching.max_queue_wait_ms,  # the workers start at the spec's
    )
    for name, value in (("--warmup", warmup_s), ("--cooldown", cooldown_s)):
        if not 0 <= value <= 3600 or value != int(value):
            raise ScenarioError(f"{name} must be whole seconds in 0..3600, got {value}")
    return Scenario(
        slo,
        profiles,
        wl,
        float(base_rps),
        initial,
        capacity,
        float(warmup_s),
        float(cooldown_s),
        cooldown_rps=None if fixed_rate else float(base_rps) * cooldown_fraction,
        load=load,
    )


@dataclass(frozen=True)
class LoadSpec:
    """The load as asked for (options), to rebuild it at another starting rate."""

    workload: str
    duration_s: float
    seed: int
    trace_file: str | None
    load_fraction: float
    cooldown_fraction: float
    fixed_rate: bool
    """`--rate` was given: the load is not resized from the measurement."""
    step_factor: float = DEFAULT_STEP_FACTOR
    """The `step` workload's rise (the simulator's own step is x2)."""
    step_over_saturation: float = DEFAULT_STEP_OVER_SATURATION
    """The `step` workload's peak over one replica's measured saturation, once measured."""
    stretch_target: bool = False
    """The SLO is the demo's own: on a machine slower than the profile, its target is
    stretched by the measured factor (a user's SLO is never changed)."""
    target_ms: float = 0.0
    """The target as written."""

    def workload_at(self, base_rps: float) -> Workload:
        wl = self._simulators(base_rps)
        if self.workload == "step" and self.step_factor != 2.0:
            rps = np.where(wl.knots_rps > base_rps * 1.01, base_rps * self.step_factor, base_rps)
            wl = replace(wl, knots_rps=rps)
        return wl

    def _simulators(self, base_rps: float) -> Workload:
        rescale = self.workload == "trace" and _is_timestamps(self.trace_file)
        try:
            return make_workload(
                self.workload,
                base_rps=base_rps,
                duration_s=self.duration_s,
                seed=self.seed,
                trace_file=self.trace_file,
                target_mean_rps=base_rps if rescale else None,
            )
        except (OSError, ValueError) as exc:
            raise ScenarioError(f"--workload {self.workload}: {exc}") from None


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
