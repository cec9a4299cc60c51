"""Discrete-event simulation of an inference Deployment under a controller.

Time advances in one-second ticks; within a tick every request and every batch is simulated
exactly (float seconds). What happens:

- Arrivals (seeded, identical for every policy) reach the replicas that are ready, spread
  at random like a Kubernetes Service (each request carries a uniform draw `u`; the replica
  is `floor(u * ready)`, so two policies with the same ready count route identically).
- Each replica runs the worker's batcher (`inference_worker.batcher`): one batch at a time;
  a batch leaves as soon as it holds `max_batch` requests, or once the oldest queued request
  has waited `window_ms` (at once when the model frees up after that; window 0 = send what
  is queued). A batch of b runs `alpha + beta * b` ms of the active variant (times a small
  log-normal jitter). A full queue (`queue_limit`) rejects the request (503), which counts
  as a violation and, as the worker observes it, in the histogram's `+Inf` bucket; so does a
  request that has waited longer than the batch window plus `queue_wait_ms` when its batch
  leaves (the worker's `--max-queue-wait-ms`, off by default): it is refused unrun.
- A controller (`Controller`) acts at the start of the ticks it chooses, on what it could
  know: a Prometheus-style view (`SimView.observe`: a histogram with the worker's bucket
  edges, scraped every `scrape_s`, read over the objective's window and interpolated like
  `histogram_quantile`), CPU busy time, in-flight requests.
- New replicas are ready `startup_s` after the scale-up (they cost replica-seconds while
  starting); a removed replica stops receiving requests at once and drains its queue; a
  variant switch takes effect on running replicas `switch_s` after it is ordered (a warm
  swap: the old variant serves meanwhile); window and max batch apply to the next batch.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Callable, Sequence
from typing import Protocol

import numpy as np

from slo_operator.sim.plant import Plant
from slo_operator.sim.trace import EDGES_S as EDGES_S
from slo_operator.sim.trace import N_BUCKETS as N_BUCKETS
from slo_operator.sim.trace import SimSettings as SimSettings
from slo_operator.sim.trace import Trace as Trace
from slo_operator.sim.trace import slice_trace as slice_trace
from slo_operator.sim.view import PEAK_RANGE_S as PEAK_RANGE_S
from slo_operator.sim.view import SimView as SimView
from slo_operator.types import ProfileSet, RuntimeConfig


class Controller(Protocol):
    """A policy driven by the simulator."""

    name: str

    def act(self, t: int, view: SimView) -> RuntimeConfig | None:
        """Called at the start of every tick; returns a new configuration or None."""
        ...


class _Pod:
    __slots__ = (
        "arr",
        "created",
        "draining",
        "free",
        "head",
        "last_c",
        "next_variant",
        "ready_at",
        "switch_at",
        "variant",
    )

    def __init__(self, created: float, ready_at: float, variant: str) -> None:
        self.arr: list[float] = []
        self.head = 0
        self.free = 0.0
        self.last_c = 0  # size of the last batch dispatched
        self.created = created
        self.ready_at = ready_at
        self.variant = variant
        self.next_variant: str | None = None
        self.switch_at = math.inf
        self.draining = False

    def backlog(self) -> int:
        return len(self.arr) - self.head


class Simulation:
    """One policy on one arrival sequence. Build it, then `run(controller)`."""

    def __init__(
        self,
        arrivals: np.ndarray,
        route_u: np.ndarray,
        duration_s: int,
        profiles: ProfileSet,
        initial: RuntimeConfig,
        target_ms: float,
        settings: SimSettings | None = None,
        seed: int = 0,
        variant_order: Sequence[str] = (),
        plant: Plant | None = None,
    ) -> None:
        if len(arrivals) != len(route_u):
            raise ValueError("arrivals and route_u must have the same length")
        self.settings = settings or SimSettings()
        self.duration = int(duration_s)
        self.profiles = profiles
        # best quality first (the spec's order), then any other profiled variant
        first = [v for v in variant_order if v in profiles.variants]
        self.variant_names = (*first, *(v for v in profiles.variants if v not in first))
        self.target_s = target_ms / 1000.0
        self.target_ms = target_ms
        keep = arrivals < self.duration
        self.arr = np.asarray(arrivals[keep], dtype=float)
        self.u = np.asarray(route_u[keep], dtype=float)
        self.bounds = np.searchsorted(self.arr, np.arange(self.duration + 1, dtype=float))
        n = self.duration + 2
        self.arrivals_per_s = np.diff(self.bounds).astype(float)
        self.hist = np.zeros((n, N_BUCKETS))
        self.ok = np.zeros(n)
        self.completed = np.zeros(n)
        self.busy = np.zeros(n)
        self.inflight = np.zeros(n)
        self.max_batch_s = np.zeros(n)
        self.rejected = np.zeros(n)
        self.t = 0
        self.config = initial
        self.pods: list[_Pod] = [
            _Pod(created=0.0, ready_at=0.0, variant=initial.variant)
            for _ in range(initial.replicas)
        ]
        rng = np.random.default_rng(seed + 7919)
        cv = self.settings.service_cv
        self.plant = plant
        # per-second integral of the requests in flight, as four running sums: accepted
        # arrivals and their share of their second left, completions and theirs
        self.conc_a = np.zeros(n)
        self.conc_ap = np.zeros(n)
        self.conc_d = np.zeros(n)
        self.conc_dp = np.zeros(n)
        self._ratios: dict[tuple[str, int], list[tuple[float, ...]] | None] = {}
        if plant is not None:  # uniform draws into the measured spread
            noise = rng.random(size=1 << 16)
        elif cv > 0:
            sigma = math.sqrt(math.log(1.0 + cv * cv))
            noise = rng.lognormal(-sigma * sigma / 2.0, sigma, size=1 << 16)
        else:
            noise = np.ones(1 << 16)
        self._noise: list[float] = noise.tolist()
        self._noise_i = 0
        self._svc: dict[tuple[str, int], list[float]] = {}
        self._acc: dict[str, float | None] = {
            name: p.accuracy for name, p in profiles.variants.items()
        }
        self.acc_sum = np.zeros(n)
        self.acc_n = np.zeros(n)
        # what the workers' batch metrics count, per second: batches, their sizes, and their
        # time per variant (the operator's profile factors come from these)
        self.batch_n = np.zeros(n)
        self.batch_size_sum = np.zeros(n)
        self.batch_s_by_variant: dict[str, tuple[np.ndarray, np.ndarray]] = {
            name: (np.zeros(n), np.zeros(n)) for name in profiles.variants
        }

    # ------------------------------------------------------------------------ cluster state
    def ready_count(self) -> int:
        t = self.t
        return sum(1 for p in self.pods if not p.draining and p.ready_at <= t)

    def starting_count(self) -> int:
        t = self.t
        return sum(1 for p in self.pods if not p.draining and p.ready_at > t)

    def _service_table(self, variant: str, max_batch: int) -> list[float]:
        key = (variant, max_batch)
        table = self._svc.get(key)
        if table is None:
            prof = self.profiles.variants[variant]
            if self.plant is None:
                table = [(prof.alpha_ms + prof.beta_ms * b) / 1000.0 for b in range(max_batch + 1)]
            else:
                table = [0.0] + [
                    self.plant.median_ms(variant, b, self.profiles) / 1000.0
                    for b in range(1, max_batch + 1)
                ]
            self._svc[key] = table
        return table

    def _ratio_table(self, variant: str, max_batch: int) -> list[tuple[float, ...]] | None:
        key = (variant, max_batch)
        if key not in self._ratios:
            plant = self.plant
            self._ratios[key] = None if plant is None else plant.ratio_table(variant, max_batch)
        return self._ratios[key]

    def apply(self, target: RuntimeConfig) -> None:
        """Move to `target` at the current tick (what an actuator would do)."""
        t = self.t
        cur = self.config
        if target.variant != cur.variant:
            for p in self.pods:
                if p.draining:
                    continue
                if p.ready_at <= t:
                    p.next_variant = target.variant
                    p.switch_at = t + self.settings.switch_s
                else:  # still starting: it loads the variant of the ConfigMap
                    p.variant = target.variant
                    p.next_variant, p.switch_at = None, math.inf
        active = [p for p in self.pods if not p.draining]
        want = max(0, target.replicas)
        if want > len(active):
            for _ in range(want - len(active)):
                self.pods.append(
                    _Pod(created=t, ready_at=t + self.settings.startup_s, variant=target.variant)
                )
        elif want < len(active):
            # cancel starting pods first (newest first), then drain ready ones
            victims = sorted(active, key=lambda p: (p.ready_at <= t, -p.created))
            for p in victims[: len(active) - want]:
                if p.ready_at > t:
                    self.pods.remove(p)
                else:
                    p.draining = True
        self.config = target

    # ------------------------------------------------------------------------------ serving
    def _serve(
        self,
        pod: _Pod,
        t_end: float,
        closed: bool,
        served: list[float],
        bcounts: list[int],
        bdones: list[float],
        rejected: list[float],
        expired: list[float],
    ) -> tuple[float, float]:
        """Run pod's batches that start before t_end; returns (busy seconds, longest batch).
        Refused requests go to `rejected` (arrival times: a full queue answers at once) or
        `expired` (answer times: the queue wait limit answers when the batch leaves)."""
        cfg = self.config
        big_b = cfg.max_batch_size
        window = cfg.batch_window_ms / 1000.0
        svc = self._service_table(pod.variant, big_b)
        ratios = self._ratio_table(pod.variant, big_b)
        noise, ni = self._noise, self._noise_i
        arr, i, free, c = pod.arr, pod.head, pod.free, pod.last_c
        n = len(arr)
        start = i
        busy = 0.0
        longest = 0.0
        batches = 0
        limit = self.settings.queue_limit
        max_wait = self.settings.queue_wait_ms / 1000.0
        if max_wait > 0.0:  # the limit is on the wait beyond the batch window
            max_wait += window
        while i < n:
            a = arr[i]  # the oldest queued request
            o = a if a > free else free  # the model is free from o
            if o >= t_end:
                break
            # leave when full, or when the oldest has waited the window (at once if it has)
            d = a + window
            if d < o:
                d = o
            # the queue only grows between two batches: whatever arrived by d beyond the
            # first `limit` waiting requests found the queue full (503)
            if n - i > limit and arr[i + limit] <= d:
                j = bisect_right(arr, d, i + limit, n)
                rejected.extend(arr[i + limit : j])
                del arr[i + limit : j]
                n = len(arr)
            # with a queue wait limit, whoever waited longer when the batch leaves is refused
            # unrun; the batch is formed of the rest that arrived by then
            if max_wait > 0.0 and d - a > max_wait:
                j = bisect_right(arr, d - max_wait, i, n)
                expired.extend([d] * (j - i))
                del arr[i:j]
                n = len(arr)
                if i == n or arr[i] > d:
                    continue  # none left to send: the next batch waits for the next arrival
            k = i + big_b - 1
            if k < n and arr[k] <= d:
                ak = arr[k]
                d = ak if ak > o else o
                c = big_b
            else:
                if d >= t_end and not closed:
                    break  # the batch may still grow with the next tick's arrivals
                c = bisect_right(arr, d, i, k if k < n else n) - i
            if ratios is None:
                s = svc[c] * noise[ni]
            else:  # the median of this size times a measured ratio
                r = ratios[c]
                s = svc[c] * r[int(noise[ni] * len(r))]
            ni = (ni + 1) & 0xFFFF
            free = d + s
            busy += s
            if s > longest:
                longest = s
            bcounts.append(c)
            bdones.append(free)
            batches += 1
            i += c
        self._noise_i = ni
        if batches:
            t = self.t
            self.batch_n[t] += batches
            self.batch_size_sum[t] += i - start
            times, counts = self.batch_s_by_variant[pod.variant]
            times[t] += busy
            counts[t] += batches
        if i > start:
            served.extend(arr[start:i])
            acc = self._acc.get(pod.variant)
            if acc is not None:
                self.acc_sum[self.t] += acc * (i - start)
                self.acc_n[self.t] += i - start
        pod.free = free
        pod.last_c = c
        if i > 50_000 and i > n // 2:
            del arr[:i]
            i = 0
        pod.head = i
        return busy, longest

    def _route(self, t: int, ready: list[_Pod]) -> None:
        lo, hi = int(self.bounds[t]), int(self.bounds[t + 1])
        if hi <= lo:
            return
        if not ready:
            self.rejected[t] += hi - lo
            return
        seg = self.arr[lo:hi]
        k = len(ready)
        if k == 1:
            parts: Sequence[np.ndarray] = [seg]
        else:
            idx = (self.u[lo:hi] * k).astype(np.intp)
            order = np.argsort(idx, kind="stable")
            cuts = np.cumsum(np.bincount(idx, minlength=k))[:-1]
            parts = np.split(seg[order], cuts)
        for pod, part in zip(ready, parts, strict=True):
            if len(part):
                pod.arr.extend(part.tolist())
        self.conc_a[t] += hi - lo
        self.conc_ap[t] += float((t + 1.0 - seg).sum())

    def step(self) -> None:
        """Simulate the tick [t, t + 1)."""
        t = self.t
        for p in self.pods:
            if p.switch_at <= t and p.next_variant is not None:
                p.variant, p.next_variant, p.switch_at = p.next_variant, None, math.inf
        ready = [p for p in self.pods if not p.draining and p.ready_at <= t]
        self._route(t, ready)
        served: list[float] = []
        bcounts: list[int] = []
        bdones: list[float] = []
        rejected: list[float] = []
        expired: list[float] = []
        busy_sum = 0.0
        longest = 0.0
        t_end = float(t + 1)
        for p in self.pods:
            if p.ready_at > t:
                continue
            busy, lb = self._serve(p, t_end, p.draining, served, bcounts, bdones, rejected, expired)
            if not p.draining:
                busy_sum += busy
            longest = max(longest, lb)
        self.pods = [
            p for p in self.pods if not (p.draining and p.backlog() == 0 and p.free <= t_end)
        ]
        if bcounts:
            done = np.repeat(np.asarray(bdones), bcounts)
            dsec = np.minimum(done.astype(np.intp), len(self.conc_d) - 1)
            self.conc_d += np.bincount(dsec, minlength=len(self.conc_d))
            self.conc_dp += np.bincount(dsec, weights=dsec + 1.0 - done, minlength=len(self.conc_d))
            lat = done - np.asarray(served)
            sec = np.minimum((done - t).astype(np.intp), 1)
            bucket = np.searchsorted(EDGES_S, lat, side="left")
            self.hist[t : t + 2] += np.bincount(
                sec * N_BUCKETS + bucket, minlength=2 * N_BUCKETS
            ).reshape(2, N_BUCKETS)
            self.completed[t : t + 2] += np.bincount(sec, minlength=2)
            self.ok[t : t + 2] += np.bincount(sec, weights=lat <= self.target_s, minlength=2)
        if rejected:
            rej = np.asarray(rejected)
            secs = rej.astype(np.intp)
            np.add.at(self.rejected, secs, 1.0)
            np.add.at(self.hist, (secs, N_BUCKETS - 1), 1.0)  # the worker's +Inf bucket
            np.add.at(self.conc_a, secs, -1.0)  # never in flight
            np.add.at(self.conc_ap, secs, -(secs + 1.0 - rej))
        if expired:  # in flight until refused when their batch left: counted then
            done = np.asarray(expired)
            secs = np.minimum(done.astype(np.intp), len(self.conc_d) - 1)
            np.add.at(self.rejected, secs, 1.0)
            np.add.at(self.hist, (secs, N_BUCKETS - 1), 1.0)
            self.conc_d += np.bincount(secs, minlength=len(self.conc_d))
            self.conc_dp += np.bincount(secs, weights=secs + 1.0 - done, minlength=len(self.conc_d))
        self.busy[t] = busy_sum / len(ready) if ready else 0.0
        self.max_batch_s[t] = longest
        self.inflight[t] = sum(p.backlog() + (p.last_c if p.free > t_end else 0) for p in self.pods)
        self.t = t + 1

    def run(self, controller: Controller, on_tick: Callable[[int], None] | None = None) -> Trace:
        """Run to the end under `controller`; returns the per-second trace."""
        view = SimView(self)
        d = self.duration
        desired = np.zeros(d, dtype=np.int32)
        ready_n = np.zeros(d, dtype=np.int32)
        pods_n = np.zeros(d, dtype=np.int32)
        window = np.zeros(d)
        max_batch = np.zeros(d, dtype=np.int32)
        variant = np.zeros(d, dtype=np.int32)
        vindex = {name: i for i, name in enumerate(self.variant_names)}
        decisions: list[tuple[int, RuntimeConfig, RuntimeConfig]] = []
        while self.t < d:
            t = self.t
            target = controller.act(t, view)
            if target is not None and target != self.config:
                decisions.append((t, self.config, target))
                self.apply(target)
            cfg = self.config
            desired[t] = cfg.replicas
            ready_n[t] = self.ready_count()
            pods_n[t] = len(self.pods)
            window[t] = cfg.batch_window_ms
            max_batch[t] = cfg.max_batch_size
            variant[t] = vindex[cfg.variant]
            self.step()
            if on_tick is not None:
                on_tick(t)
        # still queued, or dispatched but completing after the end
        unserved = sum(p.backlog() for p in self.pods) + int(self.completed[d:].sum())
        return Trace(
            desired=desired,
            ready=ready_n,
            pods=pods_n,
            window_ms=window,
            max_batch=max_batch,
            variant=variant,
            arrivals=self.arrivals_per_s[:d].copy(),
            rejected=self.rejected[:d].copy(),
            completed=self.completed[:d].copy(),
            ok=self.ok[:d].copy(),
            hist=self.hist[:d].copy(),
            busy=self.busy[:d].copy(),
            inflight=self.inflight[:d].copy(),
            served_accuracy=self.acc_sum[:d].copy(),
            served_known_accuracy=self.acc_n[:d].copy(),
            decisions=decisions,
            variant_names=self.variant_names,
            target_ms=self.target_ms,
            unserved=unserved,
        )
