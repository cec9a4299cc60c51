"""A synthetic exporter: the latency histograms of many Deployments with known percentiles.

One HTTP `/metrics` endpoint serves, for every target `(namespace, deployment)`, the worker's
request histogram (`inference_request_duration_seconds`, the worker's real bucket edges) with
the target's `namespace` and `deployment` labels on each series, as the chart's PodMonitor
attaches them. Each target's latencies are uniform on [0, p99 / 0.99] at a constant request
rate, so its p99 is known (`histogram_quantile` interpolates linearly inside a bucket, which is
exact for a uniform distribution) and its counters grow linearly from the exporter's start.
Scrape it with `honor_labels: true` so the series keep their own `namespace`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
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


def exposition(targets: Iterable[Target], elapsed_s: float) -> str:
    """The text exposition of every target's histogram `elapsed_s` after the start."""
    lines = [f"# TYPE {HISTOGRAM} histogram"]
    for t in targets:
        top = t.p99_s / 0.99
        total = t.rate * elapsed_s
        labels = f'namespace="{t.namespace}",deployment="{t.deployment}"'
        for edge in LATENCY_BUCKETS_S:
            share = min(1.0, edge / top)
            lines.append(f'{HISTOGRAM}_bucket{{{labels},le="{edge:g}"}} {total * share:.6f}')
        lines.append(f'{HISTOGRAM}_bucket{{{labels},le="+Inf"}} {total:.6f}')
        lines.append(f"{HISTOGRAM}_count{{{labels}}} {total:.6f}")
        lines.append(f"{HISTOGRAM}_sum{{{labels}}} {total * top / 2:.6f}")
    return "\n".join(lines) + "\n"


class SyntheticExporter:
    """Serve `exposition(targets, now - start)` on 127.0.0.1 (a daemon thread)."""

    def __init__(self, targets: Iterable[Target], port: int = 0) -> None:
        self.targets = list(targets)
        self.started = time.time()
        self.scrapes = 0
        exporter = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = exposition(exporter.targets, time.time() - exporter.started).encode()
                exporter.scrapes += 1
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

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
