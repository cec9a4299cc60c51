"""Chaos on the local loop: `kill -9` a serving worker mid-batch, restart Prometheus, under load.

`python bench/local_chaos.py --rounds 5 --prometheus-restarts 3 --json FILE` runs the demo's
loop for real (the demo's own run, `slo_local.demo.run._Run`: real worker processes of the
demo model, the router, a real Prometheus, the operator's `ControlLoop` stepping every
interval, the same shutdown) under an open-loop
Poisson load well inside capacity (`--load` of ONE replica's capacity at the aim, as the
warm replica measures it, spread over two replicas: the demo's LatencySLO with at least two
replicas, so that a kill leaves one serving). Then:

1. **kill -9** (`--rounds`): wait until a ready replica has `--min-in-flight` requests routed
   to it and not answered (in its batcher or on their way), SIGKILL it, and wait until its
   replacement is ready and routed (full capacity again). Every request is recorded by the
   load generator; a request was *in flight on the killed worker* when it was routed to that
   worker before the kill and answered (or failed) after it. Counted per round: requests
   sent, answered, failed, failed in flight on the victim (the allowance), and **failed
   otherwise (lost beyond the allowance: must be 0)**; the router's own count of the
   victim's requests in flight at the kill is checked against the records; replicas
   started (exactly one replacement per kill; more is a double action) and the time from
   the kill to full capacity.
2. **Prometheus restart** (`--prometheus-restarts`): stop Prometheus (SIGTERM), leave it down
   `--down-s` seconds (longer than a control interval, so steps do see the outage), start it
   again on the same port with the same data folder. Counted: control steps on untrusted
   data, **changes made on untrusted data (must be 0)**, double actions (a change that
   repeats the one before it), the time from the restart until the controller trusts its
   data again, and failed requests (must be 0).

Exit status 1 when any of the "must be" figures is not met. Linux only (the victim's exit is
watched through a pidfd). Figures and what they mean: docs/reliability.md, "Chaos on the local
loop".
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import math
import os
import shutil
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "operator"), str(REPO), str(REPO / "local")]

from slo_local.actuator import LocalActuator, State  # noqa: E402
from slo_local.demo.run import DemoOptions, _Run  # noqa: E402
from slo_local.demo.scenario import Scenario, build_scenario  # noqa: E402
from slo_local.demo.timeline import Step, untrusted_actions  # noqa: E402
from slo_local.demo.view import LogView  # noqa: E402
from slo_local.loadgen import LoadGenerator, RequestRecord, Router  # noqa: E402

REPLICAS = 2
"""Replicas the LatencySLO keeps at least (one may die, the other serves)."""
LOAD = 0.4
"""The offered rate over ONE replica's capacity at the aim (spread over two replicas)."""


# ---------------------------------------------------------------------------- kill -9


@dataclass
class Kill:
    """One `kill -9` of a serving replica and how the replica set got back."""

    victim: str
    pid: int
    at: float
    """Load-generator time of the kill (seconds from the start of the load)."""
    in_flight: int
    """The router's count of requests routed to the victim and not answered, at the kill."""
    exited_at: float = 0.0
    """Load-generator time its exit was seen: between the kill and the exit the kernel still
    takes connections and requests for the process (it is dying, not dead yet)."""
    spawned: list[str] = field(default_factory=list)
    """Replicas started from the kill until full capacity (one replacement is right)."""
    recovered_s: float | None = None
    """From the kill until as many replicas are ready as desired, the replacement included."""


