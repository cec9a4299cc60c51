"""Fuzz `latencyslo validate`, long run: `python bench/fuzz_validate.py --json
out/fuzz_validate.json [--cases 5000] [--seed N]`.

Runs `tests.support.validate_fuzz.fuzz`: generated manifests (from the CRD's schema, whole or
one field of each shipped example) and hostile YAML texts made from them, each fed to the
command on stdin. Prints a summary and writes the report as JSON; exits 1 if any case got
something other than a verdict (an exception, an exit status other than 0 or 1, a
traceback, a value printed whole, a case over --slow-s seconds, an unstable verdict).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "operator"), str(REPO / "local")]

import yaml  # noqa: E402

from tests.support.validate_fuzz import fuzz  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--slow-s", type=float, default=10.0)
    parser.add_argument("--json", type=Path, required=True)
    args = parser.parse_args()
    examples = [yaml.safe_load(p.read_text()) for p in sorted((REPO / "examples").glob("*.yaml"))]
    load_before = os.getloadavg()
    started = time.monotonic()
    report = fuzz(args.cases, seed=args.seed, examples=examples, slow_s=args.slow_s)
    result = {
        **report.as_json(),
        "seed": args.seed,
        "wall_seconds": round(time.monotonic() - started, 1),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=1) + "\n")
    print(
        f"{result['cases']} cases ({result['valid']} valid, {result['invalid']} invalid), "
        f"{len(result['violations'])} violations; slowest {result['seconds_max']} s, "
        f"mean {result['seconds_mean']} s; kinds {result['by_kind']}"
    )
    return 1 if result["violations"] else 0


if __name__ == "__main__":
    sys.exit(main())
