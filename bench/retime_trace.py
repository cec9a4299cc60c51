"""The same requests at other times: a trace reversed, its blocks shuffled, or shifted.

    python bench/retime_trace.py IN OUT --reverse
    python bench/retime_trace.py IN OUT --shuffle-blocks 300 [--seed 7]
    python bench/retime_trace.py IN OUT --shift 700

A controller's figures on one trace can owe something to that trace's timing: where its
first burst falls after the warm-up, which bursts come within a stabilization window of
another. Replaying the same arrivals reversed in time, or cut into blocks of N seconds put
in a random order (each block's inner timing kept), or shifted in time as a loop (the
arrivals S seconds later, those past the end wrapped to the start: every gap between two
requests kept but one), keeps the trace's rate distribution, its bursts and their shapes
(mirrored, when reversed) and changes only that timing:
`bench/pareto.py --trace-file OUT` then asks whether the figures hold. IN is a trace in the
Azure format (`TIMESTAMP,...`, one row per request, what `latencyslo simulate
--trace-file` reads); OUT is in that format too, the timestamps moved.
"""

from __future__ import annotations

import argparse
import csv
from collections.abc import Iterable
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np

from slo_operator.sim.workloads import load_trace


def retimed(secs: np.ndarray, reverse: bool, block_s: float | None, seed: int) -> np.ndarray:
    """Arrival offsets (from 0) moved: mirrored in time, or blocks of `block_s` permuted."""
    secs = np.sort(np.asarray(secs, dtype=float))
    secs = secs - secs[0]
    if reverse:
        return np.sort(secs[-1] - secs)
    if block_s is None or block_s <= 0:
        raise ValueError("block_s must be > 0")
    block = np.floor(secs / block_s).astype(np.int64)
    order = np.random.default_rng(seed).permutation(int(block.max()) + 1)
    return np.sort(order[block] * block_s + (secs - block * block_s))


def offsets(secs: np.ndarray) -> np.ndarray:
    """Arrival times as sorted offsets from the first."""
    secs = np.sort(np.asarray(secs, dtype=float))
    return secs - secs[0]


def loop_period(secs: np.ndarray) -> float:
    """The period of sorted offsets played as a loop: their span plus one mean gap, so the
    wrapped end does not land on the start."""
    return float(secs[-1] + (secs[-1] / (len(secs) - 1) if len(secs) > 1 else 1.0))


def shifted(secs: np.ndarray, shift_s: float) -> np.ndarray:
    """Arrival offsets (from 0) played as a loop from `shift_s` seconds before the end."""
    secs = offsets(secs)
    period = loop_period(secs)
    if not 0.0 < shift_s < period:
        raise ValueError(f"shift must be within (0, {period:.0f}) s, the trace's period")
    return np.sort((secs + shift_s) % period)


def write_trace(path: Path, secs: Iterable[float]) -> None:
    """A trace in the Azure format (`TIMESTAMP`, one row per request) with arrivals at `secs`
    seconds from an arbitrary start."""
    start = datetime(2023, 11, 16)
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["TIMESTAMP"])
        for s in secs:
            w.writerow([(start + timedelta(seconds=float(s))).strftime("%Y-%m-%d %H:%M:%S.%f")])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("src", type=Path)
    ap.add_argument("out", type=Path)
    how = ap.add_mutually_exclusive_group(required=True)
    how.add_argument("--reverse", action="store_true")
    how.add_argument("--shuffle-blocks", type=float, metavar="SECONDS")
    how.add_argument("--shift", type=float, metavar="SECONDS")
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    if args.shuffle_blocks is not None and not args.shuffle_blocks > 0:
        ap.error("--shuffle-blocks: a block length in seconds, > 0")
    stamps, _, _ = load_trace(args.src)
    if stamps is None:
        ap.error(f"{args.src}: not a TIMESTAMP trace (one row per request)")
    if args.shift is not None:
        try:
            moved = shifted(stamps, args.shift)
        except ValueError as exc:
            ap.error(f"--shift: {exc}")
    else:
        moved = retimed(stamps, args.reverse, args.shuffle_blocks, args.seed)
    write_trace(args.out, moved)
    span = moved[-1] - moved[0] if len(moved) > 1 else 0.0
    print(f"wrote {args.out}: {len(moved)} requests over {span:.0f} s")


if __name__ == "__main__":
    main()
