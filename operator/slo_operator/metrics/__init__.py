"""Metrics sources behind the `MetricsSource` port (see `slo_operator.types`).

`PrometheusSource` reads the objective's latency from Prometheus (the operator's source); the
local demo's direct scrape of worker `/metrics` lives beside it.
"""

from slo_operator.metrics.prometheus import PrometheusSource
from slo_operator.metrics.promql import Queries, build_queries

__all__ = ["PrometheusSource", "Queries", "build_queries"]
