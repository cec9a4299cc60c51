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

import copy
import functools
import json
import math
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any

import celpy
import click
import jsonschema
import yaml
from celpy import celtypes
from pydantic import ValidationError

from slo_operator import crd, spec

Schema = dict[str, Any]
MISSING: Any = object()
"""No old object: a create, so transition rules are not evaluated."""


@dataclass(frozen=True)
class Problem:
    """One reason a document is refused."""

    path: str
    """Field path in camelCase, `spec.replicas.min`; `""` for the whole object."""
    message: str
    rule: str
    """The CEL expression, the schema keyword (`minimum: 0`) or `unknown field`."""

    def __str__(self) -> str:
        head = f"{self.path}: " if self.path else ""
        return f"{head}{self.message} [rule: {self.rule}]"


# ------------------------------------------------------------------------ schema of the object


@functools.cache
def object_schema() -> Schema:
    """The served `openAPIV3Schema` of the generated CRD."""
    return crd.served_schema()


# The API server validates metadata itself (the CRD schema may say nothing about it).
METADATA_SCHEMA: Schema = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 253, "pattern": spec.DNS1123_SUBDOMAIN_PATTERN},
        "generateName": {"type": "string", "maxLength": 253},
        "namespace": {"type": "string", "maxLength": 63, "pattern": spec.DNS1123_LABEL_PATTERN},
        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
        "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
        # the rest of ObjectMeta: set by the server or by other controllers, not checked here
        **{
            name: {}
            for name in (
                "uid",
                "resourceVersion",
                "generation",
                "creationTimestamp",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "ownerReferences",
                "finalizers",
                "managedFields",
                "selfLink",
            )
        },
    },
    # strict field validation: an unknown metadata field is an error, as elsewhere
    "additionalProperties": False,
    "anyOf": [{"required": ["name"]}, {"required": ["generateName"]}],
}
ANNOTATIONS_LIMIT = 256 * 1024
"""Bytes of all annotation keys and values together (the API server's limit)."""
REQUEST_LIMIT = 3 * 1024 * 1024
"""Bytes of a request body the API server accepts."""
INT64 = (-(2**63), 2**63 - 1)


def to_json_schema(node: Schema) -> Schema:
    """An OpenAPI v3 (structural) node as Draft 4 JSON Schema, unknown fields refused."""
    out: Schema = {}
    for key, value in node.items():
        if key == "properties":
            out[key] = {name: to_json_schema(prop) for name, prop in value.items()}
        elif key in ("items", "additionalProperties") and isinstance(value, dict):
            out[key] = to_json_schema(value)
        elif key not in ("nullable", "default") and not key.startswith("x-kubernetes-"):
            out[key] = copy.deepcopy(value)
    if node.get("nullable"):
        out["type"] = [node["type"], "null"]
    if "properties" in node:
        out["additionalProperties"] = False
    return out


def _is_integer(_checker: Any, value: Any) -> bool:
    # JSON has one number type: the API server takes 2.0 as the integer 2, never a boolean
    return not isinstance(value, bool) and (
        isinstance(value, int) or (isinstance(value, float) and value.is_integer())
    )


_FORMATS = jsonschema.FormatChecker(formats=())


@_FORMATS.checks("date-time")
def _is_date_time(value: object) -> bool:
    return not isinstance(value, str) or bool(re.match(spec.RFC3339_PATTERN, value))


_Validator = jsonschema.validators.extend(
    jsonschema.Draft4Validator,
    type_checker=jsonschema.Draft4Validator.TYPE_CHECKER.redefine("integer", _is_integer),
)


@functools.cache
def _validator() -> Any:
    root = to_json_schema(object_schema())
    root["properties"]["apiVersion"]["enum"] = [spec.API_VERSION]
    root["properties"]["kind"]["enum"] = [spec.KIND]
    root["properties"]["metadata"] = METADATA_SCHEMA
    root["required"] = ["apiVersion", "kind", "metadata", *root.get("required", [])]
    return _Validator(root, format_checker=_FORMATS)


