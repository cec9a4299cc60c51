"""One demo run: workers, metrics, load, the operator's control loop, and clean shutdown.

```
LoadGenerator --(Router: the Service)--> worker processes <--/metrics-- Prometheus | DirectScrape
                                             ^                                      |
        LocalActuator (spawn/drain, admin push) <-- ControlLoop (policy) <----------+
```

The control loop is the operator's own `slo_operator.loop.ControlLoop` with the decision core
`slo_operator.policy`: only its ports differ (`LocalActuator` instead of the Kubernetes
actuator; the same `PrometheusSource`, or `DirectScrape` when there is no Prometheus). Time
zero is the start of the load; the controller steps every `intervalSeconds` from there, as
the simulator's controller does, and one `Tick` per second records the replica set.

Shutdown, on the end of the run, on an error, or on the first SIGINT/SIGTERM: stop sending,
let the requests in flight finish, stop the controller, drain and stop every worker, stop
Prometheus, then write the files (a partial run is written too). A second signal kills the
processes at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from slo_local.actuator import LocalActuator
from slo_local.demo.baseline import Baseline, BaselineChoice, RealView, configure
from slo_local.demo.probe import (
    SATURATION_LEVELS,
    SATURATION_S,
    Measurement,
    WorkerCounters,
    measure,
    read_all,
    saturation_rps,
)
from slo_local.demo.scenario import Scenario, capacity_rps, default_model_dir, model_accuracy
from slo_local.demo.simulate import run_scale, scaled_profiles, simulate, with_overhead
from slo_local.demo.story import Story, read_story
from slo_local.demo.timeline import SUMMARY_KEYS, Recording, Step, Tick, attainment_gap
from slo_local.demo.view import LiveState, LogView, View
from slo_local.loadgen import LoadGenerator, Router
from slo_local.promserver import PrometheusServer, prometheus_binary
from slo_local.scrape import DirectScrape, ScrapeTarget
from slo_operator.look import wait_looking
from slo_operator.loop import ControlLoop
from slo_operator.metrics.prometheus import PrometheusSource
from slo_operator.policy import Controller, OperatorLimits
from slo_operator.ports import MetricsSource
from slo_operator.sim.engine import SimSettings

log = logging.getLogger(__name__)

METRICS_CHOICES = ("auto", "prometheus", "direct")
WORKER_NICE = 5
"""Workers and the demo's Prometheus run a little below the demo process itself (load
generator, router, controller), which needs a small, steady share of the two cores: a
replica that starts (a few seconds of interpreter, torch import and model load) then takes
its CPU from its own core instead of pushing the load generator onto the serving replica's
core, and the measurements stay the clients' view, not the generator's own queueing."""
IN_FLIGHT_GRACE_S = 15.0
"""On a stop, requests already sent get this long to be answered before they are cancelled."""
LIVE_WINDOW_S = 5.0
"""The view's "measured p99" is over the client latencies of the last 5 seconds."""
PROBE_S = 8.0
"""Seconds of the probe that measures the warm replica before the warm-up."""
PROBE_LOAD = 0.15
"""The probe's rate over one replica's capacity according to the shipped profile: inside one
replica even on a spell three times slower, busy enough to time a hundred batches or more."""


@dataclass(frozen=True)
class DemoOptions:
    """How to run a scenario (not what it is: that is the `Scenario`)."""

    out_dir: Path
    json_path: Path | None = None
    metrics: str = "auto"
    model_dir: Path | None = None
    threads: int = 1
    pin: bool = True
    scrape_interval_s: float = 1.0
    write_files: bool = True
    simulate: bool = True
    policy: BaselineChoice | None = None
    """A simulator baseline drives the replicas instead of latencyslo's controller."""
    resize: bool = True
    """Size the load from the probe's measurement (off: the scenario's load as given)."""
    probe_s: float = PROBE_S


DEMO_SUMMARY_KEYS = (*SUMMARY_KEYS, "story")
"""The demo's JSON summary: the recording's keys, then the story's acts."""


