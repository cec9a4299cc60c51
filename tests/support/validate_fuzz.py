"""Fuzzing `latencyslo validate`: generated manifests and hostile YAML text, one verdict each.

Each case is a YAML text fed to the command on stdin, as a user would pipe a manifest. Half
are drawn from the CRD's own schema, either a whole spec or one spec field of a valid example
(every field present or absent, values at and past the bounds, wrong types, unknown fields,
nulls, YAML 1.1 booleans, numbers beyond 64 bits); the other half are such manifests mutated
as text (truncated, bytes flipped, non-UTF-8 bytes, tabs, duplicate keys, alias chains,
recursive aliases, deep nesting, huge scalars, several documents).

A violation is anything but a verdict: an exception other than the command's own exit, an
exit status other than 0 (valid) or 1 (invalid), a traceback in the output, an output that
prints a value whole (over 20,000 characters per document of the input: a long name repeated
on every problem line of five documents is fine, a 300 KB annotation echoed is not), a case
slower than `slow_s`, or two runs of the same text with different verdicts. Used by the short
run in tests/unit/crd/test_validate_fuzz.py and the long one in bench/fuzz_validate.py.
"""

from __future__ import annotations

import copy
import random
import time
from dataclasses import dataclass, field
from typing import Any

import yaml
from click.testing import CliRunner

from slo_operator.cli import main
from slo_operator.validate import object_schema

MAX_OUTPUT = 20_000
ODD: tuple[Any, ...] = (
    None,
    True,
    False,
    "",
    "y",
    "N",
    "x" * 40,
    0,
    -1,
    1.5,
    [],
    {},
    [1],
    {"a": 1},
)
INTS: tuple[int, ...] = (0, 1, -1, 2, 99, 100, 101, 1000, 2**31, 2**53 + 1, 2**63, 2**64, -(2**63))
FLOATS: tuple[float, ...] = (0.0, 0.5, 99.9, 99.99, 100.0, -0.1, 1e-9, 1e308, 1e400, float("nan"))
STRINGS: tuple[str, ...] = (
    "",
    "a",
    "full",
    "le",
    "namespace",
    "__bad",
    "Deployment",
    "StatefulSet",
    "y",
    "no",
    "~",
    "0x10",
    "1e3",
    "a" * 300,
    "ünïcode",
    "with space",
    "a:b",
    "- x",
)


@dataclass
class Report:
    cases: int = 0
    valid: int = 0
    invalid: int = 0
    violations: list[dict[str, Any]] = field(default_factory=list)
    seconds_max: float = 0.0
    seconds_total: float = 0.0
    by_kind: dict[str, int] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {
            "cases": self.cases,
            "valid": self.valid,
            "invalid": self.invalid,
            "violations": self.violations,
            "seconds_max": round(self.seconds_max, 4),
            "seconds_mean": round(self.seconds_total / max(self.cases, 1), 5),
            "by_kind": self.by_kind,
        }


class Generator:
    """Manifests drawn from the CRD schema, and hostile texts made from them."""

    def __init__(self, seed: int, examples: list[dict[str, Any]] | None = None) -> None:
        self.rng = random.Random(seed)
        self.spec_schema = object_schema()["properties"]["spec"]
        self.examples = examples or []

    def value(self, schema: dict[str, Any], depth: int = 0) -> Any:
        rng = self.rng
        if rng.random() < 0.08 or depth > 6:
            return rng.choice(ODD)
        if "enum" in schema and rng.random() < 0.8:
            return rng.choice(schema["enum"])
        kind = schema.get("type")
        if kind == "object":
            props = schema.get("properties") or {}
            required = set(schema.get("required") or [])
            out: dict[str, Any] = {}
            for name, sub in props.items():
                if name in required or rng.random() < 0.6:
                    out[name] = self.value(sub, depth + 1)
            extra = schema.get("additionalProperties")
            if isinstance(extra, dict) and rng.random() < 0.7:
                for _ in range(rng.randint(0, 4)):
                    out[rng.choice(STRINGS) or "k"] = self.value(extra, depth + 1)
            if rng.random() < 0.05:
                out[rng.choice(("unknownField", "Replicas", "spec"))] = rng.choice(ODD)
            return out
        if kind == "array":
            items = schema.get("items") or {}
            return [self.value(items, depth + 1) for _ in range(rng.randint(0, 4))]
        if kind == "integer":
            bound = [schema.get("minimum"), schema.get("maximum")]
            near = [b + d for b in bound if isinstance(b, int | float) for d in (-1, 0, 1)]
            return int(rng.choice([*INTS, *near])) if rng.random() < 0.9 else rng.choice(FLOATS)
        if kind == "number":
            return rng.choice([*FLOATS, *INTS])
        if kind == "string":
            return rng.choice(STRINGS)
        if kind == "boolean":
            return rng.choice((True, False, "true", "y"))
        return rng.choice(ODD)

    def manifest(self) -> dict[str, Any]:
        rng = self.rng
        meta: dict[str, Any] = {"name": rng.choice(("sentiment", "a", "x" * 300, "Bad_Name", ""))}
        if rng.random() < 0.8:
            meta["namespace"] = rng.choice(("ml", "default", "", "kube-system"))
        if rng.random() < 0.1:
            meta["annotations"] = {"a": "x" * rng.choice((10, 300_000))}
        return {
            "apiVersion": rng.choice(("latencyslo.io/v1alpha1",) * 8 + ("latencyslo.io/v2", "v1")),
            "kind": rng.choice(("LatencySLO",) * 9 + ("Deployment",)),
            "metadata": meta,
            "spec": self.value(self.spec_schema),
        }

    def one_field(self) -> dict[str, Any]:
        """A valid example with one field of its spec drawn from the schema."""
        doc = copy.deepcopy(self.rng.choice(self.examples))
        props = self.spec_schema["properties"]
        name = self.rng.choice(sorted(props))
        doc["spec"][name] = self.value(props[name], depth=1)
        return doc

    def text(self) -> tuple[str, bytes]:
        """(kind, YAML bytes) of one case."""
        kind = "one-field" if self.examples and self.rng.random() < 0.5 else "schema"
        doc = self.one_field() if kind == "one-field" else self.manifest()
        body = yaml.safe_dump(doc, sort_keys=False, allow_unicode=True)
        if self.rng.random() < 0.5:
            return kind, body.encode()
        kind, mutate = self.rng.choice(MUTATIONS)
        return kind, mutate(self.rng, body.encode())