def render_path(segments: list[Any] | tuple[Any, ...], root: Schema | None = None) -> str:
    """`spec.variants.allowed[1]`, `spec.metrics.labels[tier]`: fields dotted, keys bracketed."""
    node: Schema | None = root if root is not None else object_schema()
    out = ""
    for seg in segments:
        if isinstance(seg, int):
            out += f"[{seg}]"
            node = (node or {}).get("items")
        elif node is not None and seg in node.get("properties", {}):
            out += f".{seg}" if out else str(seg)
            node = node["properties"][seg]
        elif node is not None and isinstance(node.get("additionalProperties"), dict):
            out += f"[{seg}]"
            node = node["additionalProperties"]
        else:
            out += f".{seg}" if out else str(seg)
            node = None
    return out


# ------------------------------------------------------------- 2. prune nulls, apply defaults


def prune_nulls(value: Any, schema: Schema | None) -> None:
    """Drop nulls the schema does not allow and has no default for (in place).

    Subtrees without a schema (unknown fields, which are errors) are not walked.
    """
    if schema is None:
        return
    if isinstance(value, dict):
        for key in list(value):
            sub = _field_schema(key, schema)
            if value[key] is None and sub is not None and not sub.get("nullable"):
                if "default" not in sub:
                    del value[key]
            else:
                prune_nulls(value[key], sub)
    elif isinstance(value, list):
        items = schema.get("items")
        for item in value:
            prune_nulls(item, items)


def apply_defaults(value: Any, schema: Schema | None) -> None:
    """Fill in the schema's defaults, nested ones inside applied defaults too (in place)."""
    if schema is None:
        return
    if isinstance(value, dict):
        for key, prop in schema.get("properties", {}).items():
            if "default" in prop and (
                key not in value or (value[key] is None and not prop.get("nullable"))
            ):
                value[key] = copy.deepcopy(prop["default"])
        for key in value:
            apply_defaults(value[key], _field_schema(key, schema))
    elif isinstance(value, list):
        for item in value:
            apply_defaults(item, schema.get("items"))


def _field_schema(key: str, schema: Schema | None) -> Schema | None:
    if schema is None:
        return None
    if key in schema.get("properties", {}):
        return schema["properties"][key]
    extra = schema.get("additionalProperties")
    return extra if isinstance(extra, dict) else None


def admit(document: dict[str, Any]) -> dict[str, Any]:
    """The object as the API server would validate it: nulls pruned, defaults applied.

    The copy is a tree: a node that YAML shares between two places (an alias) becomes two
    independent nodes, as kubectl's conversion to JSON makes them, so the defaults applied
    under one place never leak into the other.
    """
    obj = _tree_copy(document)
    prune_nulls(obj, object_schema())
    apply_defaults(obj, object_schema())
    return obj


def _tree_copy(node: Any, _path: tuple[int, ...] = ()) -> Any:
    """A deep copy that does not keep sharing (copy.deepcopy would); cycles are refused."""
    if isinstance(node, dict | list):
        if id(node) in _path:
            raise ValueError("recursive YAML alias")
        path = (*_path, id(node))
        if isinstance(node, dict):
            return {key: _tree_copy(value, path) for key, value in node.items()}
        return [_tree_copy(value, path) for value in node]
    return node


def default_problems(node: Schema) -> list[str]:
    """Why the `default` of a schema node would be refused by the API server ([] if fine).

    The server checks the literal default, nested defaults NOT filled in: first against the
    node's schema, then with every CEL rule of the node and of the fields below it that the
    default holds (transition rules with `oldSelf` = the default). A rule that reads a field
    the default leaves out fails there with "no such key" and the whole CRD is refused.
    """
    default = copy.deepcopy(node["default"])
    errors = _Validator(to_json_schema(node), format_checker=_FORMATS).iter_errors(default)
    found = [f"{render_path(list(e.absolute_path), node) or '.'}: {e.message}" for e in errors]
    if found:
        return found
    return [str(problem) for problem in cel_problems(default, default, node)]


# --------------------------------------------------------------------------- 3. schema checks

