"""Performance model (pure): predicted latency quantile of a batched replica set."""

from slo_operator.model.histogram import histogram_quantile
from slo_operator.model.profiles import REFERENCE_PROFILES
from slo_operator.model.queueing import Prediction, max_throughput_rps, predict

__all__ = [
    "REFERENCE_PROFILES",
    "Prediction",
    "histogram_quantile",
    "max_throughput_rps",
    "predict",
]
