"""Fuzz every endpoint of a real worker process, long run: `python bench/fuzz_worker.py
--json out/fuzz_worker.json [--cases 5000] [--seed N] [--model-dir DIR]`.

Starts a worker (the tiny fixture family by default: the HTTP surface is the same for every
model, and a fast model gets more cases through per second), then runs
`tests.support.worker_fuzz.fuzz`: for each of the 9 endpoints (public: POST /v1/predict,
GET /healthz, /readyz, /metrics, /openapi.json; admin: GET/PUT /admin/config,
GET /admin/variants, /admin/openapi.json) `--cases` schema-driven examples (schemathesis,
from the worker's own OpenAPI documents; endpoints without parameters have one distinct
schema case) and `--cases` raw hostile requests (hypothesis), while a canary sends a valid
request all along. Prints a summary and writes the full report as JSON; exits 1 if any
violation was found (a 5xx, a 4xx without a JSON error, a transport error, a refused PUT that
changed the config, a canary answer that was not 200 with the same outputs, a traceback in the
worker's log, a dead worker).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "operator"), str(REPO / "local")]

from tests.support.worker import build_fixture_family, run_worker  # noqa: E402
from tests.support.worker_fuzz import fuzz  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", type=Path, required=True, help="where to write the report")
    parser.add_argument("--cases", type=int, default=5000, help="examples per family per endpoint")
    parser.add_argument("--seed", type=int, default=None, help="derandomize (same cases each run)")
    parser.add_argument("--model-dir", type=Path, default=None, help="default: the fixture family")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="fuzz-worker-") as tmp:
        workdir = Path(tmp)
        model = args.model_dir or build_fixture_family(workdir / "model")
        started = time.time()
        with run_worker(model, ["--max-inputs", "8"], workdir=workdir) as w:
            report = fuzz(w, args.cases, seed=args.seed)
    report["meta"] = {
        "command": " ".join(sys.argv),
        "model": str(args.model_dir or "tests.support.worker fixture family"),
        "python": platform.python_version(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2) + "\n")
    total = 0
    for name, r in report["endpoints"].items():
        total += r["cases"]
        print(
            f"{name:<24} schema {r['schema_cases']:>5}  raw {r['raw_cases']:>5}  "
            f"failures {r['failures']}  statuses {r['statuses']}"
        )
    print(
        f"{total} cases in {report['seconds']} s; canary {report['canary']}; worker alive "
        f"{report['worker_alive']}; violations {report['failure_count']}; wrote {args.json}"
    )
    return 1 if report["failure_count"] else 0


if __name__ == "__main__":
    sys.exit(main())