async def kill_mid_batch(
    actuator: LocalActuator,
    router: Router,
    gen: LoadGenerator,
    *,
    min_in_flight: int = 2,
    timeout_s: float = 120.0,
) -> Kill:
    """SIGKILL the first ready replica seen with `min_in_flight` requests on it, then wait
    for the replica set to be back at full capacity (see module docs)."""
    deadline = time.monotonic() + timeout_s
    before = {r.name for r in actuator.replicas}
    while True:
        ready = [r for r in actuator.replicas if r.state is State.READY and r.routed]
        busiest = max(ready, key=lambda r: router.outstanding(r.name), default=None)
        if busiest is not None and router.outstanding(busiest.name) >= min_in_flight:
            break  # the kill follows in the same turn of the event loop: nothing moves between
        if time.monotonic() > deadline:
            raise TimeoutError(f"no replica had {min_in_flight} requests in flight")
        await asyncio.sleep(0.001)
    kill = Kill(busiest.name, busiest.proc.pid, gen.elapsed(), router.outstanding(busiest.name))
    killed = time.monotonic()
    pidfd = os.pidfd_open(kill.pid)  # readable once the process has exited
    exited = asyncio.get_running_loop().create_future()
    asyncio.get_running_loop().add_reader(pidfd, lambda: exited.done() or exited.set_result(1))
    try:
        os.kill(kill.pid, signal.SIGKILL)
        await asyncio.wait_for(exited, timeout_s)
        kill.exited_at = gen.elapsed()
    finally:
        asyncio.get_running_loop().remove_reader(pidfd)
        os.close(pidfd)
    while True:
        new = [r for r in actuator.replicas if r.name not in before]
        if actuator.ready_count() >= actuator.desired.replicas and any(
            r.state is State.READY for r in new
        ):
            kill.recovered_s = time.monotonic() - killed
            kill.spawned = [r.name for r in new]
            return kill
        if time.monotonic() > deadline:
            kill.spawned = [r.name for r in new]
            return kill
        await asyncio.sleep(0.05)


def sent_at(record: RequestRecord) -> float:
    """When the request was routed (its due time plus the generator's lag)."""
    return record.due + record.lag


def in_flight_at_kill(record: RequestRecord, kill: Kill) -> bool:
    """Routed to the victim before the kill and finished (answered or failed) after it."""
    return record.replica == kill.victim and sent_at(record) <= kill.at < record.done


def in_flight_on_victim(record: RequestRecord, kill: Kill) -> bool:
    """Routed to the victim before its exit and finished after the kill: the requests the
    kill may take down (the allowance)."""
    return (
        record.replica == kill.victim
        and sent_at(record) <= kill.exited_at
        and record.done > kill.at
    )


def lost_beyond_in_flight(
    records: Sequence[RequestRecord], kills: Sequence[Kill]
) -> list[RequestRecord]:
    """Failed requests that were not in flight on any killed worker."""
    return [r for r in records if not r.ok and not any(in_flight_on_victim(r, k) for k in kills)]


def kill_accounting(
    records: Sequence[RequestRecord],
    kill: Kill,
    start: float,
    end: float,
    kills: Sequence[Kill] = (),
) -> dict[str, Any]:
    """The requests that ended in [start, end) around one kill, failures attributed: to
    `kill`'s victim, else to another of `kills` (a request in flight on a victim ends after
    its kill, so in its own round unless the next round begins first), else lost."""
    window = [r for r in records if start <= r.done < end]
    failed = [r for r in window if not r.ok]
    allowed = [r for r in failed if in_flight_on_victim(r, kill)]
    others = [r for r in failed if not in_flight_on_victim(r, kill)]
    lost = lost_beyond_in_flight(others, kills)
    return {
        "sent": len(window),
        "ok": len(window) - len(failed),
        "failed": len(failed),
        "in_flight_at_kill": sum(1 for r in records if in_flight_at_kill(r, kill)),
        "router_in_flight_at_kill": kill.in_flight,
        "routed_to_victim_while_dying": sum(
            1
            for r in records
            if r.replica == kill.victim and kill.at < sent_at(r) <= kill.exited_at
        ),
        "exit_after_kill_ms": round((kill.exited_at - kill.at) * 1000, 1),
        "refused_and_sent_elsewhere": sum(1 for r in window if kill.victim in r.refused_by),
        "failed_in_flight_on_victim": len(allowed),
        "of_which_routed_while_dying": sum(1 for r in allowed if sent_at(r) > kill.at),
        "failed_in_flight_on_other_victims": len(failed) - len(allowed) - len(lost),
        "lost_beyond_in_flight": len(lost),
        "lost_examples": [asdict(r) for r in lost[:5]],
    }


# ---------------------------------------------------------------------------- Prometheus


@dataclass
class Restart:
    """One Prometheus restart (load-generator times)."""

    stopped_at: float
    started_at: float
    """Ready again."""
    data: str
    """"kept" (the same TSDB folder) or "wiped" (an empty one: no history at all)."""
    trusted_at: float | None = None
    """The first control step after `started_at` whose data the controller trusts."""


