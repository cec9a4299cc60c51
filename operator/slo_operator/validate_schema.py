"""The API server's schema steps on a LatencySLO object, offline (see `validate`):

1. unknown fields are errors (strict field validation);
2. `null`s of non-nullable fields are pruned, then the schema's defaults are applied (`admit`);
3. the object is checked against the OpenAPI schema of the generated CRD (`jsonschema`), the
   list types (`x-kubernetes-list-type` set/map) and the metadata rules the server applies
   itself (`schema_problems`); `is_blocking` says whether the server would stop there.

Each problem names the field path in camelCase (`spec.replicas.min`) and the schema keyword.
"""

from __future__ import annotations

import copy
import functools
import json
import re
from dataclasses import dataclass
from typing import Any

import jsonschema

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
INT64 = (-(2**63), 2**63 - 1)
"""The integers the API server decodes as integers (int64)."""


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


def is_integer(_checker: Any, value: Any) -> bool:
    # JSON has one number type: the API server takes 2.0 as the integer 2, never a boolean
    return not isinstance(value, bool) and (
        isinstance(value, int) or (isinstance(value, float) and value.is_integer())
    )


FORMATS = jsonschema.FormatChecker(formats=())


@FORMATS.checks("date-time")
def is_date_time(value: object) -> bool:
    return not isinstance(value, str) or bool(re.match(spec.RFC3339_PATTERN, value))


SchemaValidator = jsonschema.validators.extend(
    jsonschema.Draft4Validator,
    type_checker=jsonschema.Draft4Validator.TYPE_CHECKER.redefine("integer", is_integer),
)


@functools.cache
def _validator() -> Any:
    root = to_json_schema(object_schema())
    root["properties"]["apiVersion"]["enum"] = [spec.API_VERSION]
    root["properties"]["kind"]["enum"] = [spec.KIND]
    root["properties"]["metadata"] = METADATA_SCHEMA
    root["required"] = ["apiVersion", "kind", "metadata", *root.get("required", [])]
    return SchemaValidator(root, format_checker=FORMATS)


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
            sub = field_schema(key, schema)
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
            apply_defaults(value[key], field_schema(key, schema))
    elif isinstance(value, list):
        for item in value:
            apply_defaults(item, schema.get("items"))


def field_schema(key: str, schema: Schema | None) -> Schema | None:
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
    return unique(problems)


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
            problems += list_type_problems(item, field_schema(key, schema), [*segments, key])
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


def unique(problems: list[Problem]) -> list[Problem]:
    return list(dict.fromkeys(problems))


def is_blocking(problems: list[Problem]) -> bool:
    """Whether the API server would skip the CEL rules after these schema problems."""
    return any(p.rule.split(":")[0] in BLOCKING for p in problems)
