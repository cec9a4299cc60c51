"""The simulator reproduces the worker's batcher and the cluster's delays exactly."""

from __future__ import annotations

import numpy as np
import pytest

from slo_contracts.buckets import LATENCY_BUCKETS_MS
from slo_operator.sim.engine import SimSettings, Simulation
from slo_operator.types import RuntimeConfig
from tests.unit.sim.helpers import FLAT, Hold, batches, poisson, served_and_refused


@pytest.mark.parametrize(
    ("arrivals", "window", "max_batch", "expected"),
    [
        pytest.param([0, 1, 2], 5, 32, [(3, 15.0)], id="window-from-the-oldest-request"),
        pytest.param([0, 1, 2], 50, 2, [(2, 11.0), (1, 62.0)], id="full-batch-leaves-at-once"),
        pytest.param([0, 1, 2, 3], 0, 32, [(1, 10.0), (3, 20.0)], id="window-0-sends-the-queue"),
        pytest.param([0, 6], 5, 32, [(1, 15.0), (1, 25.0)], id="waited-window-leaves-when-free"),
        pytest.param([0, 100], 5, 32, [(1, 15.0), (1, 115.0)], id="idle-model-waits-window"),
        pytest.param(
            list(range(0, 70)),
            0,
            32,
            [(1, 10.0), *[(10, 20.0 + 10 * k) for k in range(6)], (9, 80.0)],
            id="greedy-under-load",
        ),
    ],
)
def test_batcher_semantics(
    arrivals: list[float], window: int, max_batch: int, expected: list[tuple[int, float]]
) -> None:
    got, rejected = batches(arrivals, window, max_batch)
    assert got == expected
    assert rejected == []


@pytest.mark.parametrize(
    ("arrivals", "window", "max_batch", "wait", "expected", "refused_at"),
    [
        pytest.param([0, 1, 2, 3, 4], 0, 1, 15, [(1, 10.0), (1, 20.0)], [20.0] * 3,
                     id="over-the-wait-when-the-batch-leaves"),
        pytest.param([0, 1, 2, 3, 4], 0, 32, 15, [(1, 10.0), (4, 20.0)], [],
                     id="within-the-wait"),
        pytest.param([0, 1, 2, 3, 4], 0, 1, 0, [(1, 10.0 * k) for k in range(1, 6)], [],
                     id="no-limit-by-default"),
        pytest.param([0, 1, 30], 20, 32, 5, [(2, 30.0), (1, 60.0)], [],
                     id="the-window-is-no-wait-over-the-limit"),
        pytest.param([0, 1, 2, 3], 5, 1, 10, [(1, 10.0), (1, 20.0)], [20.0, 20.0],
                     id="the-limit-is-beyond-the-window"),
        pytest.param([0, 1, 2, 50], 0, 1, 5, [(1, 10.0), (1, 60.0)], [10.0, 10.0],
                     id="refused-then-the-next-arrival-served"),
    ],
)  # fmt: skip
def test_the_queue_wait_limit_refuses_as_the_worker_does(
    arrivals: list[float],
    window: int,
    max_batch: int,
    wait: float,
    expected: list[tuple[int, float]],
    refused_at: list[float],
) -> None:
    """The worker's `--max-queue-wait-ms` (`inference_worker.batcher`): a request that has
    waited longer than the batch window plus the limit when its batch leaves is refused
    then, unrun; the batch is formed of the others."""
    got, rejected, expired = served_and_refused(arrivals, window, max_batch, queue_wait_ms=wait)
    assert got == expected
    assert rejected == []
    assert expired == refused_at


def test_requests_refused_over_the_queue_wait_count_when_refused() -> None:
    """A burst of 50 at 1 s on one replica, 10 ms per batch of one, 45 ms of queue wait:
    five are served within 50 ms, the rest are refused at once and counted as refused, in
    the histogram's `+Inf` bucket, in the second they were answered."""
    arrivals = np.full(50, 1.0)
    sim = _run(RuntimeConfig(1, 0, 1, "full"), arrivals, 5, queue_wait_ms=45.0)
    trace = sim.run(Hold())
    assert trace.completed.sum() == 5
    assert trace.ok.sum() == 5
    assert trace.rejected.sum() == 45
    assert trace.rejected[1] == 45
    assert trace.hist[1, -1] == 45