async def restart_prometheus(
    run: _Run, down_s: float, *, wipe: bool, timeout_s: float = 120.0
) -> Restart:
    """Stop the run's Prometheus, keep it down `down_s`, start it on the same port and data
    folder (emptied first if `wipe`), and wait for a control step on trusted data."""
    assert run.prometheus is not None
    assert run.loadgen is not None
    gen, prometheus = run.loadgen, run.prometheus
    stopped_at = gen.elapsed()
    await asyncio.to_thread(prometheus.stop)  # SIGTERM and wait: not on the event loop
    if wipe:
        shutil.rmtree(prometheus.workdir / "data", ignore_errors=True)
    await asyncio.sleep(down_s)
    prometheus.launch()  # from the event-loop thread, which the process' lifetime follows
    await asyncio.to_thread(prometheus.wait_ready)
    restart = Restart(stopped_at, gen.elapsed(), "wiped" if wipe else "kept")
    deadline = time.monotonic() + timeout_s
    while restart.trusted_at is None and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
        restart.trusted_at = next(
            (t for s in run.steps if (t := step_time(run, s)) > restart.started_at and s.trusted),
            None,
        )
    return restart


def step_time(run: _Run, step: Step) -> float:
    """A control step's time on the load generator's clock (steps count from the warm-up's
    end)."""
    return step.t + run.scenario.warmup_s


def changes(steps: Sequence[Step]) -> list[Step]:
    return [s for s in steps if s.acted and s.after != s.before]


def double_actions(steps: Sequence[Step]) -> list[Step]:
    """Changes that repeat the change before them (the same move made twice)."""
    made = changes(steps)
    return [b for a, b in itertools.pairwise(made) if (a.before, a.after) == (b.before, b.after)]


def restart_accounting(
    run: _Run, restart: Restart, start: float, end: float, records: Sequence[RequestRecord]
) -> dict[str, Any]:
    steps = [s for s in run.steps if start <= step_time(run, s) < end]
    window = [r for r in records if start <= r.done < end]
    return {
        "data": restart.data,
        "down_s": round(restart.started_at - restart.stopped_at, 2),
        "trusted_again_after_s": None
        if restart.trusted_at is None
        else round(restart.trusted_at - restart.started_at, 2),
        "untrusted_for_s": None
        if restart.trusted_at is None
        else round(restart.trusted_at - restart.stopped_at, 2),
        "steps": len(steps),
        "untrusted_steps": sum(1 for s in steps if not s.trusted),
        "untrusted_actions": len(untrusted_actions(steps)),
        "changes": len(changes(steps)),
        "double_actions": len(double_actions(steps)),
        "sent": len(window),
        "failed": sum(1 for r in window if not r.ok),
    }


# ---------------------------------------------------------------------------- the campaign


def chaos_scenario(seconds: float, load: float, warmup_s: float = 20.0) -> Scenario:
    """The demo's LatencySLO held on at least `REPLICAS` replicas, under a steady Poisson
    load of `load` x one replica's capacity at the aim (resized from the warm replica)."""
    scenario = build_scenario(
        workload="steady", duration_s=seconds, load_fraction=load, warmup_s=warmup_s, cooldown_s=0
    )
    spec = scenario.spec
    replicas = spec.replicas.model_copy(update={"min": REPLICAS, "max": REPLICAS + 1})
    slo = replace(scenario.slo, spec=spec.model_copy(update={"replicas": replicas}))
    return replace(scenario, slo=slo, initial=scenario.initial.with_(replicas=REPLICAS))


def _median_max(values: Sequence[float | None]) -> dict[str, float | None]:
    known = [v for v in values if v is not None]
    if not known:
        return {"median": None, "max": None}
    return {"median": round(statistics.median(known), 2), "max": round(max(known), 2)}


