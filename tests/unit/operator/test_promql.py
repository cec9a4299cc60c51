"""PromQL building: namespace always first and not overridable, values escaped, names checked."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from slo_operator.metrics.promql import build_queries, escape_label_value, selector
from slo_operator.policy import default_ranges
from slo_operator.spec import LatencySLOSpec
from slo_operator.types import Ranges

# A PromQL double-quoted string literal, with its escapes.
_MATCHER = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_selector(text: str) -> list[tuple[str, str]]:
    """Read a `{k="v",...}` selector back (the inverse of `selector`)."""
    assert text.startswith("{")
    assert text.endswith("}")
    body = text[1:-1]
    pairs = []
    pos = 0
    while pos < len(body):
        m = _MATCHER.match(body, pos)
        assert m is not None, body[pos:]
        value = re.sub(r"\\(.)", lambda e: {"n": "\n"}.get(e.group(1), e.group(1)), m.group(2))
        pairs.append((m.group(1), value))
        pos = m.end()
        if pos < len(body):
            assert body[pos] == ","
            pos += 1
    return pairs


def spec(**changes) -> LatencySLOSpec:
    raw = {"targetRef": {"name": "w"}, "objective": {"latencyMs": 150}}
    for path, value in changes.items():
        node = raw
        *parents, leaf = path.split("__")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return LatencySLOSpec.model_validate(raw)


@pytest.mark.parametrize(
    ("value", "escaped"),
    [
        ("plain", "plain"),
        ('say "hi"', 'say \\"hi\\"'),
        ("back\\slash", "back\\\\slash"),
        ("line\nbreak", "line\\nbreak"),
        ('"} or vector(1) #', '\\"} or vector(1) #'),
    ],
)
def test_label_values_are_escaped(value: str, escaped: str) -> None:
    assert escape_label_value(value) == escaped


def test_namespace_first_then_sorted_labels() -> None:
    assert selector("ml", {"job": "w", "app": 'a"b'}) == '{namespace="ml",app="a\\"b",job="w"}'


@pytest.mark.parametrize("labels", [{"namespace": "other"}])
def test_namespace_cannot_be_overridden(labels: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="must not set 'namespace'"):
        selector("ml", labels)


@pytest.mark.parametrize("name", ["__name__", "9lives", "a-b", "a b", ""])
def test_bad_label_names_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match="label name"):
        selector("ml", {name: "x"})


def test_a_namespace_is_required() -> None:
    with pytest.raises(ValueError, match="namespace is required"):
        selector("", {})


@given(
    namespace=st.from_regex(r"[a-z0-9]([-a-z0-9]{0,20}[a-z0-9])?", fullmatch=True),
    labels=st.dictionaries(
        st.from_regex(r"[a-zA-Z][a-zA-Z0-9_]{0,10}", fullmatch=True).filter(
            lambda k: k != "namespace"
        ),
        st.text(max_size=30),
        max_size=5,
    ),
)
def test_selector_round_trips_and_keeps_one_namespace(namespace: str, labels: dict) -> None:
    pairs = parse_selector(selector(namespace, labels))
    assert pairs[0] == ("namespace", namespace)
    assert [k for k, _ in pairs].count("namespace") == 1
    assert dict(pairs[1:]) == labels


def test_queries_for_a_spec() -> None:
    q = build_queries(spec(objective__windowSeconds=60, metrics__labels={"job": "w"}), "ml")
    sel = '{namespace="ml",job="w"}'
    assert q.latency == (
        "histogram_quantile(0.99, sum by (le) "
        f"(rate(inference_request_duration_seconds_bucket{sel}[60s])))"
    )
    assert q.request_rate == f"sum(rate(inference_request_duration_seconds_count{sel}[60s]))"
    assert q.recent_request_rate == (
        f"sum(rate(inference_request_duration_seconds_count{sel}[30s]))"
    )
    assert q.peak_request_rate == (
        f"max_over_time(sum(rate(inference_request_duration_seconds_count{sel}[30s]))[60s:15s])"
    )
    assert q.samples == f"sum(increase(inference_request_duration_seconds_count{sel}[60s]))"
    assert q.data_age == f"time() - max(timestamp(inference_request_duration_seconds_count{sel}))"
    assert q.batch_seconds_by_variant == (
        f"sum by (variant) (rate(inference_batch_duration_seconds_sum{sel}[60s]))"
        f" / sum by (variant) (rate(inference_batch_duration_seconds_count{sel}[60s]))"
    )
    assert q.mean_batch_size == (
        f"sum(rate(inference_batch_size_sum{sel}[60s]))"
        f" / sum(rate(inference_batch_size_count{sel}[60s]))"
    )


@pytest.mark.parametrize(("percentile", "text"), [(99, "0.99"), (99.9, "0.999"), (50, "0.5")])
def test_quantile_formatting(percentile: float, text: str) -> None:
    q = build_queries(spec(objective__percentile=percentile), "ml")
    assert q.latency.startswith(f"histogram_quantile({text}, ")


def test_every_query_is_scoped_to_the_namespace() -> None:
    q = build_queries(spec(metrics__histogram="my_latency_seconds"), "team-a")
    for expr in (
        q.latency,
        q.request_rate,
        q.recent_request_rate,
        q.peak_request_rate,
        q.samples,
        q.data_age,
        q.batch_seconds_by_variant,
        q.mean_batch_size,
    ):
        selectors = re.findall(r"\{[^}]*\}", expr)
        assert selectors
        assert all(s.startswith('{namespace="team-a"') for s in selectors), expr


def test_peak_range_is_bounded_by_the_window() -> None:
    short = spec(objective__windowSeconds=15)
    q = build_queries(short, "ml", ranges=Ranges(15, 15, 10, 5))
    assert "[10s]))[15s:5s])" in q.peak_request_rate
    q = build_queries(short, "ml")
    assert "[15s]))[15s:7s])" in q.peak_request_rate


def test_the_queries_measure_over_the_ranges_they_are_given() -> None:
    q = build_queries(spec(objective__windowSeconds=60), "ml", ranges=Ranges(60, 20, 12, 4))
    assert q.recent_request_rate.endswith("[20s]))")
    assert "[12s]))[60s:4s])" in q.peak_request_rate


def test_recent_range_is_an_interval_and_two_scrapes_bounded_by_the_window() -> None:
    # at the default 15 s scrape interval a rate needs 30 s to hold two scrapes
    assert default_ranges(spec(policy__intervalSeconds=5)).recent_s == 30
    assert default_ranges(spec(policy__intervalSeconds=60)).recent_s == 60  # window 60
    long_window = spec(policy__intervalSeconds=60, objective__windowSeconds=300)
    assert default_ranges(long_window).recent_s == 60
    assert default_ranges(spec(policy__intervalSeconds=15), scrape_interval_s=5).recent_s == 15
