"""`latencyslo validate FILE...`: check LatencySLO manifests offline, as the API server would.

Every LatencySLO document goes through the steps the API server takes on a create request
(apiextensions-apiserver, with kubectl's default `--validate=strict`), using the CRD that
`slo_operator.crd` generates from the models:

1. unknown fields are errors (strict field validation; a client sending fieldValidation=Ignore
   would have them pruned silently instead);
2. `null`s of non-nullable fields are pruned, then the schema's defaults are applied;
3. the object is checked against the OpenAPI schema (`jsonschema`), the list types
   (`x-kubernetes-list-type` set/map) and the metadata rules the server applies itself;
4. unless step 3 found a type, enum, required or size error (the server's "blocking" errors),
   the CEL rules (`x-kubernetes-validations`) are evaluated with cel-python; transition rules
   (`oldSelf`) only when an old object is given, as on an update.

When all of that passes, the pydantic model is run too, so that a document the operator could
not read never passes. Each problem names the field path in camelCase (`spec.replicas.min`)
and the rule: the CEL expression, the schema keyword, or `unknown field`.

Documents of other kinds (a Deployment next to its LatencySLO) are skipped with a note on
standard error; a document that looks like a LatencySLO but has another apiVersion or a
misspelled kind is an error, so that a typo cannot pass as "skipped".
"""

from __future__ import annotations

import functools
import math
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any

import click
import yaml
from pydantic import ValidationError

from slo_operator import spec
from slo_operator.crd_schema import walk
from slo_operator.validate_cel import cel_problems as cel_problems
from slo_operator.validate_cel import default_problems as default_problems
from slo_operator.validate_schema import INT64, MISSING, Problem, admit, render_path, unique
from slo_operator.validate_schema import NOT_CHECKED as NOT_CHECKED
from slo_operator.validate_schema import is_blocking as is_blocking
from slo_operator.validate_schema import object_schema as object_schema
from slo_operator.validate_schema import schema_problems as schema_problems

ANNOTATIONS_LIMIT = 256 * 1024
"""Bytes of all annotation keys and values together (the API server's limit)."""
REQUEST_LIMIT = 3 * 1024 * 1024
"""Bytes of a request body the API server accepts."""


def server_problems(document: dict[str, Any], old: dict[str, Any] | None = None) -> list[Problem]:
    """Steps 1-4: what the API server would answer to this document (old: an update)."""
    obj = admit(document)
    problems = schema_problems(obj)
    if is_blocking(problems):
        return [*problems, NOT_CHECKED]
    return problems + cel_problems(obj, admit(old) if old is not None else MISSING)


# ------------------------------------------------------------------------- the pydantic model


@functools.cache
def _rule_index() -> list[tuple[tuple[str, ...], dict[str, str]]]:
    index = []
    for path, node in walk(object_schema()):
        for entry in node.get("x-kubernetes-validations", []):
            index.append((tuple(filter(None, path.split("."))), entry))
    return index


def model_problems(document: dict[str, Any]) -> list[Problem]:
    """The pydantic model's verdict, with the CRD's field paths and rules where they match."""
    try:
        spec.LatencySLO.model_validate(document)
    except ValidationError as exc:
        return unique([_from_pydantic(error) for error in exc.errors()])
    return []


def _from_pydantic(error: Any) -> Problem:
    loc = tuple(error["loc"])
    message = str(error["msg"]).removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        path = render_path(loc)
        return Problem(path, f'unknown field "{path}"', "unknown field")
    if error["type"] == "missing":
        return Problem(render_path(loc), "Required value", "required")
    for node, entry in _rule_index():
        if entry["message"] == message and loc[: len(node)] == node:
            field = tuple(filter(None, entry.get("fieldPath", "").split(".")))
            return Problem(render_path(node + field), message, entry["rule"])
    return Problem(render_path(loc), message, f"model: {error['type']}")


def check_document(document: dict[str, Any], old: dict[str, Any] | None = None) -> list[Problem]:
    """Everything `latencyslo validate` reports for one LatencySLO document ([] = valid)."""
    request = request_problems(document)
    if request:
        return request
    document = as_decoded(document)
    old = as_decoded(old) if old is not None else None
    return server_problems(document, old) or model_problems(document)


# ------------------------------------------------------------- 0. the request itself


def expanded_size(value: Any, memo: dict[int, int] | None = None) -> int:
    """About the bytes of `value` as JSON, YAML aliases expanded, in time linear in the YAML.

    An alias is a shared Python object: its size is computed once (memo by id), so a
    "billion laughs" document is measured, never walked out.
    """
    memo = {} if memo is None else memo
    if isinstance(value, dict | list):
        key = id(value)
        if memo.get(key) == -1:
            raise RecursionError("a YAML alias refers to its own parent")
        if key not in memo:
            memo[key] = -1  # in progress: met again below, it is a cycle
            items = value.items() if isinstance(value, dict) else ((None, v) for v in value)
            memo[key] = 2 + sum(
                (len(str(k)) + 4 if k is not None else 0) + expanded_size(v, memo) + 1
                for k, v in items
            )
        return memo[key]
    if isinstance(value, str):
        return len(value.encode("utf-8", "surrogatepass")) + 2
    if isinstance(value, bool) or value is None:
        return 5
    if isinstance(value, int):
        return len(str(value)) if abs(value) < 10**4000 else 4001
    return 24


