"""PromQL's `histogram_quantile`, for cumulative bucket counts (pure, no numpy).

The simulator shows the controller exactly what Prometheus would: the quantile interpolated
linearly inside the bucket that holds the rank, the lower bound of the first bucket taken as
0, and the highest finite edge returned when the rank falls in the +Inf bucket.
"""

from __future__ import annotations

import math
from collections.abc import Sequence


def histogram_quantile(q: float, edges: Sequence[float], counts: Sequence[float]) -> float:
    """The q-quantile of a histogram, as PromQL computes it.

    `edges` are the finite upper bucket bounds, ascending; `counts` are the NON-cumulative
    counts of each bucket followed by the +Inf bucket (len(edges) + 1 entries). Returns NaN
    when the histogram is empty (PromQL's answer with no traffic).
    """
    if len(counts) != len(edges) + 1:
        raise ValueError(f"counts needs {len(edges) + 1} entries (one per edge, then +Inf)")
    total = float(sum(counts))
    if total <= 0 or not 0 <= q <= 1:
        return math.nan
    rank = q * total
    cumulative = 0.0
    for i, count in enumerate(counts):
        previous = cumulative
        cumulative += count
        if cumulative >= rank and count > 0:
            if i == len(edges):  # the +Inf bucket
                return float(edges[-1])
            lower = 0.0 if i == 0 else float(edges[i - 1])
            upper = float(edges[i])
            return lower + (upper - lower) * (rank - previous) / count
    return float(edges[-1])
