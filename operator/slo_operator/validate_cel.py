"""The CEL rules (`x-kubernetes-validations`) of the generated CRD, evaluated with cel-python as
the API server evaluates them: on an admitted object, transition rules (`oldSelf`) only when an
old object is given, as on an update; and on a schema node's literal `default`, as the server
does when the CRD is created (`default_problems`)."""

from __future__ import annotations

import copy
import functools
from typing import Any

import celpy
from celpy import celtypes

from slo_operator.crd_schema import is_transition_rule
from slo_operator.validate_schema import (
    FORMATS,
    INT64,
    MISSING,
    Problem,
    Schema,
    SchemaValidator,
    field_schema,
    is_date_time,
    is_integer,
    object_schema,
    render_path,
    to_json_schema,
)


def default_problems(node: Schema) -> list[str]:
    """Why the `default` of a schema node would be refused by the API server ([] if fine).

    The server checks the literal default, nested defaults NOT filled in: first against the
    node's schema, then with every CEL rule of the node and of the fields below it that the
    default holds (transition rules with `oldSelf` = the default). A rule that reads a field
    the default leaves out fails there with "no such key" and the whole CRD is refused.
    """
    default = copy.deepcopy(node["default"])
    errors = SchemaValidator(to_json_schema(node), format_checker=FORMATS).iter_errors(default)
    found = [f"{render_path(list(e.absolute_path), node) or '.'}: {e.message}" for e in errors]
    if found:
        return found
    return [str(problem) for problem in cel_problems(default, default, node)]


@functools.cache
def _program(rule: str) -> celpy.Runner:
    env = celpy.Environment()
    return env.program(env.compile(rule))


def to_cel(value: Any, schema: Schema | None) -> Any:
    """A JSON value as the CEL value the API server would bind, typed by the schema."""
    kind = (schema or {}).get("type")
    if value is None:
        return None
    if kind == "integer" and is_integer(None, value) and INT64[0] <= value <= INT64[1]:
        return celtypes.IntType(int(value))
    if kind == "number" and isinstance(value, int | float) and not isinstance(value, bool):
        return celtypes.DoubleType(float(value))
    if kind == "string" and isinstance(value, str):
        if (schema or {}).get("format") == "date-time" and is_date_time(value):
            return celtypes.TimestampType(value)
        return celtypes.StringType(value)
    if isinstance(value, list):
        items = (schema or {}).get("items")
        return celtypes.ListType([to_cel(item, items) for item in value])
    if isinstance(value, dict):
        return celtypes.MapType(
            {celtypes.StringType(k): to_cel(v, field_schema(k, schema)) for k, v in value.items()}
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
        if is_transition_rule(rule):
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
            sub = field_schema(key, schema)
            if sub is not None:
                old_value = old.get(key, MISSING) if isinstance(old, dict) else MISSING
                problems += cel_problems(value, old_value, sub, (*segments, key))
    elif isinstance(obj, list) and "items" in schema:
        for index, value in enumerate(obj):
            problems += cel_problems(value, MISSING, schema["items"], (*segments, index))
    return problems
