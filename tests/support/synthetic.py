"""A synthetic exporter: the latency histograms of many Deployments with known percentiles.

One HTTP `/metrics` endpoint serves, for every target `(namespace, deployment)`, the worker's
request histogram (`inference_request_duration_seconds`, the worker's real bucket edges) with
the target's `namespace` and `deployment` labels on each series, as the chart's PodMonitor
attaches them. Each target's latencies are uniform on [0, p99 / 0.99] at a constant request
rate, so its p99 is known (`histogram_quantile` interpolates linearly inside a bucket, which is
exact for a uniform distribution). A target may also refuse requests: those are a second
series with `outcome="refused"`, in the `+Inf` bucket only, as the worker counts them (the
main series has no `outcome` label, as a histogram other than the worker's may not).
Scrape it with `honor_labels: true` so the series keep their own `namespace`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from slo_contracts.buckets import LATENCY_BUCKETS_S

HISTOGRAM = "inference_request_duration_seconds"


@dataclass(frozen=True, slots=True)
class Target:
    namespace: str
    deployment: str
    p99_s: float
    rate: float = 20.0
    """Requests per second."""
    refused: float = 0.0
    """Requests refused per second besides: a second series, `outcome="refused"`, counted in
    the `+Inf` bucket only, as the worker counts them."""


def _cdf(edge: float, p99_s: float) -> float:
    return min(1.0, edge / (p99_s / 0.99))


class SyntheticExporter:
    """Serve every target's histogram on 127.0.0.1 (a daemon thread).

    The counters are cumulative: each scrape adds the requests since the previous one, spread
    by the target's latency distribution at that moment. `factor(namespace, deployment)`, when
    given, scales a target's p99 at each scrape (the scale benchmark makes latency fall as the
    operator adds replicas)."""

    def __init__(
        self,
        targets: Iterable[Target],
        port: int = 0,
        factor: Callable[[str, str], float] | None = None,
    ) -> None:
        self.targets = list(targets)
        self.factor = factor
        self.started = time.time()
        self._last = self.started
        self._buckets = [[0.0] * (len(LATENCY_BUCKETS_S) + 1) for _ in self.targets]
        self._sums = [0.0] * len(self.targets)
        self._refused = [0.0] * len(self.targets)
        self._lock = threading.Lock()
        self.scrapes = 0
        exporter = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = exporter.exposition().encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def p99_s(self, target: Target) -> float:
        scale = self.factor(target.namespace, target.deployment) if self.factor else 1.0
        return target.p99_s * scale

    def exposition(self) -> str:
        """Advance every counter to now and render the text exposition."""
        with self._lock:
            now = time.time()
            dt, self._last = now - self._last, now
            self.scrapes += 1
            lines = [f"# TYPE {HISTOGRAM} histogram"]
            for i, t in enumerate(self.targets):
                p99 = self.p99_s(t)
                added = t.rate * dt
                counts = self._buckets[i]
                for j, edge in enumerate(LATENCY_BUCKETS_S):
                    counts[j] += added * _cdf(edge, p99)
                counts[-1] += added
                self._sums[i] += added * p99 / 0.99 / 2
                labels = f'namespace="{t.namespace}",deployment="{t.deployment}"'
                for j, edge in enumerate(LATENCY_BUCKETS_S):
                    lines.append(f'{HISTOGRAM}_bucket{{{labels},le="{edge:g}"}} {counts[j]:.6f}')
                lines.append(f'{HISTOGRAM}_bucket{{{labels},le="+Inf"}} {counts[-1]:.6f}')
                lines.append(f"{HISTOGRAM}_count{{{labels}}} {counts[-1]:.6f}")
                lines.append(f"{HISTOGRAM}_sum{{{labels}}} {self._sums[i]:.6f}")
                if t.refused > 0:
                    self._refused[i] += t.refused * dt
                    n = self._refused[i]
                    refused = f'{labels},outcome="refused"'
                    for edge in LATENCY_BUCKETS_S:
                        lines.append(f'{HISTOGRAM}_bucket{{{refused},le="{edge:g}"}} 0')
                    lines.append(f'{HISTOGRAM}_bucket{{{refused},le="+Inf"}} {n:.6f}')
                    lines.append(f"{HISTOGRAM}_count{{{refused}}} {n:.6f}")
                    lines.append(f"{HISTOGRAM}_sum{{{refused}}} {n * 10.0:.6f}")
            return "\n".join(lines) + "\n"

    @property
    def address(self) -> str:
        host, port = self._server.server_address[:2]
        return f"{host}:{port}"

    def start(self) -> SyntheticExporter:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> SyntheticExporter:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def scrape_config(address: str, interval_s: float) -> dict[str, object]:
    """A Prometheus scrape job for the exporter that keeps its series' own labels."""
    interval = f"{max(1, round(interval_s * 1000))}ms"
    return {
        "job_name": "synthetic",
        "honor_labels": True,
        "scrape_interval": interval,
        "scrape_timeout": interval,
        "static_configs": [{"targets": [address]}],
    }
