"""CUDA graphs of a variant's forward pass, one per (batch size, sequence length) bucket.

On a GPU a small batch's forward is dominated by kernel launches from Python (the demo
family's `full`: 1.73 ms eager for one text on an H200, 0.40 ms replaying a CUDA graph;
`bench/results/gpu_worker_h200.json`). A
graph needs static shapes, so a batch is padded up to the next bucket: batch sizes 1, 2, 4,
8, 16, 32, ... up to the max batch size, sequence lengths 16, 32, 64, ... up to the
tokenizer's maximum. Padded positions have attention mask 0, as the tokenizer's own padding
does, so a model that respects its attention mask gives the same logits for the real rows
(padded rows get one unmasked token, so nothing divides by zero, and are dropped). A batch
outside every bucket runs eagerly, and so does a bucket whose capture fails (a forward that
synchronizes with the host cannot be captured): the worker keeps serving, with a warning.

A graph is captured the first time its bucket is used (the worker's warm-up runs the sizes it
expects, on the loader thread, while the compute thread may be serving another variant: the
capture is thread-local) and kept; all graphs of a variant share one memory pool. Only the
compute thread replays them. Enabled with `--cuda-graphs` (off by default).
"""

from __future__ import annotations

import bisect
import logging
from collections.abc import Callable

import torch

log = logging.getLogger(__name__)

Forward = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Captured = tuple["torch.cuda.CUDAGraph", torch.Tensor, torch.Tensor, torch.Tensor]
"""A graph, its pinned host staging buffer, its static input (ids and mask stacked) and its
static output."""


def buckets(limit: int, first: int) -> tuple[int, ...]:
    """Powers of two from `first`, the last one `limit` itself."""
    out, size = [], first
    while size < limit:
        out.append(size)
        size *= 2
    return (*out, limit)


def pad_into(staged: torch.Tensor, ids: torch.Tensor, mask: torch.Tensor) -> None:
    """Write `ids` and `mask` into `staged` (shape (2, batch, seq): ids, then mask), padded:
    pad token 0 with mask 0; rows added for the batch get one unmasked token."""
    b, s = ids.shape
    staged.zero_()
    staged[0, :b, :s] = ids
    staged[1, :b, :s] = mask
    staged[1, b:, 0] = 1


class GraphedForward:
    """Logits of a batch given as host tensors, replayed from the graph of its bucket.

    Per call: the batch is padded on the host into the bucket's pinned staging buffer, copied
    to the device in one transfer, the graph replayed, and the real rows' logits copied back:
    two transfers and one replay, no other kernel on the device's path."""

    def __init__(
        self, forward: Forward, device: torch.device, max_batch: int, max_length: int
    ) -> None:
        self.forward = forward
        self.device = device
        self.batch_buckets = buckets(max_batch, 1)
        self.seq_buckets = buckets(max_length, min(16, max_length))
        self._graphs: dict[tuple[int, int], Captured] = {}
        self.eager_buckets: set[tuple[int, int]] = set()
        """Buckets whose capture failed: they run eagerly from then on."""
        self._pool = torch.cuda.graph_pool_handle() if device.type == "cuda" else None

    def bucket(self, batch: int, seq: int) -> tuple[int, int] | None:
        i = bisect.bisect_left(self.batch_buckets, batch)
        j = bisect.bisect_left(self.seq_buckets, seq)
        if i == len(self.batch_buckets) or j == len(self.seq_buckets):
            return None
        return self.batch_buckets[i], self.seq_buckets[j]

    def __call__(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Float logits on the host of the batch (`ids`, `mask` on the host)."""
        key = self.bucket(*ids.shape)
        if key is None or key in self.eager_buckets:  # outside every bucket: eagerly
            return self._eager(ids, mask)
        entry = self._graphs.get(key)
        if entry is None:
            try:
                entry = self._capture(key)
            except RuntimeError as exc:  # a forward that cannot be captured (a host sync...)
                log.warning(
                    "bucket %s runs eagerly: its CUDA graph failed to capture: %s", key, exc
                )
                self.eager_buckets.add(key)
                return self._eager(ids, mask)
        graph, staged, static_in, static_out = entry
        pad_into(staged, ids, mask)
        static_in.copy_(staged, non_blocking=True)
        graph.replay()
        # the copy back waits for the replay, so the staging buffer is free again after it
        return static_out[: ids.shape[0]].float().cpu()

    def _eager(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.forward(ids.to(self.device), mask.to(self.device)).float().cpu()

    def _capture(self, key: tuple[int, int]) -> Captured:
        batch, seq = key
        static_in = torch.zeros((2, batch, seq), dtype=torch.long, device=self.device)
        static_in[1, :, 0] = 1
        ids, mask = static_in[0], static_in[1]
        stream = torch.cuda.Stream(self.device)
        stream.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(stream):
            for _ in range(3):  # warm the kernels outside the capture
                self.forward(ids, mask)
        torch.cuda.current_stream(self.device).wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        # thread-local capture: the compute thread keeps serving another variant (allocating,
        # copying, synchronizing) while the loader thread captures this one's graphs; in the
        # default global mode any of those would invalidate the capture
        with torch.cuda.graph(graph, pool=self._pool, capture_error_mode="thread_local"):
            out = self.forward(ids, mask)
        staged = torch.empty((2, batch, seq), dtype=torch.long, pin_memory=True)
        entry = (graph, staged, static_in, out)
        self._graphs[key] = entry
        return entry
