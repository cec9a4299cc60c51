"""The bounds of a worker's runtime configuration (docs/contracts.md, the runtime document).

The worker refuses a value beyond them (422 naming the field, or its flag's usage error); the
operator reads the workers' answers and its ConfigMap against them, and the LatencySLO's
`batching` fields and the Helm chart's values schema carry the same bounds (tests compare
them).
"""

MAX_WINDOW_MS = 1000
"""`batchWindowMs`: 0..1000 ms."""
MAX_BATCH_SIZE = 1024
"""`maxBatchSize`: 1..1024 requests."""
MAX_QUEUE_WAIT_MS = 600_000
"""`maxQueueWaitMs`: 0..600000 ms (0: no limit)."""
