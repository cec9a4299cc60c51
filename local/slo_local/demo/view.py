"""The demo's terminal view: a live rich panel on a terminal, log lines otherwise.

Both views get the same calls: `note` (setup messages), `update` (about four times a
second: progress, p99 vs target, replicas, window, variant), `step` (every control
interval: the decision and its reason) and `close`. Without a TTY (CI, pipes, `| tee`) the
live panel would print escape codes, so `make_view` returns `LogView`, which writes one plain
line per control interval instead.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, TextIO

from slo_local.actuator import Snapshot
from slo_local.demo.timeline import Step

if TYPE_CHECKING:
    from rich.console import Console


@dataclass(frozen=True, slots=True)
class LiveState:
    """What the view shows at one instant."""

    elapsed_s: float
    duration_s: float
    offered_rps: float
    measured_p99_ms: float
    """The objective's quantile of the client latencies of the last few seconds."""
    target_ms: float
    snapshot: Snapshot
    failed: int
    requests: int
    source: str


class View(Protocol):
    def note(self, message: str) -> None: ...

    def update(self, state: LiveState) -> None: ...

    def step(self, step: Step, state: LiveState) -> None: ...

    def close(self) -> None: ...


def _ms(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return "-"
    return f"{value:.0f}ms"


def _replicas(s: Snapshot) -> str:
    extra = []
    if s.starting:
        extra.append(f"{s.starting} starting")
    if s.draining:
        extra.append(f"{s.draining} draining")
    more = f" ({', '.join(extra)})" if extra else ""
    return f"{s.ready}/{s.desired} ready{more}"


class LogView:
    """One line per control interval (for pipes and CI logs)."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stdout

    def _write(self, line: str) -> None:
        print(line, file=self.stream, flush=True)

    def note(self, message: str) -> None:
        self._write(message)

    def update(self, state: LiveState) -> None:
        pass

    def step(self, step: Step, state: LiveState) -> None:
        s = state.snapshot
        seen = _ms(step.latency_ms) if step.error is None else f"no data ({step.error})"
        applied = "" if step.acted and step.after != step.before else " (no change)"
        self._write(
            f"[{step.t:5.0f}s/{state.duration_s:.0f}s] load {state.offered_rps:5.1f} req/s | "
            f"p99 {_ms(state.measured_p99_ms)} measured, {seen} seen, target "
            f"{state.target_ms:g}ms | replicas {_replicas(s)} | window "
            f"{s.config.batch_window_ms}ms | {s.config.variant} | "
            f"{step.action}{applied}: {step.reason}"
        )

    def close(self) -> None:
        pass


class RichView:
    """A live panel (rich) redrawn a few times a second."""

    def __init__(self, console: Console | None = None) -> None:
        from rich.console import Console
        from rich.live import Live
        from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

        self.console = console or Console()
        self.progress = Progress(
            TextColumn("[bold]latencyslo demo"),
            BarColumn(),
            TextColumn("{task.completed:.0f}/{task.total:.0f}s"),
            TimeRemainingColumn(),
        )
        self.task = self.progress.add_task("run", total=1.0)
        self.notes: list[str] = []
        self.last: Step | None = None
        self.state: LiveState | None = None
        self.live = Live(self._render(), console=self.console, refresh_per_second=4)
        self.live.start()

    def _render(self) -> object:
        from rich.console import Group
        from rich.panel import Panel
        from rich.table import Table
        from rich.text import Text

        parts: list[object] = [Text(n, style="dim") for n in self.notes[-4:]]
        s = self.state
        if s is not None:
            self.progress.update(
                self.task, total=s.duration_s, completed=min(s.elapsed_s, s.duration_s)
            )
            table = Table.grid(padding=(0, 2))
            table.add_column(style="bold")
            table.add_column()
            over = math.isfinite(s.measured_p99_ms) and s.measured_p99_ms > s.target_ms
            style = "red" if over else "green"
            seen = "-"
            if self.last is not None:
                seen = _ms(self.last.latency_ms) if self.last.error is None else "no data"
            table.add_row(
                "p99",
                Text.assemble(
                    (f"{_ms(s.measured_p99_ms)} measured", style),
                    f"  {seen} seen by the controller ({s.source})",
                    f"  target {s.target_ms:g}ms",
                ),
            )
            table.add_row(
                "load", f"{s.offered_rps:.1f} req/s ({s.requests} sent, {s.failed} failed)"
            )
            table.add_row("replicas", _replicas(s.snapshot))
            table.add_row("batch window", f"{s.snapshot.config.batch_window_ms} ms")
            table.add_row("variant", s.snapshot.config.variant)
            if self.last is not None:
                changed = self.last.acted and self.last.after != self.last.before
                table.add_row(
                    "last decision",
                    Text.assemble(
                        (f"{self.last.action} at {self.last.t:.0f}s", "bold" if changed else ""),
                        f": {self.last.reason}",
                    ),
                )
            parts += [self.progress, Panel(table, title="controller", border_style=style)]
        return Group(*parts)  # type: ignore[arg-type]

    def note(self, message: str) -> None:
        self.notes.append(message)
        self.live.update(self._render())

    def update(self, state: LiveState) -> None:
        self.state = state
        self.live.update(self._render())

    def step(self, step: Step, state: LiveState) -> None:
        self.last = step
        self.update(state)

    def close(self) -> None:
        self.live.stop()


def make_view(force_plain: bool = False) -> View:
    """The rich live view on a terminal, log lines otherwise."""
    if not force_plain and sys.stdout.isatty():
        return RichView()
    return LogView()
