"""The wire conventions of the LatencySLO API shared by its spec and status models: the API's
names and limits, values read the way the API server reads them (numbers and booleans never
parsed from strings, RFC 3339 timestamps), and the model base class (camelCase on the wire,
unknown fields rejected, `null` of a non-nullable field taken as omitted)."""

from __future__ import annotations

import re
import types
from datetime import datetime
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, BeforeValidator, ConfigDict, model_validator
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError

GROUP = "latencyslo.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "LatencySLO"
PLURAL = "latencyslos"
SINGULAR = "latencyslo"
SHORT_NAMES = ("lslo",)
CATEGORIES = ("all", "latencyslo")

VARIANTS: tuple[str, ...] = ("full", "quantized", "distilled")
"""Every variant name the API knows, best quality first (the default degrade order)."""

VariantName = Literal["full", "quantized", "distilled"]

HISTORY_LIMIT = 20

# Prometheus naming rules: https://prometheus.io/docs/concepts/data_model/
METRIC_NAME_PATTERN = r"^[a-zA-Z_:][a-zA-Z0-9_:]*$"
LABEL_NAME_PATTERN = r"^[a-zA-Z_][a-zA-Z0-9_]*$"
DNS1123_SUBDOMAIN_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
DNS1123_LABEL_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
RFC3339_PATTERN = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?"
    r"([Zz]|[+-][0-9]{2}:[0-9]{2})$"
)
"""A `format: date-time` string as the API server accepts it in status."""

LABELS_LIMIT = 16
LABEL_NAME_MAX = 100
CONDITIONS_LIMIT = 16


# ---------------------------------------------------------------------- value types (wire)


def api_int(value: Any) -> Any:
    if isinstance(value, bool | str | bytes):
        raise PydanticCustomError("int_type", "Input should be a valid integer")
    return value


def api_float(value: Any) -> Any:
    if isinstance(value, bool | str | bytes):
        raise PydanticCustomError("float_type", "Input should be a valid number")
    return value


def api_bool(value: Any) -> Any:
    if isinstance(value, str | bytes | int | float) and not isinstance(value, bool):
        raise PydanticCustomError("bool_type", "Input should be a valid boolean")
    return value


_RFC3339 = re.compile(RFC3339_PATTERN)
LABEL_NAME = re.compile(LABEL_NAME_PATTERN)


def _timestamp(value: Any) -> Any:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str) and _RFC3339.match(value):
        return value
    raise PydanticCustomError(
        "datetime_type", "Input should be an RFC 3339 timestamp such as 2024-05-01T12:00:00Z"
    )


ApiInt = Annotated[int, BeforeValidator(api_int)]
"""An integer as the API server reads it: no strings, no booleans; 2.0 is 2."""
ApiFloat = Annotated[float, BeforeValidator(api_float)]
"""A number as the API server reads it: no strings, no booleans."""
ApiBool = Annotated[bool, BeforeValidator(api_bool)]
"""A boolean as the API server reads it: true or false only."""
Timestamp = Annotated[datetime, BeforeValidator(_timestamp)]
"""A `format: date-time` field: an RFC 3339 string on the wire."""


def _admits_none(annotation: Any) -> bool:
    if annotation is None or annotation is type(None) or annotation is Any:
        return True
    origin = get_origin(annotation)
    if origin is Annotated:
        return _admits_none(get_args(annotation)[0])
    if origin is Union or origin is types.UnionType:
        return any(_admits_none(arg) for arg in get_args(annotation))
    if origin is Literal:
        return None in get_args(annotation)
    return False


class ApiModel(BaseModel):
    """Base: camelCase on the wire, unknown fields rejected, assignment validated."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        validate_assignment=True,
        frozen=False,
    )

    @model_validator(mode="before")
    @classmethod
    def _prune_nulls(cls, data: Any) -> Any:
        """Drop `null` where the field is not nullable, as the API server does before defaulting."""
        if not isinstance(data, dict):
            return data
        pruned = dict(data)
        for keys, admits_none, map_admits_none in _prune_plan(cls):
            for key in keys:
                if key not in pruned:
                    continue
                value = pruned[key]
                if value is None and not admits_none:
                    del pruned[key]
                elif isinstance(value, dict) and map_admits_none is False:
                    pruned[key] = {k: v for k, v in value.items() if v is not None}
        return pruned


_PRUNE_PLANS: dict[type, tuple[tuple[tuple[str, ...], bool, bool | None], ...]] = {}


def _prune_plan(cls: type[BaseModel]) -> tuple[tuple[tuple[str, ...], bool, bool | None], ...]:
    """Per field of `cls`, once: (its name and alias, whether it admits null, whether a
    mapping field's values admit null, None when it is no mapping). `_prune_nulls` runs at
    every assignment (validate_assignment): working this out each time was a tenth of the
    operator's CPU at a thousand LatencySLOs."""
    plan = _PRUNE_PLANS.get(cls)
    if plan is None:
        plan = tuple(
            (
                tuple({name, field.alias or name}),
                _admits_none(field.annotation),
                _admits_none(get_args(field.annotation)[1])
                if get_origin(field.annotation) is dict
                else None,
            )
            for name, field in cls.model_fields.items()
        )
        _PRUNE_PLANS[cls] = plan
    return plan


def cel_rule(rule: str, message: str, field_path: str | None = None) -> dict[str, str]:
    entry = {"rule": rule, "message": message}
    if field_path:
        entry["fieldPath"] = field_path
    return entry