def _beyond_int64(value: Any) -> bool:
    if isinstance(value, bool) or not isinstance(value, int):
        return False
    return not INT64[0] <= value <= INT64[1]


def _non_json(value: Any, segments: tuple[Any, ...]) -> Iterator[Problem]:
    """NaN and infinities (YAML `.nan`, `.inf`): JSON has no such number, kubectl cannot send
    them; integers beyond what the server can decode."""
    if isinstance(value, dict):
        for key, sub in value.items():
            yield from _non_json(sub, (*segments, key))
    elif isinstance(value, list):
        for index, sub in enumerate(value):
            yield from _non_json(sub, (*segments, index))
    elif isinstance(value, float) and not math.isfinite(value):
        shown = "NaN" if math.isnan(value) else ("+Inf" if value > 0 else "-Inf")
        yield Problem(
            render_path(list(segments)),
            f"Invalid value: {shown}: not a JSON number; kubectl cannot send it to the API server",
            "json number",
        )
    elif _beyond_int64(value):
        try:
            float(value)
        except OverflowError:
            yield Problem(
                render_path(list(segments)),
                "Invalid value: number out of range: the API server cannot decode it",
                "json number",
            )


def request_problems(document: dict[str, Any]) -> list[Problem]:
    """What the API server refuses before looking at the schema: a body over its request
    limit (YAML aliases expanded, as kubectl sends them), numbers JSON cannot carry, and
    annotations over 256 KiB in all."""
    try:
        size = expanded_size(document)
    except RecursionError:
        return [Problem("", "a recursive YAML alias has no JSON form", "request size")]
    if size > REQUEST_LIMIT:
        return [
            Problem(
                "",
                f"Request entity too large: about {size} bytes as JSON (YAML aliases expanded); "
                f"the API server accepts at most {REQUEST_LIMIT} bytes",
                "request size",
            )
        ]
    problems = list(_non_json(document, ()))
    meta = document.get("metadata")
    annotations = meta.get("annotations") if isinstance(meta, dict) else None
    if isinstance(annotations, dict):
        total = sum(len(str(k)) + len(str(v)) for k, v in annotations.items())
        if total > ANNOTATIONS_LIMIT:
            problems.append(
                Problem(
                    "metadata.annotations",
                    f"Too long: must have at most {ANNOTATIONS_LIMIT} bytes",
                    "annotations size",
                )
            )
    return problems


def as_decoded(value: Any) -> Any:
    """The value as the API server decodes the JSON: integers beyond 64 bits become doubles."""
    if isinstance(value, dict):
        return {key: as_decoded(sub) for key, sub in value.items()}
    if isinstance(value, list):
        return [as_decoded(sub) for sub in value]
    if _beyond_int64(value):
        return float(value)
    return value


# ------------------------------------------------------------------------------------- YAML


