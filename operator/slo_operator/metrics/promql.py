"""PromQL for one LatencySLO, always scoped to the LatencySLO's own namespace.

Every query carries `namespace="<the LatencySLO's namespace>"` as its first matcher, and the
spec's extra labels after it. A `namespace` key among the extra labels is refused here too (the
API already refuses it), so a namespace user can never read another namespace's series. Label
values are escaped as PromQL double-quoted strings; metric and label names are checked against
Prometheus's naming rules rather than escaped.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from slo_operator.policy.params import default_ranges
from slo_operator.spec import LABEL_NAME_PATTERN, METRIC_NAME_PATTERN, LatencySLOSpec
from slo_operator.types import Ranges

BATCH_DURATION = "inference_batch_duration_seconds"
"""Worker histogram of model service time per batch, label `variant` (docs/contracts.md)."""
BATCH_SIZE = "inference_batch_size"
"""Worker histogram of batch sizes (docs/contracts.md)."""

_METRIC_NAME = re.compile(METRIC_NAME_PATTERN)
_LABEL_NAME = re.compile(LABEL_NAME_PATTERN)
_REGEX_META = re.compile(r"([\\.^$|?*+()\[\]{}])")
NOT_REFUSED = 'outcome!="refused"'
"""The matcher of the requests the workers did not refuse (the worker's `outcome` label,
docs/contracts.md); a series without the label matches it."""


def escape_label_value(value: str) -> str:
    """`value` as the inside of a PromQL double-quoted string."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def selector(namespace: str, labels: Mapping[str, str] | None = None) -> str:
    """`{namespace="<ns>",k="v",...}`: the namespace first and always; extra labels sorted."""
    if not namespace:
        raise ValueError("a namespace is required: every query is scoped to one namespace")
    matchers = [f'namespace="{escape_label_value(namespace)}"']
    for name in sorted(labels or {}):
        if name == "namespace":
            raise ValueError(
                "metrics.labels must not set 'namespace': the LatencySLO's own namespace is "
                "always used"
            )
        if not _LABEL_NAME.match(name) or name.startswith("__"):
            raise ValueError(f"metrics.labels: {name!r} is not a valid label name")
        matchers.append(f'{name}="{escape_label_value(str(labels[name]))}"')  # type: ignore[index]
    return "{" + ",".join(matchers) + "}"


def _and(sel: str, matcher: str) -> str:
    """`sel` (a `{...}` selector) with one more matcher."""
    return sel[:-1] + "," + matcher + "}"


def _metric(name: str) -> str:
    if not _METRIC_NAME.match(name):
        raise ValueError(f"{name!r} is not a valid Prometheus metric name")
    return name


def _number(value: float) -> str:
    return format(value, ".10g")


@dataclass(frozen=True, slots=True)
class Queries:
    """The instant queries one observation needs."""

    latency: str
    """Latency at the objective's percentile, seconds."""
    served_latency: str
    """Latency at the objective's percentile over the requests not refused
    (`outcome!="refused"`, which a histogram without the label matches whole), seconds."""
    request_rate: str
    """Requests per second over the window."""
    recent_request_rate: str
    """Requests per second over a short recent range (`Ranges.recent_s`)."""
    peak_request_rate: str
    """The highest short-range request rate within the window (a subquery)."""
    samples: str
    """Requests counted in the window."""
    data_age: str
    """Seconds since the newest sample of the request counter."""
    batch_seconds_by_variant: str
    """Mean model service time of one batch, seconds, by `variant`."""
    mean_batch_size: str
    """Mean batch size over the window."""


def build_queries(
    spec: LatencySLOSpec,
    namespace: str,
    *,
    ranges: Ranges | None = None,
    labels: Mapping[str, str] | None = None,
) -> Queries:
    """All queries for `spec` in `namespace` (the namespace of the LatencySLO itself), over
    `ranges` (the controller's, `ControllerParams.ranges`; None: `default_ranges(spec)`),
    selecting `labels` (None: the spec's `metrics.labels`; `target_labels` adds the target
    Deployment's)."""
    r = ranges or default_ranges(spec)
    hist = _metric(spec.metrics.histogram)
    sel = selector(namespace, spec.metrics.labels if labels is None else labels)
    window = f"[{r.window_s}s]"
    q = _number(spec.quantile)
    batch = _metric(BATCH_DURATION)
    size = _metric(BATCH_SIZE)
    return Queries(
        latency=f"histogram_quantile({q}, sum by (le) (rate({hist}_bucket{sel}{window})))",
        served_latency=(
            f"histogram_quantile({q}, sum by (le) "
            f"(rate({hist}_bucket{_and(sel, NOT_REFUSED)}{window})))"
        ),
        request_rate=f"sum(rate({hist}_count{sel}{window}))",
        recent_request_rate=f"sum(rate({hist}_count{sel}[{r.recent_s}s]))",
        peak_request_rate=(
            f"max_over_time(sum(rate({hist}_count{sel}[{r.peak_s}s]))"
            f"{window[:-1]}:{r.peak_step_s}s])"
        ),
        samples=f"sum(increase({hist}_count{sel}{window}))",
        data_age=f"time() - max(timestamp({hist}_count{sel}))",
        batch_seconds_by_variant=(
            f"sum by (variant) (rate({batch}_sum{sel}{window}))"
            f" / sum by (variant) (rate({batch}_count{sel}{window}))"
        ),
        mean_batch_size=(
            f"sum(rate({size}_sum{sel}{window})) / sum(rate({size}_count{sel}{window}))"
        ),
    )