BLOCKING = frozenset(
    {"type", "enum", "required", "maxLength", "maxItems", "maxProperties", "unknown field"}
)
"""Errors after which the API server does not evaluate the CEL rules."""
NOT_CHECKED = Problem(
    "",
    "some validation rules were not checked because the object was invalid; correct the "
    "existing errors to complete validation",
    "x-kubernetes-validations",
)


def schema_problems(obj: dict[str, Any]) -> list[Problem]:
    """The OpenAPI schema, list types and metadata rules, on an admitted object."""
    problems: list[Problem] = []
    for error in _validator().iter_errors(obj):
        problems += _describe(error)
    problems += list_type_problems(obj, object_schema(), [])
    return _unique(problems)


def _show(value: Any) -> str:
    """A value for a message: containers by type name (as the server shows them), long text cut."""
    if isinstance(value, dict):
        return '"object"'
    if isinstance(value, list):
        return '"array"'
    text = json.dumps(value, default=str)
    return text if len(text) <= 200 else text[:200] + "..."


def _describe(error: jsonschema.ValidationError) -> list[Problem]:
    keyword, expected, value = error.validator, error.validator_value, error.instance
    segments = list(error.absolute_path)
    path = render_path(segments)
    if keyword == "required":
        missing = [name for name in expected if isinstance(value, dict) and name not in value]
        return [Problem(render_path([*segments, n]), "Required value", "required") for n in missing]
    if keyword == "additionalProperties":
        known = error.schema.get("properties", {})
        return [
            Problem(p, f'unknown field "{p}"', "unknown field")
            for p in (render_path([*segments, key]) for key in value if key not in known)
        ]
    if keyword == "anyOf":  # metadata: name or generateName
        return [
            Problem(path + ".name", "Required value: name or generateName is required", "required")
        ]
    rule = f"{keyword}: {expected if isinstance(expected, str) else _show(expected)}"
    if keyword == "type":
        message = f"Invalid value: {_show(value)}: must be of type {expected}"
    elif keyword == "enum":
        supported = ", ".join(_show(v) for v in expected if v is not None)
        message = f"Unsupported value: {_show(value)}: supported values: {supported}"
        rule = "enum"
    elif keyword in ("minimum", "maximum"):
        exclusive = error.schema.get(f"exclusive{keyword[0].upper()}{keyword[1:]}", False)
        side = "greater" if keyword == "minimum" else "less"
        message = f"Invalid value: {_show(value)}: should be {side} than"
        message += f" {expected}" if exclusive else f" or equal to {expected}"
        if exclusive:
            rule = f"exclusive{keyword[0].upper()}{keyword[1:]}: {_show(expected)}"
    elif keyword == "minLength":
        message = f"Invalid value: {_show(value)}: should be at least {expected} chars long"
    elif keyword == "maxLength":
        message = f"Too long: may not be more than {expected} characters"
    elif keyword == "pattern":
        message = f"Invalid value: {_show(value)}: should match '{expected}'"
        rule = f"pattern: {expected}"
    elif keyword == "minItems":
        message = f"Invalid value: {len(value)}: should have at least {expected} items"
    elif keyword in ("maxItems", "maxProperties"):
        message = f"Too many: {len(value)}: must have at most {expected} items"
    elif keyword == "format":
        message = f"Invalid value: {_show(value)}: must be an RFC 3339 date-time"
    else:
        message = error.message
    return [Problem(path, message, rule)]


def list_type_problems(value: Any, schema: Schema | None, segments: list[Any]) -> list[Problem]:
    """Duplicates in `x-kubernetes-list-type: set` and `map` lists."""
    if schema is None:
        return []
    problems: list[Problem] = []
    if isinstance(value, dict):
        for key, item in value.items():
            problems += list_type_problems(item, _field_schema(key, schema), [*segments, key])
    elif isinstance(value, list):
        list_type = schema.get("x-kubernetes-list-type")
        keys = schema.get("x-kubernetes-list-map-keys", [])
        seen: list[Any] = []
        for index, item in enumerate(value):
            if list_type == "set" or (list_type == "map" and isinstance(item, dict)):
                identity = item if list_type == "set" else {k: item.get(k) for k in keys}
                if identity in seen:
                    problems.append(
                        Problem(
                            render_path([*segments, index]),
                            f"Duplicate value: {_show(identity)}",
                            f"x-kubernetes-list-type: {list_type}",
                        )
                    )
                seen.append(identity)
            problems += list_type_problems(item, schema.get("items"), [*segments, index])
    return problems