@dataclass
class DemoResult:
    scenario: Scenario
    recording: Recording
    source: str
    startup_seconds: list[float]
    interrupted: bool = False
    warmup_steps: list[Step] = field(default_factory=list)
    """Control steps during the warm-up (before t = 0)."""
    simulated: dict[str, Any] | None = None
    details: dict[str, Any] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)

    story: Story | None = None
    policy: str = "latencyslo"

    def summary(self) -> dict[str, Any]:
        """The recording's summary plus the story's acts (`DEMO_SUMMARY_KEYS`)."""
        story = self.story or Story(None, None, None, None, None)
        return {**self.recording.summary(), "story": story.to_json()}


def ensure_model(model_dir: Path, view: View) -> None:
    """Build the demo model family once if it is missing (in a child process: the demo
    process itself never imports torch)."""
    if (model_dir / "variants.json").is_file():
        return
    view.note(f"building the demo model in {model_dir} (once, about a minute)")
    subprocess.run(
        [sys.executable, "-m", "slo_operator.cli", "build-demo-model", "--out", str(model_dir)],
        check=True,
        stdout=subprocess.DEVNULL,
    )


class _Run:
    """The moving parts of one run and their shutdown order."""

    def __init__(self, scenario: Scenario, options: DemoOptions, view: View) -> None:
        self.scenario = scenario
        self.options = options
        self.view = view
        self.spec = scenario.spec
        self.model_dir = options.model_dir or default_model_dir()
        self.router = Router()
        self.prometheus: PrometheusServer | None = None
        self.direct: DirectScrape | None = None
        self.source: MetricsSource | None = None
        self.prom_source: PrometheusSource | None = None
        self.source_name = ""
        self.actuator: LocalActuator | None = None
        self.loadgen: LoadGenerator | None = None
        self.loop: ControlLoop | None = None
        self.steps: list[Step] = []
        self.measured_scale: dict[str, list[float]] = {}
        """Per variant, the factors by which its batches ran slower in this run than the
        calibrated profile says (measured while it served alone, one per control step)."""
        self.ticks: list[Tick] = []
        self.probe: Measurement | None = None
        self.saturation: dict[str, float | None] | None = None
        """Requests per second the warm replica answered flat out, per requests in flight."""
        self.baseline: Baseline | None = None
        self.counters_at_start: dict[str, WorkerCounters] = {}
        self.counters_at_end: dict[str, WorkerCounters] = {}
        self.cpu_at_start = 0.0
        self.cpu_at_end = 0.0
        self.stop = asyncio.Event()
        self.signals = 0

    # ------------------------------------------------------------------ signals

    def on_signal(self) -> None:
        self.signals += 1
        self.stop.set()
        if self.signals == 1:
            self.view.note("stopping: draining the workers (Ctrl-C again to kill them)")
        else:
            if self.actuator is not None:
                self.actuator.kill_all()
            if self.prometheus is not None:
                self.prometheus.stop()

    # ------------------------------------------------------------------ setup

    def _targets(self) -> list[ScrapeTarget]:
        assert self.actuator is not None
        labels = {"namespace": self.scenario.slo.namespace}
        return [ScrapeTarget(r.target, labels) for r in self.actuator.running()]

    def _publish_targets(self, actuator: LocalActuator) -> None:
        if self.prometheus is not None:
            labels = {"namespace": self.scenario.slo.namespace}
            self.prometheus.set_targets([([r.target for r in actuator.running()], labels)])

    async def setup(self) -> None:
        out = self.options.out_dir
        out.mkdir(parents=True, exist_ok=True)
        await asyncio.to_thread(ensure_model, self.model_dir, self.view)
        want = self.options.metrics
        binary = prometheus_binary()
        if want == "prometheus" and not binary:
            raise RuntimeError("--metrics prometheus: the 'prometheus' binary is not on PATH")
        if want in ("auto", "prometheus") and binary:
            # a fresh folder per run: never share a TSDB with another Prometheus
            prom_dir = Path(tempfile.mkdtemp(prefix="prometheus-", dir=out))
            self.prometheus = PrometheusServer(
                scrape_interval_s=self.options.scrape_interval_s, workdir=prom_dir, nice=WORKER_NICE
            )
            # launched from the event-loop thread, which lives as long as the demo: with
            # `die_with_parent`, a killed demo takes its Prometheus with it
            self.prometheus.launch()
            await asyncio.to_thread(self.prometheus.wait_ready)
            self.source_name = "prometheus"
            self.view.note(f"Prometheus {self.prometheus.url} (scrape every "
                           f"{self.options.scrape_interval_s:g}s)")  # fmt: skip
        else:
            self.source_name = "direct scrape"
            self.view.note("no prometheus binary on PATH: scraping the workers directly")
        self.actuator = LocalActuator(
            model_dir=self.model_dir,
            workdir=out / "workers",
            initial=self.scenario.initial,
            router=self.router,
            threads=self.options.threads,
            pin=self.options.pin,
            nice=WORKER_NICE,
            on_change=self._publish_targets,
        )
        self.view.note(
            f"starting {self.scenario.initial.replicas} worker(s): "
            f"{self.scenario.initial.variant}, {self.options.threads} thread(s) each"
        )
        if self.stop.is_set():
            return
        await self.actuator.start(wait_ready=False)
        ready = asyncio.create_task(
            self.actuator.wait_ready(self.scenario.initial.replicas, timeout_s=300)
        )
        stopped = asyncio.create_task(self.stop.wait())
        await asyncio.wait({ready, stopped}, return_when=asyncio.FIRST_COMPLETED)
        stopped.cancel()
        if not ready.done():
            ready.cancel()
            return
        ready.result()
        await self.actuator.wait_warm()
        await self._probe()
        if self.stop.is_set():
            return
        if self.prometheus is not None:
            self.prom_source = PrometheusSource(self.prometheus.url, timeout_s=2.0)
            self.source = self.prom_source
        else:
            self.direct = DirectScrape(self._targets, interval_s=self.options.scrape_interval_s)
            await self.direct.start()
            self.source = self.direct
        self.loop = ControlLoop(
            name=self.scenario.slo.name,
            namespace=self.scenario.slo.namespace,
            metrics=self.source,
            actuator=self.actuator,
            profiles=self.scenario.profiles,
            limits=OperatorLimits(scrape_interval_s=self.options.scrape_interval_s),
        )
        from inference_worker.texts import sample_texts

        self.texts = sample_texts(1024, tokens=self.scenario.tokens)
        self.loadgen = LoadGenerator(self.scenario.arrivals(), self.router, self.texts)

    async def _probe(self) -> None:
        """Measure the warm replica (`slo_local.demo.probe`), size the load from it and, for
        a baseline, configure it on the profile as measured."""
        assert self.actuator is not None
        from inference_worker.texts import sample_texts

        rate = max(2.0, PROBE_LOAD * capacity_rps(self.spec, self.scenario.profiles))
        seconds = self.options.probe_s
        rng = __import__("numpy").random.default_rng(self.scenario.workload.seed + 7)
        arrivals = sorted(rng.uniform(0.0, seconds, size=rng.poisson(rate * seconds)).tolist())
        texts = sample_texts(256, tokens=self.scenario.tokens)
        urls = [r.url for r in self.actuator.running()]
        saturation, quiet_until = None, 0.0
        if self.options.resize and self.scenario.resizable and len(urls) == 1:
            self.view.note(
                f"measuring the warm replica flat out: {SATURATION_S:g}s at each of "
                f"{', '.join(map(str, SATURATION_LEVELS))} requests in flight"
            )
            saturation, per_level = await saturation_rps(urls[0], texts)
            self.saturation = {str(k): None if v is None else round(v, 1)
                               for k, v in per_level.items()}  # fmt: skip
            # the controller's first step must not see the flat-out spell in its window
            quiet_until = (
                time.monotonic()
                + self.spec.objective.window_seconds
                + 2.0 * self.options.scrape_interval_s
            )
        self.view.note(f"measuring the warm replica: {rate:.0f} req/s for {seconds:g}s")
        before = await read_all(urls)
        probe = LoadGenerator(arrivals, self.router, texts)
        try:
            await probe.run()
        finally:
            await probe.aclose()
        after = await read_all(urls)
        for url in urls:
            if url in before and url in after:
                self.probe = measure(before[url], after[url], self.scenario.profiles)
        m = self.probe
        if m is None or m.factor is None:
            self.view.note("the probe measured no batch: the load stays sized from the profile")
        else:
            old = self.scenario.base_rps
            if self.options.resize:
                self.scenario = self.scenario.resized(m.factor, saturation)
                self.spec = self.scenario.spec
            self.view.note(
                f"warm replica: {m.batch_ms:.1f} ms per batch of {m.mean_batch_size:.1f} "
                f"({m.factor:.2f}x the profile), {m.overhead_ms:.2f} ms of CPU per request "
                f"outside the model; one replica holds ~{self.scenario.capacity_rps:.0f} "
                f"req/s at the aim"
                + ("" if saturation is None else f" and answers {saturation:.0f} flat out")
                + f"; starting rate {self.scenario.base_rps:.1f} req/s"
                + (f" (was {old:.1f})" if self.scenario.base_rps != old else "")
                + f", peak {self.scenario.workload.peak_rps:.1f}"
            )
            stretched = self.scenario.describe()["target_stretched_from_ms"]
            if stretched is not None and self.options.resize:
                self.view.note(
                    f"the model runs {m.factor:.2f}x slower than profiled here: the demo's "
                    f"target is stretched alike, {stretched:g} -> "
                    f"{self.spec.target_latency_ms:g} ms"
                )
        if self.options.policy is not None:
            self.baseline = configure(
                self.options.policy,
                self.spec,
                self.measured_profiles(),
                self.scenario.initial,
                SimSettings(scrape_s=max(1, round(self.options.scrape_interval_s))),
            )
            if self.baseline.start != self.actuator.desired:
                await self.actuator.apply(self.baseline.start)
            self.view.note(f"baseline {self.baseline.describe()}")
        pause = quiet_until - time.monotonic()
        if pause > 0:
            self.view.note(f"letting the objective window pass the flat-out spell: {pause:.0f}s")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop.wait(), pause)

    def measured_profiles(self) -> Any:
        """The profile scaled by the probe's factor (every variant alike)."""
        factor = self.probe.factor if self.probe is not None else None
        if factor is None:
            return self.scenario.profiles
        return scaled_profiles(
            self.scenario.profiles, dict.fromkeys(self.scenario.profiles.variants, factor)
        )

    # ------------------------------------------------------------------ running

    def live(self) -> LiveState:
        assert self.actuator is not None
        gen = self.loadgen
        elapsed = gen.elapsed() if gen is not None else 0.0
        warmup = self.scenario.warmup_s
        recent = []
        offered = 0
        failed = 0
        if gen is not None:
            for r in reversed(gen.records):
                if r.done < elapsed - LIVE_WINDOW_S:
                    break
                recent.append(r.latency if r.ok else math.inf)
            offered = int(
                sum(1 for a in gen.arrivals[: gen.sent][-2000:] if a >= elapsed - LIVE_WINDOW_S)
            )
            failed = gen.failed
        recent.sort()
        p = math.nan
        if recent:
            p = recent[min(len(recent) - 1, math.ceil(self.spec.quantile * len(recent)) - 1)]
            p *= 1000.0
        return LiveState(
            elapsed_s=elapsed - warmup,
            duration_s=self.scenario.scored_s,
            offered_rps=offered / LIVE_WINDOW_S,
            measured_p99_ms=p,
            target_ms=self.spec.target_latency_ms,
            snapshot=self.actuator.snapshot(),
            failed=failed,
            requests=gen.sent if gen is not None else 0,
            source=self.source_name,
        )

    async def _control(self, t0: float) -> None:
        assert self.loop is not None
        assert self.actuator is not None
        interval = self.spec.policy.interval_seconds
        k = 1
        while True:
            due = t0 + k * interval
            wait = due - time.monotonic()
            early = await wait_looking(self.loop, wait, _nap, clock=time.monotonic)
            if early and due - time.monotonic() >= interval / 2:
                k -= 1  # a look brought this step forward; the one due still comes, as in the
                # operator when it is at least half an interval away
            t = time.monotonic() - t0 - self.scenario.warmup_s
            before = self.actuator.desired
            result = await self.loop.step(self.spec)
            after = self.actuator.desired
            obs = result.observation
            decision = result.decision
            step = Step(
                t=t,
                latency_ms=obs.latency_ms if obs is not None and obs.has_latency else None,
                request_rate=obs.request_rate if obs is not None else None,
                error=obs.error if obs is not None else "no observation",
                age_seconds=obs.age_seconds if obs is not None else None,
                action=decision.action.value if decision is not None else "Hold",
                reason=decision.reason if decision is not None else "no decision",
                acted=result.acted,
                before=before,
                after=after,
                trusted=obs is not None and self._controller().trust(obs).latency,
                predicted_latency_ms=decision.predicted_latency_ms
                if decision is not None
                else None,
            )
            self.steps.append(step)
            self.view.step(step, self.live())
            fit = self._controller().last_fit
            for variant, factor in (fit.measured_alone if fit is not None else {}).items():
                self.measured_scale.setdefault(variant, []).append(float(factor))
            scale = dict(fit.scale) if fit is not None else None
            log.info("step at %.1fs: %s; observation %s; profile scale %s", t, step, obs, scale)
            k += 1

    async def _baseline(self, t0: float) -> None:
        """The baseline's own loop: a tick every second, as in the simulator."""
        assert self.baseline is not None
        assert self.actuator is not None
        assert self.loadgen is not None
        policy = self.baseline.fresh(self.spec)
        view = RealView(self.actuator, self.loadgen, t0)
        warmup = self.scenario.warmup_s
        reads_cpu = self.baseline.choice.name == "hpa"
        k = 1
        sampler = asyncio.create_task(self._sample_inflight(view, t0))
        try:
            while True:
                await asyncio.sleep(max(0.0, t0 + k - time.monotonic()))
                if reads_cpu:
                    await view.sample_cpu()
                before = self.actuator.desired
                target = policy.act(view.now, view)
                acted = False
                if target is not None and target != before:
                    await self.actuator.apply(target)
                    acted = True
                after = self.actuator.desired
                interval = self.spec.policy.interval_seconds
                if acted or k % interval == 0:
                    obs = view.observe(self.spec.objective.window_seconds, self.spec.quantile)
                    action = "Hold"
                    if after.replicas > before.replicas:
                        action = "ScaleUp"
                    elif after.replicas < before.replicas:
                        action = "ScaleDown"
                    step = Step(
                        t=time.monotonic() - t0 - warmup,
                        latency_ms=obs.latency_ms,
                        request_rate=obs.request_rate,
                        error=None,
                        age_seconds=obs.age_seconds,
                        action=action,
                        reason=f"{self.baseline.choice.label}: "
                        f"{'replicas ' + str(after.replicas) if acted else 'no change'}",
                        acted=acted,
                        before=before,
                        after=after,
                        trusted=True,
                    )
                    self.steps.append(step)
                    self.view.step(step, self.live())
                k += 1
        finally:
            sampler.cancel()

    async def _sample_inflight(self, view: RealView, t0: float) -> None:
        while True:
            view.sample_inflight()
            await asyncio.sleep(view.SAMPLE_S)

    def _controller(self) -> Controller:
        """The controller the loop holds (built by its first step)."""
        assert self.loop is not None
        assert self.loop.controller is not None
        return self.loop.controller

    async def _sample(self, t0: float) -> None:
        assert self.actuator is not None
        k = 0
        while True:
            await asyncio.sleep(max(0.0, t0 + k - time.monotonic()))
            s = self.actuator.snapshot()
            t = k - round(self.scenario.warmup_s)
            self.ticks.append(Tick(t, s.desired, s.ready, s.processes, s.config))
            k += 1

    async def _refresh(self) -> None:
        while True:
            self.view.update(self.live())
            await asyncio.sleep(0.25)

    async def run(self) -> None:
        assert self.loadgen is not None
        self.cpu_at_start = self._shared_cpu_s()
        self.counters_at_start = await read_all(
            [r.url for r in self.actuator.running()] if self.actuator else []
        )
        t0 = time.monotonic() + 0.2
        self.view.note(
            f"load: {self.scenario.workload.name}, {self.scenario.base_rps:.1f} req/s at first, "
            f"{self.scenario.warmup_s:.0f}s of warm-up, {self.scenario.duration_s:.0f}s, "
            f"{self.scenario.cooldown_s:.0f}s of cool-down; "
            f"target p{self.spec.objective.percentile:g} {self.spec.target_latency_ms:g}ms"
        )
        control = self._baseline(t0) if self.baseline is not None else self._control(t0)
        helpers = [
            asyncio.create_task(control, name="control"),
            asyncio.create_task(self._sample(t0), name="sample"),
            asyncio.create_task(self._refresh(), name="refresh"),
        ]
        load = asyncio.create_task(self.loadgen.run(t0), name="load")
        stopped = asyncio.create_task(self.stop.wait())
        try:
            done, _ = await asyncio.wait(
                {load, stopped, *helpers}, return_when=asyncio.FIRST_COMPLETED
            )
            for task in done:
                if task in helpers and task.exception() is not None:
                    raise task.exception()  # type: ignore[misc]
            if not load.done():
                # stopped early: send nothing more, let the requests in flight finish
                self.loadgen.stop()
                await asyncio.wait({load}, timeout=IN_FLIGHT_GRACE_S)
            self.cpu_at_end = self._shared_cpu_s()
            if self.actuator is not None:
                self.counters_at_end = await read_all(list(self.counters_at_start))
        finally:
            for task in (load, stopped, *helpers):
                task.cancel()
            await asyncio.gather(load, stopped, *helpers, return_exceptions=True)

    async def shutdown(self) -> None:
        """Stop everything, in order; one failing stop never skips the next."""
        steps: list[tuple[str, Any]] = []
        if self.loadgen is not None:
            steps.append(("load generator", self.loadgen.aclose))
        if self.direct is not None:
            steps.append(("direct scrape", self.direct.aclose))
        if self.prom_source is not None:
            steps.append(("Prometheus client", _async(self.prom_source.close)))
        if self.actuator is not None:
            steps.append(("workers", self.actuator.close))
        if self.prometheus is not None:
            steps.append(("Prometheus", _async(self._stop_prometheus)))
        for what, stop in steps:
            try:
                await stop()
            except Exception:  # every stage of the shutdown runs, whatever one raised
                log.exception("stopping the %s failed", what)
                if self.actuator is not None:
                    self.actuator.kill_all()

    def _shared_cpu_s(self) -> float:
        """CPU seconds of what shares the cores with the replicas: this process (load
        generator, router, controller) and the demo's Prometheus."""
        cpu = time.process_time()
        proc = getattr(self.prometheus, "_proc", None) if self.prometheus else None
        if proc is not None:
            cpu += _process_cpu_s(proc.pid)
        return cpu

    def _stop_prometheus(self) -> None:
        assert self.prometheus is not None
        self.prometheus.stop()
        with contextlib.suppress(OSError):
            shutil.copy(self.prometheus.log_file, self.options.out_dir / "prometheus.log")
        shutil.rmtree(self.prometheus.workdir, ignore_errors=True)


