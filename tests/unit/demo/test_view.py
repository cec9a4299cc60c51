"""Both terminal views show the state and the decision; the log view has no escape codes."""

from __future__ import annotations

import io

from rich.console import Console

from slo_local.actuator import Snapshot
from slo_local.demo.timeline import Step
from slo_local.demo.view import LiveState, LogView, RichView
from slo_operator.types import RuntimeConfig

BEFORE = RuntimeConfig(1, 0, 32, "full")
AFTER = RuntimeConfig(2, 5, 32, "quantized")
STATE = LiveState(
    elapsed_s=36.0,
    duration_s=120.0,
    offered_rps=98.0,
    measured_p99_ms=212.0,
    target_ms=150.0,
    snapshot=Snapshot(desired=2, ready=1, starting=1, draining=0, config=AFTER),
    failed=0,
    requests=3000,
    source="prometheus",
)
STEP = Step(35.0, 230.0, 97.0, None, 0.5, "DegradeVariant", "quantized bridges", True,
            BEFORE, AFTER, True)  # fmt: skip


def test_log_view_writes_one_plain_line_per_step() -> None:
    out = io.StringIO()
    view = LogView(out)
    view.note("load: step")
    view.update(STATE)  # nothing between steps
    view.step(STEP, STATE)
    lines = out.getvalue().splitlines()
    assert lines[0] == "load: step"
    assert len(lines) == 2
    line = lines[1]
    expected = [
        "35s/120s",
        "212ms measured",
        "230ms seen",
        "target 150ms",
        "1/2 ready",
        "1 starting",
        "window 5ms",
        "quantized",
        "DegradeVariant: quantized bridges",
    ]
    for part in expected:
        assert part in line
    assert "\x1b[" not in out.getvalue()


def test_rich_view_renders_the_panel() -> None:
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=True, width=160)
    view = RichView(console)
    view.note("starting 1 worker")
    view.step(STEP, STATE)
    view.close()
    text = console.export_text() if console.record else buffer.getvalue()
    for part in ("212ms measured", "230ms seen", "1/2 ready", "quantized", "DegradeVariant"):
        assert part in text
