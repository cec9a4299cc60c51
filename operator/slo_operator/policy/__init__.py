"""The pure decision core of latencyslo.

```python
controller = Controller(ControllerParams.build(spec, OperatorLimits(...)), profiles)
decision = controller.step(observation, current, now)
controller.applied(result)
```

- `params`: `ControllerParams` (one frozen object per LatencySLO: the effective spec, the
  measurement ranges, the staleness and gap limits) and `OperatorLimits` (the operator-wide part);
- `controller`: `Controller`, the object the operator, the simulator and the demo hold;
- `trust`, `profiles`, `sizing`, `explain`, `core`: its rules (`core.decide` is the same rule as a
  plain function of the spec, for the policy's own tests);
- `state`: `ControllerState`, its JSON-safe memory.

Nothing here performs I/O or imports kopf, kubernetes, httpx, prometheus clients, aiohttp or
torch (a test checks it).
"""

from slo_operator.policy.controller import Controller
from slo_operator.policy.core import decide, propose, record_applied
from slo_operator.policy.params import ControllerParams, OperatorLimits, default_ranges
from slo_operator.policy.profiles import ProfileFit
from slo_operator.policy.sizing import WINDOW_GRID_MS
from slo_operator.policy.state import ControllerState, initial_state
from slo_operator.policy.trust import Trust, assess

__all__ = [
    "WINDOW_GRID_MS",
    "Controller",
    "ControllerParams",
    "ControllerState",
    "OperatorLimits",
    "ProfileFit",
    "Trust",
    "assess",
    "decide",
    "default_ranges",
    "initial_state",
    "propose",
    "record_applied",
]