async def _nap(seconds: float) -> bool:
    await asyncio.sleep(seconds)
    return False


def _process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process (Linux /proc; 0 elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return 0.0


def _async(fn: Any) -> Any:
    async def call() -> None:
        await asyncio.to_thread(fn)

    return call


async def run_demo(
    scenario: Scenario, options: DemoOptions, view: View | None = None
) -> DemoResult:
    """Run one scenario end to end (see module docs); signals stop it cleanly."""
    view = view or LogView()
    run = _Run(scenario, options, view)
    loop = asyncio.get_running_loop()
    installed = []
    for sig in ("SIGINT", "SIGTERM"):
        import signal

        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(getattr(signal, sig), run.on_signal)
            installed.append(getattr(signal, sig))
    load_before = os.getloadavg()
    try:
        await run.setup()
        if not run.stop.is_set():
            await run.run()
    finally:
        try:
            await asyncio.shield(run.shutdown())
        finally:
            for sig in installed:
                loop.remove_signal_handler(sig)
    scenario = run.scenario  # sized from the warm replica
    spec = scenario.spec
    model_dir = run.model_dir
    names = tuple(spec.variants.allowed)
    warmup = scenario.warmup_s
    requests = [
        dataclasses.replace(r, due=r.due - warmup)
        for r in (run.loadgen.records if run.loadgen else [])
        if r.due >= warmup
    ]
    elapsed = (run.loadgen.elapsed() - warmup) if run.loadgen else 0.0
    recording = Recording(
        target_ms=spec.target_latency_ms,
        quantile=spec.quantile,
        window_s=spec.objective.window_seconds,
        interval_s=spec.policy.interval_seconds,
        preferred=spec.variants.effective_preferred,
        variant_names=names,
        accuracy=model_accuracy(model_dir),
        duration_s=max(0.0, min(scenario.scored_s, elapsed)),
        requests=requests,
        ticks=[k for k in run.ticks if k.t >= 0],
        steps=[s for s in run.steps if s.t >= 0],
    )
    startup = run.actuator.startup_seconds() if run.actuator else []
    result = DemoResult(
        scenario=scenario,
        recording=recording,
        source=run.source_name,
        startup_seconds=startup,
        interrupted=run.stop.is_set(),
        warmup_steps=[s for s in run.steps if s.t < 0],
        story=read_story(recording, scenario.step_at(), scenario.fall_at()),
        policy=run.baseline.choice.label if run.baseline is not None else "latencyslo",
    )
    new_replicas = startup[scenario.initial.replicas :]
    in_run = _in_run_measurement(run)
    if options.simulate and not result.interrupted and recording.requests:
        measured = sum(new_replicas) / len(new_replicas) if new_replicas else max(startup or [8])
        if run.measured_scale:
            scale = run_scale(run.measured_scale, scenario.profiles.variants)
        else:  # a baseline: no controller measured; the whole run's factor, else the probe's
            m = in_run or run.probe
            f = m.factor if m is not None and m.factor is not None else 1.0
            scale = dict.fromkeys(scenario.profiles.variants, f)
        # what the replicas pay per request beyond their batches: their own CPU outside
        # the model, and their share of the load generator's and Prometheus' CPU (spread
        # over the cores all of them run on)
        shared = _shared_ms_per_request(run, len(recording.requests))
        overhead = (in_run.overhead_ms if in_run is not None else 0.0) + shared
        learned = scaled_profiles(scenario.profiles, scale)
        simulated, _ = simulate(
            scenario,
            startup_s=measured,
            scrape_s=round(options.scrape_interval_s),
            profiles=with_overhead(learned, overhead),
            controller_profiles=learned,
            policy=run.baseline.fresh(spec) if run.baseline is not None else None,
        )
        result.simulated = {
            "startup_s": round(measured, 2),
            "profile_scale": {k: round(v, 3) for k, v in scale.items()},
            "overhead_ms_per_request": round(overhead, 4),
            "shared_cpu_ms_per_request": round(shared, 4),
            "slo_attainment_requests": round(simulated["slo_attainment_requests"], 5),
            "slo_attainment_windows": round(simulated["slo_attainment_windows"], 5),
            "recovery_seconds": simulated["recovery_seconds"],
            "replica_seconds": simulated["replica_seconds"],
            "accuracy": round(simulated["accuracy"], 5),
        }
    lags = sorted(r.lag for r in recording.requests)
    result.details = {
        "scenario": scenario.describe(),
        "policy": run.baseline.describe() if run.baseline is not None else "latencyslo",
        "story": result.story.to_json() if result.story else None,
        "story_verdict": result.story.verdict() if result.story else None,
        "probe": run.probe.describe() if run.probe is not None else None,
        "flat_out_rps_by_requests_in_flight": run.saturation,
        "first_replica_in_run": in_run.describe() if in_run is not None else None,
        "generator_and_prometheus_cpu_ms_per_request": round(
            (run.cpu_at_end - run.cpu_at_start) * 1000.0 / max(1, len(recording.requests)), 3
        )
        if run.cpu_at_end
        else None,
        "metrics_source": run.source_name,
        "interrupted": result.interrupted,
        "replica_startup_seconds": [round(s, 2) for s in startup],
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "generator_lag_ms": {
            "p50": round(lags[len(lags) // 2] * 1000, 2) if lags else None,
            "max": round(lags[-1] * 1000, 2) if lags else None,
        },
        "simulated": result.simulated,
        "warmup_decisions": [
            {"t": round(s.t, 1), "action": s.action, "reason": s.reason}
            for s in result.warmup_steps
            if s.acted and s.after != s.before
        ],
        "decisions": [
            {
                "t": round(s.t, 1),
                "action": s.action,
                "from": s.before.worker_payload() | {"replicas": s.before.replicas},
                "to": s.after.worker_payload() | {"replicas": s.after.replicas},
                "reason": s.reason,
            }
            for s in recording.changes
        ],
    }
    if result.simulated is not None and recording.requests:
        gap = attainment_gap(
            recording.summary()["slo_attainment_requests"] or 0.0,
            result.simulated["slo_attainment_requests"],
        )
        result.details["attainment_gap_pp"] = round(gap, 2)
    if options.write_files and recording.requests:
        write_outputs(result, options)
    return result


def _shared_ms_per_request(run: _Run, requests: int) -> float:
    """The load generator's and Prometheus' CPU per request, over the CPUs (ms)."""
    if not run.cpu_at_end or requests <= 0:
        return 0.0
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return (run.cpu_at_end - run.cpu_at_start) * 1000.0 / requests / max(1, cpus or 1)


def _in_run_measurement(run: _Run) -> Measurement | None:
    """The first replica's batch times and per-request overhead over the whole load."""
    for url, before in run.counters_at_start.items():
        after = run.counters_at_end.get(url)
        if after is not None:
            return measure(before, after, run.scenario.profiles)
    return None


def write_outputs(result: DemoResult, options: DemoOptions) -> None:
    out = options.out_dir
    out.mkdir(parents=True, exist_ok=True)
    rec = result.recording
    csv_path, png_path = out / "timeline.csv", out / "timeline.png"
    rec.write_csv(csv_path)
    rec.write_requests_csv(out / "requests.csv")
    spec = result.scenario.spec
    title = (
        f"latencyslo demo ({result.policy}): {result.scenario.workload.name} load, "
        f"p{spec.objective.percentile:g} "
        f"target {spec.target_latency_ms:g} ms, metrics from {result.source}"
    )
    rec.write_png(png_path, title)
    summary = result.summary()
    json_path = options.json_path or out / "summary.json"
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(summary, indent=2) + "\n")
    details_path = out / "details.json"
    details_path.write_text(json.dumps({"summary": summary, **result.details}, indent=2) + "\n")
    result.files = {
        "timeline_csv": str(csv_path),
        "timeline_png": str(png_path),
        "summary_json": str(json_path),
        "details_json": str(details_path),
        "requests_csv": str(out / "requests.csv"),
    }
