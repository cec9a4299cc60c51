"""Pydantic models to structural OpenAPI v3 schemas, as a CustomResourceDefinition needs them.

The models' JSON Schema (pydantic, draft 2020-12) becomes a structural OpenAPI v3 schema:
`$ref`s are inlined, `X | None` becomes `nullable: true` in status (in spec, `null` means
"omitted": the API server prunes it and applies the default, so spec fields are never
nullable), `const` becomes a one-value `enum`, numeric exclusive bounds take the OpenAPI 3.0
boolean form, `additionalProperties: false` is dropped (structural schemas prune instead),
default factories become defaults (a nested object's default written out in full: the API
server evaluates CEL rules against the literal default, nested defaults not filled in),
and the models' `x-kubernetes-*` extensions (CEL rules, list types) are kept as they are.
Status has no defaults: it holds what the operator wrote, nothing else.

Anything the conversion does not know (patternProperties, oneOf, ...) is an error rather than
a silently different CRD. Also here: walking a structural schema (`walk`, `schema_at`) and
telling transition rules (`oldSelf`) apart, which the CRD lint, the offline validation and the
reference tables share.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema
from pydantic_core import core_schema

Schema = dict[str, Any]

# Keywords a structural schema may carry here, in the order they are written out. Others
# (patternProperties, oneOf, $ref, ...) are either refused by the API server or not needed.
KEYWORD_ORDER = (
    "description",
    "type",
    "format",
    "nullable",
    "enum",
    "default",
    "minimum",
    "exclusiveMinimum",
    "maximum",
    "exclusiveMaximum",
    "minLength",
    "maxLength",
    "pattern",
    "minItems",
    "maxItems",
    "minProperties",
    "maxProperties",
    "required",
    "properties",
    "items",
    "additionalProperties",
    "x-kubernetes-list-type",
    "x-kubernetes-list-map-keys",
    "x-kubernetes-map-type",
    "x-kubernetes-validations",
)
SCHEMA_KEYWORDS = frozenset(KEYWORD_ORDER)
_RULE_KEYS = ("rule", "message", "messageExpression", "fieldPath", "reason")
TYPES = frozenset({"object", "array", "string", "integer", "number", "boolean"})


class UnsupportedSchema(ValueError):
    """A model uses a JSON Schema construct that has no structural OpenAPI form."""


class _WithFactoryDefaults(GenerateJsonSchema):
    """Report `default_factory` defaults too, a model's written out in full.

    A nested object's default is the whole default object (`{min: 1, max: 8}`), never `{}`:
    the API server evaluates every CEL rule against the literal `default` of its field, without
    the nested defaults filled in, so `self.min <= self.max` on a `{}` default fails with "no
    such key" and the CRD is refused (`lint_crd` checks this offline).
    """

    def get_default_value(self, schema: core_schema.WithDefaultSchema) -> Any:
        factory = schema.get("default_factory")
        if factory is not None and not schema.get("default_factory_takes_data"):
            value = factory()  # type: ignore[call-arg]
            if isinstance(value, BaseModel):
                return value.model_dump(mode="json", by_alias=True, exclude_none=True)
            return value
        return super().get_default_value(schema)


def model_json_schema(model: type[BaseModel]) -> Schema:
    """The model's pydantic JSON Schema, by alias, with default-factory defaults."""
    return model.model_json_schema(by_alias=True, schema_generator=_WithFactoryDefaults)


def to_structural(model: type[BaseModel], *, in_status: bool) -> Schema:
    """The structural OpenAPI v3 schema of `model` (see the module docstring)."""
    root = model_json_schema(model)
    defs = root.pop("$defs", {})
    return _ordered(_convert(root, defs, in_status=in_status, where=model.__name__))


