"""Batched observation: one set of queries per group of LatencySLOs, not per LatencySLO.

`BatchedPrometheus` is the operator's metrics source. LatencySLOs that share histogram,
percentile, ranges and extra labels form one *group*; the group's nine figures are asked once
(`build_batched_queries`: `sum by (namespace, deployment)` over every member's namespace and
Deployment), the answer is parsed once, indexed by `(namespace, deployment)`, and each member's
`BatchedSource.observe` takes its own slice through the same `parse_observation` a single
LatencySLO's observation goes through. Within a group, a series group's figure is the one the
per-object queries give for that target alone (tests/integration/operator/test_batched_*).

Sharing in time: a group is evaluated at instants on a grid of `share_s` seconds
(`floor(now / share_s) * share_s`; at most half the member's `intervalSeconds`); every member
whose step falls in the same cell reads that
one evaluation, so a group costs at most `ceil(interval / share_s) + 1` evaluations per
interval whatever its size. The figures are those of the cell's instant (at most `share_s`
before the step); the data age is counted up to the step's own instant. `share_s = 0`
evaluates at each step's instant (no sharing in time, only between steps at the same instant).

Series selection: each member selects its target Deployment's series with
`<target_label>="<targetRef.name>"` (`deployment`, attached by the chart's PodMonitor) unless
its `metrics.labels` sets that label (its value wins); an empty `target_label` selects the
whole namespace, as before the label existed.

Isolation: a member's namespace is a matcher of the group's queries and its slice is keyed by
the `namespace` label of each series, so a member reads only series of its own namespace. A
spec whose query cannot be built fails alone; a failed group query fails that figure for the
group's members (as it would have for each of them alone).
"""

from __future__ import annotations

import asyncio
import math
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from slo_operator.errors import QueryError
from slo_operator.metrics.client import PrometheusClient
from slo_operator.metrics.prometheus import (
    Sample,
    _in_order,
    batch_measurement,
    parse_observation,
    parse_vector,
)
from slo_operator.metrics.promql import (
    DEFAULT_TARGET_LABEL,
    build_batched_queries,
    build_queries,
    target_labels,
)
from slo_operator.policy.params import default_ranges
from slo_operator.spec import LatencySLOSpec
from slo_operator.types import Fault, Observation, Ranges

FIGURES = (
    "latency",
    "rate",
    "samples",
    "age",
    "recent",
    "peak",
    "by_variant",
    "size",
    "served",
)
"""The figures of one evaluation, in `_in_order`'s order."""

Slot = tuple[str, str | None]
"""(namespace, target label value) of a series group."""


@dataclass(frozen=True, slots=True)
class GroupKey:
    """What the members of one group share."""

    histogram: str
    quantile: float
    ranges: Ranges
    labels: tuple[tuple[str, str], ...]


@dataclass(slots=True)
class Evaluation:
    """One evaluation of a group at `at`: every figure indexed by slot, or the query's error."""

    at: float
    slots: frozenset[Slot]
    figures: dict[str, dict[Slot, list[Sample]] | QueryError] = field(default_factory=dict)


