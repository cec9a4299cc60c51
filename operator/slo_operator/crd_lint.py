"""Offline lint of a CustomResourceDefinition: what the API server would refuse (structural
schema, defaults checked against their own schema and CEL rules, rules that compile and are
bounded in cost, printer columns that point at fields) and our own rules (every field
described, no defaults in status)."""

from __future__ import annotations

import re
from typing import Any

import celpy

from slo_operator.crd_schema import SCHEMA_KEYWORDS, TYPES, Schema, schema_at, walk
from slo_operator.validate_cel import default_problems


def lint_crd(crd: dict[str, Any]) -> list[str]:
    """Problems the API server would refuse or that break our own rules; [] when none."""
    problems: list[str] = []
    names = crd["spec"]["names"]
    if crd["metadata"]["name"] != f"{names['plural']}.{crd['spec']['group']}":
        problems.append("metadata.name must be <plural>.<group>")
    versions = crd["spec"]["versions"]
    if sum(1 for v in versions if v.get("storage")) != 1:
        problems.append("exactly one version must be the storage version")
    for version in versions:
        root = version["schema"]["openAPIV3Schema"]
        where = f"versions[{version['name']}]"
        problems += [f"{where}: {p}" for p in _lint_schema(root)]
        problems += [f"{where}: {p}" for p in _lint_columns(root, version)]
    return problems


def _lint_schema(root: Schema) -> list[str]:
    problems: list[str] = []
    if set(root) - {"description", "type", "properties", "required"}:
        problems.append("root: only description, type, properties, required are allowed")
    if root.get("nullable"):
        problems.append("root: nullable cannot be true at the root")
    if root["properties"].get("metadata") != {"type": "object"}:
        problems.append(".metadata: must be exactly {type: object} (the API server owns it)")
    for path, node in walk(root):
        here = path or "root"
        for key in node:
            if key not in SCHEMA_KEYWORDS:
                problems.append(f"{here}: '{key}' is not allowed in this structural schema")
        if node.get("type") not in TYPES:
            problems.append(f"{here}: every node needs a type, one of {sorted(TYPES)}")
        if "properties" in node and "additionalProperties" in node:
            problems.append(f"{here}: properties and additionalProperties are mutually exclusive")
        for key in ("exclusiveMinimum", "exclusiveMaximum"):
            if key in node and not isinstance(node[key], bool):
                problems.append(f"{here}: {key} must be a boolean in OpenAPI v3.0")
        for name in node.get("required", []):
            if name not in node.get("properties", {}):
                problems.append(f"{here}: required '{name}' is not a property")
        for name, prop in node.get("properties", {}).items():
            if path and not prop.get("description"):
                problems.append(f"{path}.{name}: every field needs a description")
        if "default" in node:
            problems += [f"{here}: default {p}" for p in default_problems(node)]
        if node.get("x-kubernetes-list-type") == "map":
            item = node.get("items", {})
            for key in node.get("x-kubernetes-list-map-keys", []):
                if key not in item.get("required", []) and "default" not in item.get(
                    "properties", {}
                ).get(key, {}):
                    problems.append(f"{here}: list-map key '{key}' must be required")
        for rule in node.get("x-kubernetes-validations", []):
            problems += [f"{here}: {p}" for p in _lint_rule(rule, node, path)]
        if path.startswith(".status") and "default" in node:
            problems.append(f"{here}: status fields carry no defaults")
    return problems


def _lint_rule(rule: dict[str, str], node: Schema, path: str) -> list[str]:
    problems: list[str] = []
    if not rule.get("message"):
        problems.append(f"rule {rule['rule']!r} needs a message")
    try:
        celpy.Environment().compile(rule["rule"])
    except celpy.CELParseError as exc:
        problems.append(f"rule {rule['rule']!r} does not compile: {exc}")
    field_path = rule.get("fieldPath")
    if field_path and field_path.lstrip(".") not in node.get("properties", {}):
        problems.append(f"fieldPath {field_path} is not a property of this node")
    # Cost: everything a rule can iterate or scan must be bounded, or the API server's cost
    # estimate (which assumes the largest request) exceeds the budget.
    for sub_path, sub in walk(node, path):
        kind = sub.get("type")
        if kind == "array" and "maxItems" not in sub:
            problems.append(f"{sub_path}: a list under a CEL rule needs maxItems")
        if kind == "object" and "additionalProperties" in sub and "maxProperties" not in sub:
            problems.append(f"{sub_path}: a map under a CEL rule needs maxProperties")
        if kind == "string" and "maxLength" not in sub and "enum" not in sub:
            problems.append(f"{sub_path}: a string under a CEL rule needs maxLength or enum")
    return problems


_COLUMN_TYPES = frozenset({"integer", "number", "string", "boolean", "date"})
_FILTER = re.compile(
    r'^(?P<list>[.\w]+)\[\?\(@\.(?P<key>\w+)=="(?P<value>[^"]*)"\)\](?P<rest>[.\w]*)$'
)


def _lint_columns(root: Schema, version: dict[str, Any]) -> list[str]:
    problems: list[str] = []
    for column in version.get("additionalPrinterColumns", []):
        name, json_path = column["name"], column["jsonPath"]
        if column["type"] not in _COLUMN_TYPES:
            problems.append(f"column {name}: type must be one of {sorted(_COLUMN_TYPES)}")
        if json_path == ".metadata.creationTimestamp":
            continue
        match = _FILTER.match(json_path)
        if match:
            target = schema_at(root, match["list"])
            item = (target or {}).get("items", {})
            leaf = schema_at(item, match["rest"]) if item else None
            if target is None or match["key"] not in item.get("properties", {}) or leaf is None:
                problems.append(f"column {name}: {json_path} does not match the schema")
        elif schema_at(root, json_path) is None:
            problems.append(f"column {name}: {json_path} is not a field of the schema")
    return problems