def _convert(node: Schema, defs: dict[str, Schema], *, in_status: bool, where: str) -> Schema:
    node = dict(node)
    ref = node.pop("$ref", None)
    if ref is not None:
        target = defs[ref.removeprefix("#/$defs/")]
        node = {**target, **node}  # the field's own description/default win over the model's
    nullable = False
    if "anyOf" in node:
        branches = [b for b in node.pop("anyOf") if b != {"type": "null"}]
        if len(branches) != 1:
            raise UnsupportedSchema(f"{where}: only `X | None` unions have a structural form")
        nullable = True
        branch = branches[0]
        if "$ref" in branch:
            branch = {**defs[branch["$ref"].removeprefix("#/$defs/")]}
        node = {**branch, **node}
    out: Schema = {}
    for key, value in node.items():
        if key in ("title", "$defs"):
            continue
        if key == "const":
            out["enum"] = [value]
        elif key in ("ge", "le"):  # an annotated-types bound inside `X | None`, left raw
            out["minimum" if key == "ge" else "maximum"] = value
        elif key in ("exclusiveMinimum", "exclusiveMaximum") and not isinstance(value, bool):
            out[key.replace("exclusiveM", "m")] = value
            out[key] = True
        elif key == "additionalProperties":
            if isinstance(value, dict):
                out[key] = _convert(value, defs, in_status=in_status, where=f"{where}[*]")
            # `false` (pydantic's extra="forbid"): structural schemas prune unknown fields
        elif key == "properties":
            out[key] = {
                name: _convert(prop, defs, in_status=in_status, where=f"{where}.{name}")
                for name, prop in value.items()
            }
        elif key == "items":
            out[key] = _convert(value, defs, in_status=in_status, where=f"{where}[]")
        elif key == "default":
            if value is not None and not in_status:
                out[key] = value
        elif key in SCHEMA_KEYWORDS:
            out[key] = copy.deepcopy(value)
        else:
            raise UnsupportedSchema(f"{where}: '{key}' has no structural OpenAPI form")
    if nullable and in_status:
        out["nullable"] = True
        if "enum" in out:
            out["enum"] = [*out["enum"], None]  # OpenAPI 3.0: a nullable enum lists null
    if "type" not in out and "enum" in out:
        out["type"] = "string"
    return out


def _ordered(node: Any) -> Any:
    """Keys in a fixed, readable order (properties keep the models' field order)."""
    if isinstance(node, list):
        return [_ordered(item) for item in node]
    if not isinstance(node, dict):
        return node
    keys = sorted(node, key=lambda k: KEYWORD_ORDER.index(k) if k in SCHEMA_KEYWORDS else 99)
    out: Schema = {}
    for key in keys:
        value = node[key]
        if key == "properties":
            out[key] = {name: _ordered(prop) for name, prop in value.items()}
        elif key in ("items", "additionalProperties"):
            out[key] = _ordered(value)
        elif key == "x-kubernetes-validations":
            out[key] = [{k: rule[k] for k in _RULE_KEYS if k in rule} for rule in value]
        else:
            out[key] = value
    return out


# ------------------------------------------------------------------------------- walking


def walk(node: Schema, path: str = "") -> Iterator[tuple[str, Schema]]:
    """Every schema node with its path (`.spec.replicas`, `.spec.variants.allowed[]`, ...)."""
    yield path, node
    for name, prop in node.get("properties", {}).items():
        yield from walk(prop, f"{path}.{name}")
    if isinstance(node.get("items"), dict):
        yield from walk(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        yield from walk(node["additionalProperties"], f"{path}[*]")


_TRANSITION = re.compile(r"\boldSelf\b")


def is_transition_rule(rule: str) -> bool:
    """A rule that compares with the stored object (`oldSelf`): checked on update only."""
    return bool(_TRANSITION.search(rule))


def schema_at(root: Schema, json_path: str) -> Schema | None:
    """The schema node at a simple `.a.b.c` path, or None."""
    node: Schema | None = root
    for part in filter(None, json_path.split(".")):
        node = (node or {}).get("properties", {}).get(part)
        if node is None:
            return None
    return node