class _Loader(yaml.SafeLoader):
    """YAML as kubectl reads it: duplicate keys are errors, timestamps stay strings, and
    `1e3` is a number (Go's YAML takes exponents without a dot; PyYAML does not)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)  # type: ignore[no-untyped-call]
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)[eE][-+]?[0-9]+$"),
    list("-+.0123456789"),
)
_Loader.add_constructor("tag:yaml.org,2002:timestamp", yaml.SafeLoader.construct_yaml_str)
# kubectl's YAML (YAML 1.1, go-yaml v2) reads y, Y, n, N as booleans too; PyYAML does not
_Loader.add_implicit_resolver("tag:yaml.org,2002:bool", re.compile(r"^(?:y|Y|n|N)$"), list("yYnN"))
_Loader.bool_values = {**yaml.SafeLoader.bool_values, "y": True, "n": False}


@dataclass(frozen=True)
class Document:
    """One YAML document of an input: its 1-based index and content (or why it is unreadable)."""

    index: int
    content: Any = None
    error: str | None = None


def read_documents(stream: IO[str]) -> Iterator[Document]:
    """The non-empty documents of a multi-document YAML stream; a parse error ends it."""
    index = 0
    try:
        for content in yaml.load_all(stream, Loader=_Loader):
            index += 1
            if content is not None:
                yield Document(index, content)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else "unknown position"
        problem = getattr(exc, "problem", None) or str(exc)
        yield Document(index + 1, error=f"YAML error at {where}: {problem}")
    except ValueError as exc:  # an integer of more than 4300 digits
        yield Document(index + 1, error=f"YAML error: a number out of range ({exc})")
    except RecursionError:
        yield Document(index + 1, error="YAML error: nested too deeply")


# ---------------------------------------------------------------------------------- command


def classify(content: Any) -> str:
    """`latencyslo` (check it), `list` (a v1 List: check its items), or `other` (skip it)."""
    if not isinstance(content, dict):
        return "latencyslo"  # not an object at all: an error, never skipped
    api_version, kind = str(content.get("apiVersion", "")), str(content.get("kind", ""))
    if api_version == "v1" and kind == "List":
        return "list"
    if api_version.split("/")[0] == spec.GROUP or kind.lower() == spec.KIND.lower():
        return "latencyslo"
    return "other"


def describe(content: Any) -> str:
    """`LatencySLO ml/sentiment`, for messages."""
    if not isinstance(content, dict):
        return "not an object"
    meta = content.get("metadata") if isinstance(content.get("metadata"), dict) else {}
    name = meta.get("name") or (f"{meta['generateName']}*" if meta.get("generateName") else "")
    qualified = f"{meta['namespace']}/{name}" if meta.get("namespace") and name else name
    return f"{content.get('kind', '?')} {qualified or '<unnamed>'}".strip()


def problems_of(content: Any, old: dict[str, Any] | None = None) -> list[Problem]:
    """`check_document`, after making sure the document is an object at all."""
    if not isinstance(content, dict):
        return [Problem("", "a document must be a YAML mapping (an object)", "object")]
    return check_document(content, old)


def identity(content: Any) -> tuple[str, str] | None:
    """(namespace, name) of a LatencySLO document, or None."""
    if not isinstance(content, dict) or not isinstance(content.get("metadata"), dict):
        return None
    meta = content["metadata"]
    return (str(meta.get("namespace") or ""), str(meta.get("name") or ""))


def stored_for(
    stored: dict[tuple[str, str], dict[str, Any]], content: Any
) -> dict[str, Any] | None:
    """The stored object a document updates: same namespace and name; a document without a
    namespace matches the one stored object of its name (kubectl fills in the namespace)."""
    key = identity(content)
    if key is None:
        return None
    if key in stored:
        return stored[key]
    same_name = [obj for (ns, name), obj in stored.items() if name == key[1]]
    return same_name[0] if not key[0] and len(same_name) == 1 else None


def stored_objects(streams: tuple[IO[str], ...]) -> dict[tuple[str, str], dict[str, Any]]:
    """The LatencySLOs of `--old` files (`kubectl get -o yaml` output), by (namespace, name)."""
    stored: dict[tuple[str, str], dict[str, Any]] = {}
    for stream in streams:
        for doc in read_documents(stream):
            if doc.error is not None:
                raise click.ClickException(f"{stream.name}: document {doc.index}: {doc.error}")
            kind = classify(doc.content)
            items = (doc.content.get("items") or []) if kind == "list" else [doc.content]
            for content in items:
                key = identity(content)
                if classify(content) == "latencyslo" and key is not None:
                    stored[key] = content
    return stored


@click.command("validate")
@click.argument("files", nargs=-1, required=True, type=click.File("r", encoding="utf-8"))
@click.option(
    "-q", "--quiet", is_flag=True, help="Print only problems, no line per valid document."
)
@click.option(
    "--old",
    "old_files",
    multiple=True,
    type=click.File("r", encoding="utf-8"),
    help=(
        "The stored objects (`kubectl get latencyslo -o yaml`): a document with the same "
        "namespace and name is checked as an update of it, transition rules included "
        "(targetRef is immutable). Repeatable."
    ),
)
def validate_command(
    files: tuple[IO[str], ...], quiet: bool, old_files: tuple[IO[str], ...]
) -> None:
    """Validate LatencySLO manifests offline, as the API server would (`-` reads stdin).

    Multi-document YAML is read document by document; documents of other kinds are skipped
    with a note. Exit status: 0 when every LatencySLO document is valid, 1 otherwise.
    """
    stored = stored_objects(old_files)
    counts = {"valid": 0, "invalid": 0, "skipped": 0}
    for stream in files:
        name = "<stdin>" if stream.name == "<stdin>" else stream.name
        for doc in read_documents(stream):
            where = f"{name}: document {doc.index}"
            if doc.error is not None:
                click.echo(f"{where}: {doc.error}")
                counts["invalid"] += 1
                continue
            kind = classify(doc.content)
            if kind == "other":
                click.echo(f"{where}: skipped {describe(doc.content)} (not a LatencySLO)", err=True)
                counts["skipped"] += 1
                continue
            items = (doc.content.get("items") or []) if kind == "list" else [doc.content]
            for position, content in enumerate(items):
                label = f"{where}, item {position}" if kind == "list" else where
                if kind == "list" and classify(content) == "other":
                    click.echo(f"{label}: skipped {describe(content)} (not a LatencySLO)", err=True)
                    counts["skipped"] += 1
                    continue
                old = stored_for(stored, content)
                label = f"{label} ({describe(content)}{', update' if old is not None else ''})"
                problems = problems_of(content, old)
                counts["invalid" if problems else "valid"] += 1
                for problem in problems:
                    click.echo(f"{label}: {problem}")
                if not problems and not quiet:
                    click.echo(f"{label}: valid")
    summary = ", ".join(f"{n} {what}" for what, n in counts.items())
    if counts["valid"] + counts["invalid"] == 0:
        summary += " (no LatencySLO documents found)"
    click.echo(summary, err=True)
    sys.exit(1 if counts["invalid"] else 0)