# ------------------------------------------------------------------ one Deployment's series

DEFAULT_TARGET_LABEL = "deployment"
"""The label naming a series' Deployment: the chart's PodMonitor attaches it (the owning
ReplicaSet's name less its pod-template hash, docs/install.md)."""


def target_labels(
    spec: LatencySLOSpec, deployment: str, target_label: str | None
) -> dict[str, str]:
    """The spec's extra labels plus `<target_label>="<deployment>"` (the target Deployment's
    series), unless the spec sets that label itself (its value wins) or `target_label` is
    empty (no selection by Deployment: every series of the namespace)."""
    labels = dict(spec.metrics.labels or {})
    if target_label and target_label not in labels:
        labels[target_label] = deployment
    return labels


# ------------------------------------------------------------------ batched queries


def _alternatives(values: Iterable[str]) -> str:
    """A PromQL regex matching exactly `values` (Prometheus anchors regex matchers)."""
    return escape_label_value("|".join(_REGEX_META.sub(r"\\\1", v) for v in sorted(set(values))))


def _one_of(label: str, values: list[str]) -> str:
    """`label="v"` for one value, else `label=~"v1|v2|..."`."""
    if len(values) == 1:
        return f'{label}="{escape_label_value(values[0])}"'
    return f'{label}=~"{_alternatives(values)}"'


def batched_selector(
    namespaces: Iterable[str],
    labels: Mapping[str, str] | None,
    target_label: str | None,
    targets: Iterable[str],
) -> str:
    """`{namespace=~"a|b",k="v",...,deployment=~"x|y"}`: the namespaces of a batch, the group's
    shared extra labels, and (when `target_label`) the batch's target values."""
    names = sorted(set(namespaces))
    if not names or not all(names):
        raise ValueError("a batched query needs at least one namespace, each named")
    inner = selector(names[0], labels)[1:-1]
    rest = inner.split(",", 1)[1] if "," in inner else ""
    matchers = [_one_of("namespace", names)]
    if rest:
        matchers.append(rest)
    if target_label:
        if not _LABEL_NAME.match(target_label) or target_label.startswith("__"):
            raise ValueError(f"{target_label!r} is not a valid label name")
        values = sorted(set(targets))
        if not values:
            raise ValueError("a batched query by target needs at least one target")
        matchers.append(_one_of(target_label, values))
    return "{" + ",".join(matchers) + "}"


def build_batched_queries(
    *,
    histogram: str,
    quantile: float,
    ranges: Ranges,
    namespaces: Iterable[str],
    labels: Mapping[str, str] | None,
    target_label: str | None,
    targets: Iterable[str],
) -> Queries:
    """The queries of `build_queries` for a whole batch of LatencySLOs that share histogram,
    percentile, ranges and extra labels: each aggregates `by (namespace, <target_label>)`
    instead of over everything, so one answer holds every target's figures (split by those
    labels). Per series group the figure is the one `build_queries` gives for that target
    alone: the same functions over the same series."""
    by = "namespace" + (f",{target_label}" if target_label else "")
    hist = _metric(histogram)
    sel = batched_selector(namespaces, labels, target_label, targets)
    r = ranges
    window = f"[{r.window_s}s]"
    q = _number(quantile)
    batch = _metric(BATCH_DURATION)
    size = _metric(BATCH_SIZE)
    return Queries(
        latency=f"histogram_quantile({q}, sum by (le,{by}) (rate({hist}_bucket{sel}{window})))",
        served_latency=(
            f"histogram_quantile({q}, sum by (le,{by}) "
            f"(rate({hist}_bucket{_and(sel, NOT_REFUSED)}{window})))"
        ),
        request_rate=f"sum by ({by}) (rate({hist}_count{sel}{window}))",
        recent_request_rate=f"sum by ({by}) (rate({hist}_count{sel}[{r.recent_s}s]))",
        peak_request_rate=(
            f"max_over_time(sum by ({by}) (rate({hist}_count{sel}[{r.peak_s}s]))"
            f"{window[:-1]}:{r.peak_step_s}s])"
        ),
        samples=f"sum by ({by}) (increase({hist}_count{sel}{window}))",
        data_age=f"time() - max by ({by}) (timestamp({hist}_count{sel}))",
        batch_seconds_by_variant=(
            f"sum by (variant,{by}) (rate({batch}_sum{sel}{window}))"
            f" / sum by (variant,{by}) (rate({batch}_count{sel}{window}))"
        ),
        mean_batch_size=(
            f"sum by ({by}) (rate({size}_sum{sel}{window}))"
            f" / sum by ({by}) (rate({size}_count{sel}{window}))"
        ),
    )