def kill_row(
    run: _Run,
    records: Sequence[RequestRecord],
    kill: Kill,
    start: float,
    end: float,
    kills: Sequence[Kill],
) -> dict[str, Any]:
    """One kill round: the requests' accounting, the replicas started, the controller's
    changes. Replicas started beyond the one replacement and the controller's own scale-ups
    are double actions."""
    assert run.actuator is not None
    assert run.loadgen is not None
    assert run.loadgen.started_at is not None
    t0 = run.loadgen.started_at
    started = [r.name for r in run.actuator.replicas if start <= r.started_at - t0 < end]
    made = changes([s for s in run.steps if start <= step_time(run, s) < end])
    scale_ups = sum(max(0, s.after.replicas - s.before.replicas) for s in made)
    return {
        "victim": kill.victim,
        "killed_at_s": round(kill.at, 2),
        "recovered_s": None if kill.recovered_s is None else round(kill.recovered_s, 2),
        "replicas_started": started,
        "controller_changes": [f"{s.action}: {s.reason}" for s in made],
        "double_actions": max(0, len(started) - 1 - scale_ups),
        **kill_accounting(records, kill, start, end, kills),
    }


async def campaign(
    kills: int,
    restarts: int,
    *,
    load: float,
    min_in_flight: int,
    down_s: float,
    settle_s: float,
    workdir: Path,
) -> dict[str, Any]:
    """The demo's run (`_Run`: Prometheus, workers, probe, control loop, load, shutdown),
    with the kills, then the restarts, each followed by `settle_s` of quiet. Each round
    counts the requests that ended from its start to the next one's (the last one's to the
    end); the totals count every request of the run, the warm-up's included."""
    seconds = 60.0 * (kills + restarts) + 120.0  # arrivals enough; the load stops when done
    options = DemoOptions(
        out_dir=workdir, metrics="prometheus", write_files=False, simulate=False, probe_s=6.0
    )
    run = _Run(chaos_scenario(seconds, load), options, LogView())
    plan: list[tuple[float, Kill | Restart]] = []
    try:
        await run.setup()
        assert run.loadgen is not None
        assert run.actuator is not None
        gen, actuator = run.loadgen, run.actuator
        running = asyncio.create_task(run.run())
        await asyncio.sleep(run.scenario.warmup_s + settle_s)  # warm, the controller settled
        for _ in range(kills):
            start = gen.elapsed()
            plan.append(
                (
                    start,
                    await kill_mid_batch(actuator, run.router, gen, min_in_flight=min_in_flight),
                )
            )
            await asyncio.sleep(settle_s)
        for n in range(restarts):
            start = gen.elapsed()
            plan.append((start, await restart_prometheus(run, down_s, wipe=n % 2 == 1)))
            await asyncio.sleep(settle_s)
        run.stop.set()
        await running
        records = gen.records
        kills_made = [event for _, event in plan if isinstance(event, Kill)]
        bounds = [p[0] for p in plan[1:]] + [math.inf]
        rows = [
            kill_row(run, records, event, start, end, kills_made)
            if isinstance(event, Kill)
            else restart_accounting(run, event, start, end, records)
            for (start, event), end in zip(plan, bounds, strict=True)
        ]
    finally:
        await run.shutdown()
    kinds = [isinstance(event, Kill) for _, event in plan]
    kill_rounds = [row for row, kill in zip(rows, kinds, strict=True) if kill]
    restart_rounds = [row for row, kill in zip(rows, kinds, strict=True) if not kill]
    return summarize(run, kill_rounds, restart_rounds, gen.sent, records, kills_made)


def summarize(
    run: _Run,
    kill_rounds: list[dict[str, Any]],
    restart_rounds: list[dict[str, Any]],
    sent: int,
    records: Sequence[RequestRecord],
    kills: Sequence[Kill],
) -> dict[str, Any]:
    scenario = run.scenario
    return {
        "load": {
            "rate_rps": round(scenario.base_rps, 2),
            "one_replica_capacity_rps": round(scenario.capacity_rps, 2),
            "machine_factor": scenario.machine_factor,
            "target_ms": scenario.spec.target_latency_ms,
            "replicas_min": scenario.spec.replicas.min,
        },
        "requests_sent": sent,
        "requests_recorded": len(records),
        "requests_failed": sum(1 for r in records if not r.ok),
        "lost_beyond_in_flight": len(lost_beyond_in_flight(records, kills)),
        "kills": len(kill_rounds),
        "prometheus_restarts": len(restart_rounds),
        **{
            name: sum(row[key] for row in rows)
            for name, rows, key in (
                ("failed_in_flight_on_victim", kill_rounds, "failed_in_flight_on_victim"),
                ("kill_double_actions", kill_rounds, "double_actions"),
                ("untrusted_actions", restart_rounds, "untrusted_actions"),
                ("restart_double_actions", restart_rounds, "double_actions"),
                ("restart_failed_requests", restart_rounds, "failed"),
            )
        },
        "not_recovered": sum(1 for r in kill_rounds if r["recovered_s"] is None),
        "not_trusted_again": sum(1 for r in restart_rounds if r["trusted_again_after_s"] is None),
        "recovered_s": _median_max([r["recovered_s"] for r in kill_rounds]),
        "trusted_again_after_s": _median_max([r["trusted_again_after_s"] for r in restart_rounds]),
        "kill_rounds": kill_rounds,
        "restart_rounds": restart_rounds,
    }