def test_the_view_reads_the_served_quantile_apart_from_the_refused() -> None:
    """The same burst, observed as Prometheus shows the worker's histogram: the p99 of every
    request sits at the top edge (45 of 50 refused, in `+Inf`), the p99 of the requests
    not refused (`outcome!="refused"`) is that of the five served, within 50 ms; a window
    without refusals gives the same quantile twice."""
    arrivals = np.concatenate([np.full(50, 1.0), 10.0 + np.arange(20) * 0.1])
    sim = _run(RuntimeConfig(1, 0, 1, "full"), arrivals, 16, queue_wait_ms=45.0)
    seen, _ = _watch(sim, window_s=5)
    burst = seen[5]  # the window [0, 5) of the last scrape
    assert burst.latency_ms == pytest.approx(LATENCY_BUCKETS_MS[-1])
    # the five took 10-50 ms; 50 ms lands in the (50, 60] bucket
    assert burst.served_latency_ms is not None
    assert burst.served_latency_ms <= 60.0
    assert burst.model_latency_ms == burst.served_latency_ms
    calm = seen[15]  # the window [10, 15): 20 requests, one at a time, none refused
    assert calm.served_latency_ms == pytest.approx(calm.latency_ms)
    assert calm.latency_ms is not None
    assert calm.latency_ms <= 20.0


def test_a_window_with_nothing_served_has_no_served_quantile() -> None:
    arrivals = np.full(30, 1.0)
    sim = _run(RuntimeConfig(1, 0, 1, "full"), arrivals, 7, queue_limit=0)
    seen, trace = _watch(sim, window_s=5)
    assert trace.completed.sum() == 0
    assert trace.rejected.sum() == 30
    obs = seen[5]
    assert obs.latency_ms == pytest.approx(LATENCY_BUCKETS_MS[-1])
    assert obs.served_latency_ms is not None
    assert np.isnan(obs.served_latency_ms)
    assert obs.model_latency_ms == obs.latency_ms  # nothing to read apart: as before


def test_a_full_queue_rejects() -> None:
    got, rejected = batches([0, 1, 2, 3, 4], window_ms=0, max_batch=1, queue_limit=2)
    assert rejected == [3.0, 4.0]
    assert [c for c, _ in got] == [1, 1, 1]


def _run(config: RuntimeConfig, arrivals: np.ndarray, seconds: int, **settings: object):  # type: ignore[no-untyped-def]
    s = SimSettings(**{"service_cv": 0.0, **settings})  # type: ignore[arg-type]
    return Simulation(arrivals, np.random.default_rng(1).random(len(arrivals)), seconds, FLAT,
                      config, 100.0, s)  # fmt: skip


def _watch(sim: Simulation, window_s: int, recent_s: int | None = None):  # type: ignore[no-untyped-def]
    """Run `sim` with a controller that changes nothing and observes every tick (p99 over
    `window_s`): the observations by tick, and the trace."""
    seen: dict[int, object] = {}

    class Watch:
        name = "watch"

        def act(self, t: int, view):  # type: ignore[no-untyped-def]
            seen[t] = view.observe(window_s, 0.99, recent_s=recent_s)

    return seen, sim.run(Watch())


def test_new_replicas_are_ready_after_startup_and_cost_meanwhile() -> None:
    sim = _run(RuntimeConfig(1, 0, 32, "full"), poisson(50, 60), 60, startup_s=30)

    class ScaleAt5:
        name = "up"

        def act(self, t: int, view: object) -> RuntimeConfig | None:
            return RuntimeConfig(3, 0, 32, "full") if t == 5 else None

    trace = sim.run(ScaleAt5())
    assert list(trace.ready[:5]) == [1] * 5
    assert list(trace.ready[5:35]) == [1] * 30
    assert list(trace.ready[35:]) == [3] * 25
    assert list(trace.pods[5:]) == [3] * 55  # starting pods cost replica-seconds
    assert trace.pods.sum() == 5 + 3 * 55


def test_variant_switch_takes_switch_s_and_drops_nothing() -> None:
    arrivals = poisson(200, 20, seed=2)
    sim = _run(RuntimeConfig(2, 0, 32, "full"), arrivals, 20, switch_s=3)

    class SwitchAt5:
        name = "switch"

        def act(self, t: int, view: object) -> RuntimeConfig | None:
            return RuntimeConfig(2, 0, 32, "quantized") if t == 5 else None

    trace = sim.run(SwitchAt5())
    per_s = trace.served_accuracy / np.maximum(trace.served_known_accuracy, 1)
    assert np.allclose(per_s[1:8], 0.9)  # still full until 5 + 3
    assert np.allclose(per_s[9:19], 0.8)
    assert trace.completed.sum() + trace.unserved == len(arrivals)
    assert trace.rejected.sum() == 0


