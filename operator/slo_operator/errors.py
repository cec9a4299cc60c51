"""The operator's exception tree: one root, matched by type (never by message text).

```
LatencySLOError
├── MetricsError            a metrics source failed (the loop turns it into "no data")
│   └── QueryError          one Prometheus query failed
├── ActuationError          reading or writing the target failed (API error, network)
│   ├── TargetNotFoundError the target Deployment does not exist
│   └── ForeignObjectError  an object the operator would write belongs to someone else
└── StoreError              status or controller memory could not be saved
```
"""

from __future__ import annotations


class LatencySLOError(Exception):
    """Root of the errors the operator raises and handles."""


class MetricsError(LatencySLOError):
    """A metrics source failed."""


class QueryError(MetricsError):
    """A Prometheus query failed (unreachable, timeout, HTTP error, bad answer)."""


class ActuationError(LatencySLOError):
    """Reading or writing the target failed (API error, network)."""


class TargetNotFoundError(ActuationError):
    """The target Deployment does not exist."""


class ForeignObjectError(ActuationError):
    """An object the operator would write (the runtime ConfigMap) exists and is not its own:
    neither owned by this LatencySLO nor labelled as the operator's. Reported as a Conflict;
    the object is left as it is."""


class StoreError(LatencySLOError):
    """The status or the controller memory could not be saved."""