def failures(report: dict[str, Any]) -> list[str]:
    """The "must be" figures that are not met."""
    checks = {
        "requests lost beyond those in flight on a killed worker": report["lost_beyond_in_flight"],
        "double actions after a kill": report["kill_double_actions"],
        "kills without full capacity again": report["not_recovered"],
        "requests not recorded": report["requests_sent"] - report["requests_recorded"],
        "changes on untrusted data": report["untrusted_actions"],
        "double actions around a restart": report["restart_double_actions"],
        "requests failed around a restart": report["restart_failed_requests"],
        "restarts after which the data was never trusted": report["not_trusted_again"],
    }
    return [f"{what}: {n}" for what, n in checks.items() if n]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="kill -9 rounds")
    parser.add_argument("--prometheus-restarts", type=int, default=3)
    parser.add_argument("--load", type=float, default=LOAD, help="x one replica's capacity")
    parser.add_argument("--min-in-flight", type=int, default=2, help="on the victim at the kill")
    parser.add_argument("--down-s", type=float, default=10.0, help="Prometheus down per restart")
    parser.add_argument("--settle-s", type=float, default=10.0, help="after each round")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    for option, value, low in (
        ("--rounds", args.rounds, 0),
        ("--prometheus-restarts", args.prometheus_restarts, 0),
        ("--min-in-flight", args.min_in_flight, 1),
        ("--down-s", args.down_s, 0),
        ("--settle-s", args.settle_s, 0),
    ):
        if not value >= low:
            parser.error(f"{option} must be >= {low}, got {value}")
    if args.rounds + args.prometheus_restarts == 0:
        parser.error("--rounds and --prometheus-restarts: at least one round in all")
    if not 0 < args.load <= 1:
        parser.error(f"--load must be in (0, 1] (x one replica's capacity), got {args.load}")
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="local-chaos-") as tmp:
        report = asyncio.run(
            campaign(
                args.rounds,
                args.prometheus_restarts,
                load=args.load,
                min_in_flight=args.min_in_flight,
                down_s=args.down_s,
                settle_s=args.settle_s,
                workdir=Path(tmp),
            )
        )
    report = {
        "command": " ".join(["python", "bench/local_chaos.py", *(argv or sys.argv[1:])]),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "cpus": os.cpu_count(),
        **report,
    }
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    for n, row in enumerate(report["kill_rounds"]):
        print(
            f"kill {n}: {row['victim']} with {row['router_in_flight_at_kill']} in flight; "
            f"{row['sent']} sent, {row['failed']} failed ({row['failed_in_flight_on_victim']} "
            f"in flight on it, {row['lost_beyond_in_flight']} lost beyond), "
            f"{row['refused_and_sent_elsewhere']} refused and sent elsewhere; full capacity "
            f"after {row['recovered_s']} s; {row['double_actions']} double actions"
        )
    for n, row in enumerate(report["restart_rounds"]):
        print(
            f"Prometheus restart {n} (data {row['data']}, down {row['down_s']} s): "
            f"{row['untrusted_steps']}/{row['steps']} steps untrusted, "
            f"{row['untrusted_actions']} changes on them, {row['double_actions']} double "
            f"actions, trusted again {row['trusted_again_after_s']} s after it was up; "
            f"{row['sent']} sent, {row['failed']} failed"
        )
    print(json.dumps({k: v for k, v in report.items() if not k.endswith("_rounds")}, indent=1))
    problems = failures(report)
    for line in problems:
        print("NOT MET:", line)
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