def test_scale_down_drains_and_loses_nothing() -> None:
    arrivals = poisson(300, 30, seed=3)
    sim = _run(RuntimeConfig(3, 0, 32, "full"), arrivals, 30)

    class DownAt10:
        name = "down"

        def act(self, t: int, view: object) -> RuntimeConfig | None:
            return RuntimeConfig(1, 0, 32, "full") if t == 10 else None

    trace = sim.run(DownAt10())
    assert trace.ready[11] == 1
    assert trace.completed.sum() + trace.unserved + trace.rejected.sum() == len(arrivals)
    assert trace.rejected.sum() == 0


def test_observation_shows_only_scraped_data() -> None:
    arrivals = np.arange(0, 30, 0.01)  # 100 req/s
    sim = _run(RuntimeConfig(1, 0, 32, "full"), arrivals, 30, scrape_s=5)
    seen, _ = _watch(sim, 60, recent_s=5)
    o12 = seen[12]
    assert o12.age_seconds == 2  # data up to the scrape at 10 s
    assert o12.request_rate == pytest.approx(100.0, rel=0.02)
    assert o12.samples == pytest.approx(1000, abs=2)  # completions in [0, 10)
    assert 10.0 <= o12.latency_ms <= 12.0  # a lone 10 ms batch, in the 10-12 ms bucket
    assert seen[0].latency_ms is None  # nothing scraped yet: no data, not zero


def test_observation_carries_the_batch_times_the_workers_measure() -> None:
    """Per variant that served in the window, the mean batch time, and one mean batch size
    for all (the workers' histogram has no variant label): what the operator's profile
    factors are read from. Here 10 ms `full` batches, then 5 ms `quantized` ones."""
    arrivals = np.arange(0, 40, 0.01)  # 100 req/s: one request per batch
    sim = _run(RuntimeConfig(1, 0, 32, "full"), arrivals, 40, scrape_s=5, switch_s=0)
    seen: dict[int, object] = {}

    class SwitchAt20:
        name = "switch"

        def act(self, t: int, view):  # type: ignore[no-untyped-def]
            seen[t] = view.observe(10, 0.99)
            return RuntimeConfig(1, 0, 32, "quantized") if t == 20 else None

    sim.run(SwitchAt20())
    alone = seen[15].batch  # [5, 15): full alone
    assert dict(alone.batch_ms_by_variant) == {"full": pytest.approx(10.0)}
    assert alone.mean_batch_size == pytest.approx(1.0)
    both = seen[25].batch  # [15, 25): full, then quantized from 20 s
    assert dict(both.batch_ms_by_variant) == {
        "full": pytest.approx(10.0),
        "quantized": pytest.approx(5.0),
    }
    assert seen[0].batch is None  # nothing scraped yet


def test_same_inputs_same_trace() -> None:
    arrivals = poisson(800, 40, seed=4)
    a = _run(RuntimeConfig(2, 0, 32, "full"), arrivals, 40, service_cv=0.05).run(Hold())
    b = _run(RuntimeConfig(2, 0, 32, "full"), arrivals, 40, service_cv=0.05).run(Hold())
    assert np.array_equal(a.hist, b.hist)
    assert np.array_equal(a.ok, b.ok)


def test_overload_is_visible() -> None:
    arrivals = poisson(5000, 20, seed=5)  # 10 ms batches of <= 32: capacity 3200 req/s
    trace = _run(RuntimeConfig(1, 0, 32, "full"), arrivals, 20).run(Hold())
    assert trace.rejected.sum() > 0.2 * len(arrivals)
    assert trace.ok.sum() < 0.8 * len(arrivals)


def test_refused_requests_reach_the_histogram_as_the_worker_observes_them() -> None:
    """The worker observes a refused request (503, queue full) in the `+Inf` bucket
    (`inference_worker.metrics.NOT_SERVED_SECONDS`): a quantile over the histogram sees an
    overload that refuses requests while the served ones stay fast. One replica, 10 ms per
    batch of one, a queue of 2: a burst of 50 requests at once is mostly refused, the three
    it serves take at most 30 ms; the view's p99 is the histogram's top edge."""
    arrivals = np.concatenate([np.full(50, 1.0), np.arange(2.0, 10.0, 0.5)])
    sim = _run(RuntimeConfig(1, 0, 1, "full"), arrivals, 10, scrape_s=5, queue_limit=2)
    seen, trace = _watch(sim, 10)
    assert trace.rejected.sum() >= 45
    o = seen[9]  # data up to the scrape at 5 s
    assert o.samples == pytest.approx(56, abs=1)  # all that arrived by 5 s, refused or served
    assert o.latency_ms == LATENCY_BUCKETS_MS[-1]