def _unique(problems: list[Problem]) -> list[Problem]:
    return list(dict.fromkeys(problems))


def is_blocking(problems: list[Problem]) -> bool:
    """Whether the API server would skip the CEL rules after these schema problems."""
    return any(p.rule.split(":")[0] in BLOCKING for p in problems)


# ------------------------------------------------------------------------------ 4. CEL rules


@functools.cache
def _program(rule: str) -> celpy.Runner:
    env = celpy.Environment()
    return env.program(env.compile(rule))


def to_cel(value: Any, schema: Schema | None) -> Any:
    """A JSON value as the CEL value the API server would bind, typed by the schema."""
    kind = (schema or {}).get("type")
    if value is None:
        return None
    if kind == "integer" and _is_integer(None, value) and INT64[0] <= value <= INT64[1]:
        return celtypes.IntType(int(value))
    if kind == "number" and isinstance(value, int | float) and not isinstance(value, bool):
        return celtypes.DoubleType(float(value))
    if kind == "string" and isinstance(value, str):
        if (schema or {}).get("format") == "date-time" and _is_date_time(value):
            return celtypes.TimestampType(value)
        return celtypes.StringType(value)
    if isinstance(value, list):
        items = (schema or {}).get("items")
        return celtypes.ListType([to_cel(item, items) for item in value])
    if isinstance(value, dict):
        return celtypes.MapType(
            {celtypes.StringType(k): to_cel(v, _field_schema(k, schema)) for k, v in value.items()}
        )
    return celpy.json_to_cel(value)


def cel_problems(
    obj: Any, old: Any = MISSING, schema: Schema | None = None, segments: tuple[Any, ...] = ()
) -> list[Problem]:
    """Evaluate every `x-kubernetes-validations` rule on an admitted object (and old object)."""
    schema = object_schema() if schema is None else schema
    problems: list[Problem] = []
    for entry in schema.get("x-kubernetes-validations", []):
        rule = entry["rule"]
        activation = {"self": to_cel(obj, schema)}
        if crd.is_transition_rule(rule):
            if old is MISSING:
                continue
            activation["oldSelf"] = to_cel(old, schema)
        where = render_path([*segments, *filter(None, entry.get("fieldPath", "").split("."))], None)
        try:
            result = _program(rule).evaluate(activation)
        except (celpy.CELEvalError, celpy.CELParseError) as exc:
            problems.append(
                Problem(where, f"{entry['message']} (rule failed: {exc.args[0]})", rule)
            )
            continue
        if isinstance(result, celpy.CELEvalError) or not bool(result):
            problems.append(Problem(where, entry["message"], rule))
    if isinstance(obj, dict):
        for key, value in obj.items():
            sub = _field_schema(key, schema)
            if sub is not None:
                old_value = old.get(key, MISSING) if isinstance(old, dict) else MISSING
                problems += cel_problems(value, old_value, sub, (*segments, key))
    elif isinstance(obj, list) and "items" in schema:
        for index, value in enumerate(obj):
            problems += cel_problems(value, MISSING, schema["items"], (*segments, index))
    return problems


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
    for path, node in crd.walk(object_schema()):
        for entry in node.get("x-kubernetes-validations", []):
            index.append((tuple(filter(None, path.split("."))), entry))
    return index


def model_problems(document: dict[str, Any]) -> list[Problem]:
    """The pydantic model's verdict, with the CRD's field paths and rules where they match."""
    try:
        spec.LatencySLO.model_validate(document)
    except ValidationError as exc:
        return _unique([_from_pydantic(error) for error in exc.errors()])
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
