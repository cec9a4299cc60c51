"""Write hack/constraints.txt: the exact versions the container images install.

The versions are those of the project's virtualenv (`make venv`), where the tests pass: the
closure of the dependencies of `latencyslo[worker]` (which includes the operator's) with
torch's own dependencies, torch itself left out (the Dockerfiles pin it with its index).
Run after changing dependencies:

    .venv/bin/python hack/update-constraints.py
"""

from __future__ import annotations

import re
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

from packaging.requirements import Requirement

ROOT = "latencyslo"
EXTRAS = ("worker",)
EXCLUDE = {"torch"}  # pinned in the Dockerfiles (CPU or CUDA index)
OUT = Path(__file__).with_name("constraints.txt")


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def closure() -> dict[str, str]:
    pins: dict[str, str] = {}
    seen: set[str] = set()
    todo = [(ROOT, EXTRAS)]
    while todo:
        name, extras = todo.pop()
        dist = distribution(name)
        for raw in dist.requires or []:
            req = Requirement(raw)
            if req.marker and not any(
                req.marker.evaluate({"extra": extra}) for extra in (*extras, "")
            ):
                continue
            key = canonical(req.name)
            if key in seen:
                continue
            seen.add(key)
            try:
                version = distribution(req.name).version
            except PackageNotFoundError:
                continue  # an optional dependency that this platform does not install
            if key not in EXCLUDE:
                pins[key] = version
            todo.append((req.name, tuple(req.extras)))
    return pins


def main() -> None:
    pins = closure()
    lines = [
        "# Exact versions installed in the container images (pip -c); generated from the",
        "# tested virtualenv by hack/update-constraints.py. torch is pinned in the Dockerfiles.",
        *(f"{name}=={version}" for name, version in sorted(pins.items())),
    ]
    OUT.write_text("\n".join(lines) + "\n")
    print(f"wrote {len(pins)} pins to {OUT}")


if __name__ == "__main__":
    main()
