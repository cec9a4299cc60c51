"""Predicted latency quantile of a replica set behind a dynamic batcher (pure).

Each replica runs the worker's batcher (`inference_worker.batcher`): one batch at a time; a
batch leaves when it holds `max_batch` requests or when its oldest request has waited
`window_ms` (at once if the model frees up after that); it runs `alpha + beta * b` ms (the
profile). The Kubernetes Service spreads requests at random over the ready replicas, so each
replica sees an independent Poisson stream of rate / replicas and the quantile of the whole
set is the quantile of one replica. The prediction has three parts:

1. the fluid batch size `b`: under load the batch holds what arrived while the previous one
   ran, `lam*S(b) + P(idle)`; at light load the oldest request waits the window and the
   batch holds it and what arrives meanwhile, `1 + lam*W`; so
   `b = min(B, max(lam*S(b) + P(idle), 1 + lam*W))`, solved by fixed-point iteration (a
   contraction while `lam*beta < 1`);
2. the wait of the tail request: it waits for the running batch to end or for its window,
   whichever is later, then for its own batch; batch sizes fluctuate like an AR(1) process
   (`b' ~ Poisson(lam*S(b))`, coefficient `lam*beta`), so the tail request sees a batch of
   size `b + z*sd`, not `b`;
3. the backlog when batches are often full: a bulk-service queue (Bailey 1954) whose queue
   length has a geometric tail with ratio 1/z, z > 1 the root of
   `exp(lam*S(B)*(z - 1)) = z**B`; a request that finds n queued ahead waits n/B batches.

It is an approximation; the controller multiplies it by a correction factor learned online
from observed vs predicted quantiles (`slo_operator.policy`), and tests compare it with the
discrete-event simulator.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

from slo_operator.types import VariantProfile

MAX_LOAD = 0.995
"""Above this share of a replica's maximum throughput the queue is treated as unstable."""

_TAIL_Z = 2.33  # one-sided normal quantile used for the batch-size fluctuation (99 %)


@dataclass(frozen=True, slots=True)
class Prediction:
    """What the model expects of one configuration at one arrival rate."""

    latency_ms: float
    """Predicted latency at the requested quantile, ms; infinity when the queue is unstable."""
    mean_batch: float
    """Fluid (mean) batch size."""
    load: float
    """Per-replica rate over the replica's maximum throughput (max_batch / S(max_batch))."""

    @property
    def stable(self) -> bool:
        return math.isfinite(self.latency_ms)


def max_throughput_rps(profile: VariantProfile, max_batch: int) -> float:
    """Requests per second one replica serves at most (full batches back to back)."""
    return 1000.0 * max_batch / profile.batch_ms(max_batch)


def _normal_sf(x: float) -> float:
    return 0.5 * math.erfc(x / math.sqrt(2.0))


def _bulk_root(arrivals_per_batch: float, max_batch: int) -> float:
    """The root z > 1 of exp(a*(z - 1)) = z**B (a < B), by Newton's method on its log."""
    a, big_b = arrivals_per_batch, float(max_batch)
    z = 1.0 + 2.0 * (big_b - a) / max(big_b, 1.0)  # above the root: f(z) > 0 beyond it
    for _ in range(60):
        f = a * (z - 1.0) - big_b * math.log(z)
        df = a - big_b / z
        if df <= 0:
            z *= 1.5
            continue
        step = f / df
        z_next = z - step
        if z_next <= 1.0:
            z_next = (z + 1.0) / 2.0
        if abs(z_next - z) < 1e-10:
            return z_next
        z = z_next
    return z


@functools.lru_cache(maxsize=4096)
def predict(
    profile: VariantProfile,
    rate_rps: float,
    replicas: int,
    window_ms: float,
    max_batch: int,
    quantile: float = 0.99,
) -> Prediction:
    """Predicted latency quantile of `replicas` replicas serving `rate_rps` together (pure, so
    memoized: a control step asks for the same configuration several times)."""
    if max_batch < 1:
        raise ValueError("max_batch must be >= 1")
    alpha, beta = profile.alpha_ms, profile.beta_ms
    big_b = max_batch
    window = max(0.0, float(window_ms))
    s_max = alpha + beta * big_b
    if rate_rps <= 0:
        return Prediction(latency_ms=window + alpha + beta, mean_batch=1.0, load=0.0)
    if replicas <= 0:
        return Prediction(latency_ms=math.inf, mean_batch=float(big_b), load=math.inf)
    lam = rate_rps / 1000.0 / replicas  # requests per ms reaching one replica
    load = lam * s_max / big_b
    if load >= MAX_LOAD:
        return Prediction(latency_ms=math.inf, mean_batch=float(big_b), load=load)

    # 1. fluid batch size: b = min(B, max(lam*S(b) + exp(-lam*S(b)), 1 + lam*W)); written
    # with comparisons instead of min/max/abs calls: the same floats, a prediction a third
    # cheaper (a decision computes about a hundred, docs/operator.md "Sizing")
    b, top, floor, exp = 1.0, float(big_b), 1.0 + lam * window, math.exp
    for _ in range(200):
        s = alpha + beta * b
        b_next = lam * s + exp(-lam * s)
        if b_next < floor:
            b_next = floor
        if b_next > top:
            b_next = top
        if -1e-9 < b_next - b < 1e-9:
            b = b_next
            break
        b = b_next
    s = alpha + beta * b

    # 2. wait of the tail request: the running batch or its own window, then its batch
    phi = min(lam * beta, 0.999)
    sd = math.sqrt(lam * max(s / (1.0 - phi * phi), window))
    b_tail = min(float(big_b), b + _TAIL_Z * sd)
    s_tail = alpha + beta * b_tail
    tail = 1.0 - quantile
    during_service = min(1.0, lam * s / b)  # share of requests that arrive while a batch runs
    residual = s_tail * max(0.0, 1.0 - tail / during_service) if during_service > tail else 0.0
    # the window is cut short when the batch fills before it ends
    fill = (big_b - 1.0) / lam
    p = max(min(window, fill), residual) + s_tail

    # 3. backlog when batches are often full
    p_full = _normal_sf((big_b - b) / sd) if sd > 0 else float(b >= big_b)
    if p_full > tail:
        z = _bulk_root(lam * s_max, big_b)
        if z > 1.0:
            ahead = math.log(p_full / tail) / math.log(z)
            p += ahead * s_max / big_b
    return Prediction(latency_ms=p, mean_batch=b, load=load)