class BatchedPrometheus:
    """Groups the operator's LatencySLOs and evaluates each group once per cell (module docs)."""

    def __init__(
        self,
        client: PrometheusClient,
        *,
        max_age_s: float = 60.0,
        share_s: float = 7.5,
        target_label: str | None = DEFAULT_TARGET_LABEL,
    ) -> None:
        self.client = client
        self.max_age_s = max_age_s
        self.share_s = share_s
        self.target_label = target_label or None
        self._members: dict[GroupKey, dict[tuple[str, str], Slot]] = defaultdict(dict)
        self._member_group: dict[tuple[str, str], GroupKey] = {}
        self._evaluations: dict[tuple[GroupKey, float], asyncio.Task[Evaluation]] = {}
        self.join_delay_s = 0.5
        """A member missing from its cell's evaluation (it joined after it was asked) waits
        this long for others before the group is asked again (start-up, new objects)."""
        self.evaluations = 0
        """Group evaluations started so far (each is `len(FIGURES)` queries)."""

    def source(
        self,
        namespace: str,
        name: str,
        deployment: str,
        on_error: Callable[[str], None] | None = None,
    ) -> BatchedSource:
        """The `MetricsSource` of LatencySLO `namespace/name` targeting `deployment`."""
        return BatchedSource(self, namespace, name, deployment, on_error)

    async def aclose(self) -> None:
        for task in self._evaluations.values():
            task.cancel()
        self._evaluations.clear()
        await self.client.aclose()

    # ------------------------------------------------------------------ membership

    def join(self, member: tuple[str, str], key: GroupKey, slot: Slot) -> None:
        old = self._member_group.get(member)
        if old is not None and old != key:
            self.leave(member)
        self._members[key][member] = slot
        self._member_group[member] = key

    def leave(self, member: tuple[str, str]) -> None:
        key = self._member_group.pop(member, None)
        if key is not None:
            group = self._members.get(key)
            if group is not None:
                group.pop(member, None)
                if not group:
                    del self._members[key]

    # ------------------------------------------------------------------ evaluation

    def instant(self, now: float, share_s: float | None = None) -> float:
        share = self.share_s if share_s is None else share_s
        if share <= 0:
            return now
        return math.floor(now / share) * share

    async def evaluation(
        self, key: GroupKey, now: float, slot: Slot, share_s: float | None = None
    ) -> Evaluation:
        """The group's evaluation for `now`'s cell, holding `slot` (started if needed)."""
        at = self.instant(now, share_s)
        task = self._evaluations.get((key, at))
        if task is not None and task.done() and slot not in task.result().slots:
            task = None  # a member that joined after this cell was asked: ask again
        elif task is not None and not task.done():
            evaluation = await asyncio.shield(task)
            if slot in evaluation.slots:
                return evaluation
            task = self._evaluations.get((key, at))
            if task is not None and task.done() and slot not in task.result().slots:
                task = None
        if task is None:
            again = (key, at) in self._evaluations  # a late joiner: gather the others too
            delay = self.join_delay_s if again else 0.0
            task = asyncio.ensure_future(self._evaluate(key, at, slot, delay))
            self._evaluations[(key, at)] = task
            self._forget_before(at)
        return await asyncio.shield(task)

    def _forget_before(self, at: float) -> None:
        horizon = at - 2 * max(self.share_s, 1.0)
        for cell in [c for c in self._evaluations if c[1] < horizon]:
            if self._evaluations[cell].done():
                del self._evaluations[cell]

    async def _evaluate(self, key: GroupKey, at: float, slot: Slot, delay: float) -> Evaluation:
        if delay:
            await asyncio.sleep(delay)
        # The members are read when the task first runs: every member that joined in the
        # meantime (steps due at the same instant) is in this evaluation.
        slots = frozenset(self._members.get(key, {}).values()) | {slot}
        self.evaluations += 1
        evaluation = Evaluation(at, slots)
        queries = build_batched_queries(
            histogram=key.histogram,
            quantile=key.quantile,
            ranges=key.ranges,
            namespaces=[ns for ns, _ in slots],
            labels=dict(key.labels),
            target_label=self.target_label,
            targets=[t for _, t in slots if t is not None],
        )

        async def one(expr: str) -> list[Sample] | QueryError:
            try:
                return parse_vector(await self.client.query(expr, at, key=key))
            except QueryError as exc:
                return exc

        outcomes = await asyncio.gather(*(one(expr) for expr in _in_order(queries)))
        for name, outcome in zip(FIGURES, outcomes, strict=True):
            evaluation.figures[name] = (
                outcome if isinstance(outcome, QueryError) else self._index(outcome)
            )
        return evaluation

    def _index(self, samples: list[Sample]) -> dict[Slot, list[Sample]]:
        indexed: dict[Slot, list[Sample]] = defaultdict(list)
        for sample in samples:
            namespace = sample.labels.get("namespace")
            if namespace is None:
                continue
            target = sample.labels.get(self.target_label) if self.target_label else None
            indexed[(namespace, target)].append(sample)
        return indexed


class BatchedSource:
    """One LatencySLO's `MetricsSource`: its slice of its group's evaluations."""

    def __init__(
        self,
        hub: BatchedPrometheus,
        namespace: str,
        name: str,
        deployment: str,
        on_error: Callable[[str], None] | None,
    ) -> None:
        self.hub = hub
        self.member = (namespace, name)
        self.deployment = deployment
        self.on_error = on_error

    def close(self) -> None:
        self.hub.leave(self.member)

    async def observe(
        self,
        spec: LatencySLOSpec,
        namespace: str,
        ready_replicas: int,
        now: float,
        ranges: Ranges | None = None,
    ) -> Observation:
        hub = self.hub
        r = ranges or default_ranges(spec)
        try:
            labels = target_labels(spec, self.deployment, hub.target_label)
            build_queries(spec, namespace, ranges=r, labels=labels)  # this spec's own checks
        except ValueError as exc:
            why = f"cannot build the query: {exc}"
            return Observation.failed(now, ready_replicas, why, Fault.NO_DATA, ranges)
        target = labels.pop(hub.target_label) if hub.target_label else None
        slot: Slot = (namespace, target)
        key = GroupKey(spec.metrics.histogram, spec.quantile, r, tuple(sorted(labels.items())))
        hub.join(self.member, key, slot)
        # never more than half the object's own interval: a failure shows at the next step
        share = min(hub.share_s, spec.policy.interval_seconds / 2)
        evaluation = await hub.evaluation(key, now, slot, share)
        outcome = {name: _slice(evaluation.figures[name], slot) for name in FIGURES}
        age = outcome["age"]
        if isinstance(age, list):  # the age at the step's own instant
            age = [Sample(s.labels, s.value + (now - evaluation.at)) for s in age]
        where = f"for {spec.metrics.histogram} in namespace {namespace}"
        if target is not None:
            where += f" with {hub.target_label}={target!r}"
        observation = parse_observation(
            now=now,
            ready_replicas=ready_replicas,
            latency=outcome["latency"],
            rate=outcome["rate"],
            samples=outcome["samples"],
            age=age,
            recent_rate=outcome["recent"],
            peak_rate=outcome["peak"],
            batch=batch_measurement(outcome["by_variant"], outcome["size"]),
            ranges=ranges,
            max_age_s=hub.max_age_s,
            where=where,
            served_latency=outcome["served"],
        )
        if self.on_error is not None and any(
            isinstance(outcome[n], QueryError) for n in ("latency", "rate", "samples", "age")
        ):
            self.on_error(observation.error or "query failed")
        return observation


def _slice(
    figure: Mapping[Slot, list[Sample]] | QueryError, slot: Slot
) -> list[Sample] | QueryError:
    if isinstance(figure, QueryError):
        return figure
    return list(figure.get(slot, ()))
