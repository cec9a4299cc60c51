"""The pure decision core of latencyslo.

```python
decision, state = decide(spec, observation, current, profiles, state, now)
```

`ControllerState` is the controller's small memory (JSON-safe through `to_dict` /
`from_dict`); `initial_state(now)` starts a fresh one. Nothing here performs I/O or imports
kopf, kubernetes, httpx, prometheus clients, aiohttp or torch (a test checks it).
"""

from slo_operator.policy.core import WINDOW_GRID_MS, decide, gap_seconds, stale_after_seconds
from slo_operator.policy.state import ControllerState, initial_state

__all__ = [
    "WINDOW_GRID_MS",
    "ControllerState",
    "decide",
    "gap_seconds",
    "initial_state",
    "stale_after_seconds",
]