def _truncate(rng: random.Random, data: bytes) -> bytes:
    return data[: rng.randint(0, len(data))]


def _flip(rng: random.Random, data: bytes) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        if out:
            out[rng.randrange(len(out))] = rng.randrange(256)
    return bytes(out)


def _non_utf8(rng: random.Random, data: bytes) -> bytes:
    at = rng.randint(0, len(data))
    return data[:at] + rng.choice((b"\xff\xfe", b"\xc3\x28", b"\xed\xa0\x80", b"\x00")) + data[at:]


def _tabs(rng: random.Random, data: bytes) -> bytes:
    return data.replace(b"  ", b"\t", rng.randint(1, 5))


def _duplicate_key(rng: random.Random, data: bytes) -> bytes:
    return data + b"spec: {}\n" if rng.random() < 0.5 else data.replace(b"spec:", b"spec: 1\nspec:")


def _alias_chain(rng: random.Random, data: bytes) -> bytes:
    depth = rng.randint(3, 12)
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [*a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}]" for i in range(1, depth)]
    extra = "\n".join("  " + line for line in lines)
    return data + f"  unknownBomb:\n{extra}\n".encode()


def _deep(rng: random.Random, data: bytes) -> bytes:
    n = rng.choice((50, 500, 5000, 50_000))
    opener, closer = rng.choice(((b"[", b"]"), (b"{a: ", b"}")))
    return data + b"  deep: " + opener * n + b"1" + closer * n + b"\n"


def _huge_scalar(rng: random.Random, data: bytes) -> bytes:
    scalar = rng.choice((b"9" * 5000, b"1e99999", b"-" + b"9" * 400, b".inf", b"0x" + b"f" * 64))
    return data.replace(b"latencyMs:", b"latencyMs: " + scalar + b"\n  was:", 1)


def _recursive_alias(rng: random.Random, data: bytes) -> bytes:
    return data + b"  loop: &l [*l]\n"


def _multi(rng: random.Random, data: bytes) -> bytes:
    return b"\n---\n".join([data] * rng.randint(2, 5)) + rng.choice((b"", b"\n---\n", b"\n...\n"))


MUTATIONS = (
    ("truncated", _truncate),
    ("bytes-flipped", _flip),
    ("non-utf8", _non_utf8),
    ("tabs", _tabs),
    ("duplicate-key", _duplicate_key),
    ("alias-chain", _alias_chain),
    ("deep-nesting", _deep),
    ("huge-scalar", _huge_scalar),
    ("recursive-alias", _recursive_alias),
    ("multi-document", _multi),
)


def run_once(data: bytes) -> tuple[int | None, str, BaseException | None, float]:
    started = time.monotonic()
    result = CliRunner().invoke(main, ["validate", "-"], input=data)
    elapsed = time.monotonic() - started
    exception = result.exception if not isinstance(result.exception, SystemExit) else None
    return result.exit_code, result.output, exception, elapsed


def fuzz(
    cases: int,
    seed: int = 0,
    examples: list[dict[str, Any]] | None = None,
    slow_s: float = 10.0,
    repeat_every: int = 25,
) -> Report:
    """Run `cases` cases; every `repeat_every`-th is run twice to check the verdict is stable.

    `examples`: valid manifests, half the generated cases change one spec field of one."""
    gen = Generator(seed, examples)
    report = Report()
    for index in range(cases):
        kind, data = gen.text()
        code, output, exception, elapsed = run_once(data)
        report.cases += 1
        report.by_kind[kind] = report.by_kind.get(kind, 0) + 1
        report.seconds_total += elapsed
        report.seconds_max = max(report.seconds_max, elapsed)
        problems = []
        if exception is not None:
            problems.append(f"exception {type(exception).__name__}: {exception}")
        if code not in (0, 1):
            problems.append(f"exit status {code}")
        if "Traceback" in output:
            problems.append("traceback in the output")
        documents = data.count(b"\n---") + 1
        if len(output) > MAX_OUTPUT * documents:
            problems.append(f"output of {len(output)} characters for {documents} document(s)")
        if elapsed > slow_s:
            problems.append(f"took {elapsed:.1f} s")
        if not problems and index % repeat_every == 0:
            again = run_once(data)
            if again[0] != code or again[1] != output:
                problems.append("a second run gave another verdict")
        if code == 0:
            report.valid += 1
        elif code == 1:
            report.invalid += 1
        if problems:
            report.violations.append(
                {"case": index, "kind": kind, "problems": problems, "input_head": data[:300].hex()}
            )
    return report
