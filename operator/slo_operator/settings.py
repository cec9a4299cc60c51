"""Operator-wide settings: command-line flags over environment variables over defaults.

Read once at start-up by `latencyslo operator` (never at import time). The names, defaults and
meanings are a contract with the Helm chart (docs/contracts.md, docs/operator.md). Every bad
value is rejected with a message naming the flag and the environment variable.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

DEFAULT_PROMETHEUS_URL = "http://prometheus-operated.monitoring.svc:9090"
DEFAULT_LIVENESS = "http://0.0.0.0:8080/healthz"
DEFAULT_PEERING = "latencyslo"
ANNOTATION_PREFIX = "latencyslo.io"


class SettingsError(ValueError):
    """A setting has a bad value; the message names the flag and the environment variable."""


@dataclass(frozen=True, slots=True)
class Setting:
    """Where one setting comes from."""

    field: str
    flag: str
    env: str | None


SOURCES: tuple[Setting, ...] = (
    Setting("prometheus_url", "--prometheus-url", "LATENCYSLO_PROMETHEUS_URL"),
    Setting("max_replicas", "--max-replicas", "LATENCYSLO_MAX_REPLICAS"),
    Setting("namespaces", "--namespace", "LATENCYSLO_NAMESPACES"),
    Setting("push_timeout_s", "--push-timeout", "LATENCYSLO_PUSH_TIMEOUT_S"),
    Setting("query_timeout_s", "--query-timeout", "LATENCYSLO_QUERY_TIMEOUT_S"),
    Setting("admin_token_secret", "--admin-token-secret", "LATENCYSLO_ADMIN_TOKEN_SECRET"),
    Setting("metrics_port", "--metrics-port", "LATENCYSLO_METRICS_PORT"),
    Setting("liveness", "--liveness", None),
    Setting("max_data_age_s", "--max-data-age", "LATENCYSLO_MAX_DATA_AGE_S"),
    Setting("profiles", "--profiles", "LATENCYSLO_PROFILES"),
    Setting("peering", "--peering", "LATENCYSLO_PEERING"),
    Setting("standalone", "--standalone", "LATENCYSLO_STANDALONE"),
    Setting("target_label", "--target-label", "LATENCYSLO_TARGET_LABEL"),
    Setting("query_share_s", "--query-share", "LATENCYSLO_QUERY_SHARE_S"),
    Setting("scrape_interval_s", "--scrape-interval", "LATENCYSLO_SCRAPE_INTERVAL_S"),
    Setting("look_interval_s", "--look-interval", "LATENCYSLO_LOOK_INTERVAL_S"),
    Setting(
        "prometheus_concurrency", "--prometheus-concurrency", "LATENCYSLO_PROMETHEUS_CONCURRENCY"
    ),
    Setting("prometheus_max_mib", "--prometheus-max-mib", "LATENCYSLO_PROMETHEUS_MAX_MIB"),
    Setting("max_concurrent_steps", "--max-concurrent-steps", "LATENCYSLO_MAX_CONCURRENT_STEPS"),
    Setting("shard_id", "--shard-id", "LATENCYSLO_SHARD_ID"),
)


@dataclass(frozen=True, slots=True)
class OperatorSettings:
    """Everything `latencyslo operator` can be told; defaults are the documented ones."""

    prometheus_url: str = DEFAULT_PROMETHEUS_URL
    """Prometheus HTTP API base URL (operator-wide; never a field of a LatencySLO)."""
    max_replicas: int = 32
    """Hard cap on replicas: a LatencySLO's replicas.max is clamped to it."""
    namespaces: tuple[str, ...] = ()
    """Namespaces to watch; empty means the whole cluster."""
    push_timeout_s: float = 2.0
    """Timeout of one push to a pod's admin API (connect + response)."""
    query_timeout_s: float = 5.0
    """Timeout of one Prometheus query."""
    admin_token_secret: str = "latencyslo-admin-token"
    """Name of the Secret (key `token`) holding the workers' admin bearer token."""
    metrics_port: int = 9102
    """Port of the operator's own /metrics (0 disables it)."""
    liveness: str | None = DEFAULT_LIVENESS
    """kopf's liveness endpoint; empty disables it."""
    max_data_age_s: float = 60.0
    """Newest latency sample older than this -> the observation counts as stale (no data)."""
    profiles: str | None = None
    """Calibrated ProfileSet JSON; None = the packaged default profile."""
    peering: str = DEFAULT_PEERING
    """kopf peering name: one active operator replica per name."""
    peering_mandatory: bool = False
    """True when the peering name was given explicitly: the peering resource must exist."""
    standalone: bool = False
    """No peering at all (single replica, or tests)."""
    target_label: str = "deployment"
    """Label naming a series' Deployment (the chart's PodMonitor attaches it): queries select
    `<label>="<targetRef.name>"` unless `metrics.labels` sets it; empty = the whole namespace."""
    query_share_s: float = 7.5
    """LatencySLOs of one query group whose steps fall in the same cell of this many seconds
    share one evaluation (0 = evaluate at each step's instant)."""
    scrape_interval_s: float = 15.0
    """How often Prometheus scrapes the workers (the chart's PodMonitor: 5 s): the shortest
    rate ranges the controller uses span two scrapes of it."""
    look_interval_s: float = 5.0
    """Seconds between two looks at the metrics between steps (never shorter than the scrape
    interval): a clear breach that a step would answer with replicas or a faster variant is
    answered at once (`Controller.urgent`); 0 = no looks."""
    prometheus_concurrency: int = 4
    """Prometheus queries in flight at most, shared round-robin between query groups."""
    prometheus_max_mib: int = 16
    """Largest Prometheus answer read, MiB; a larger one fails that query."""
    max_concurrent_steps: int = 16
    """Control steps running at once at most (API server reads/writes and pod pushes
    included), shared round-robin between namespaces."""
    shard_id: str | None = None
    """This operator's identity in the namespace claims (`slo_operator.shards`): with it, each
    watched namespace is claimed at start-up and an overlap with another operator's namespaces
    stops the start; None = no claims. Needs `namespaces`."""

    @property
    def clusterwide(self) -> bool:
        return not self.namespaces


def _source_label(setting: Setting) -> str:
    return f"{setting.flag}" + (f" / ${setting.env}" if setting.env else "")


def _to_int(raw: Any, setting: Setting, *, minimum: int, maximum: int) -> int:
    try:
        value = int(str(raw).strip())
    except ValueError:
        raise SettingsError(f"{_source_label(setting)}: {raw!r} is not an integer") from None
    if not minimum <= value <= maximum:
        raise SettingsError(
            f"{_source_label(setting)}: {value} is out of range {minimum}..{maximum}"
        )
    return value


def _to_seconds(raw: Any, setting: Setting, *, maximum: float) -> float:
    try:
        value = float(str(raw).strip())
    except ValueError:
        raise SettingsError(f"{_source_label(setting)}: {raw!r} is not a number") from None
    if not (math.isfinite(value) and 0 < value <= maximum):
        raise SettingsError(
            f"{_source_label(setting)}: {value} must be a number of seconds in (0, {maximum}]"
        )
    return value


def _to_seconds_or_zero(raw: Any, setting: Setting, *, maximum: float) -> float:
    text = str(raw).strip()
    try:
        if float(text) == 0:
            return 0.0
    except ValueError:
        pass
    return _to_seconds(raw, setting, maximum=maximum)


def _to_bool(raw: Any, setting: Setting) -> bool:
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("", "0", "false", "no", "off"):
        return False
    raise SettingsError(f"{_source_label(setting)}: {raw!r} is not a boolean (true/false)")


def _to_url(raw: Any, setting: Setting) -> str:
    text = str(raw).strip().rstrip("/")
    if not (text.startswith("http://") or text.startswith("https://")) or len(text) < 10:
        raise SettingsError(f"{_source_label(setting)}: {raw!r} is not an http(s) URL")
    return text


_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_SHARD_ID = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9._/]*[A-Za-z0-9])?$")


def _to_namespaces(raw: Any, setting: Setting) -> tuple[str, ...]:
    items = [raw] if isinstance(raw, str) else list(raw)
    names: list[str] = []
    for item in items:
        for part in str(item).split(","):
            name = part.strip()
            if not name:
                continue
            if len(name) > 63 or not _DNS_LABEL.match(name):
                raise SettingsError(f"{_source_label(setting)}: {name!r} is not a namespace name")
            if name not in names:
                names.append(name)
    return tuple(names)


def load_settings(
    flags: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None
) -> OperatorSettings:
    """Merge flags (None = not given) over environment variables over defaults.

    `flags` is keyed by field name (what the click command passes); `environ` defaults to
    `os.environ`, read now.
    """
    flags = dict(flags or {})
    environ = os.environ if environ is None else environ
    known = {f.name for f in fields(OperatorSettings)}
    unknown = set(flags) - known
    if unknown:
        raise SettingsError(f"unknown settings: {', '.join(sorted(unknown))}")

    raw: dict[str, Any] = {}
    for setting in SOURCES:
        value = flags.get(setting.field)
        if value in (None, ()) and setting.env and setting.env in environ:
            value = environ[setting.env]
        if value in (None, ()):
            continue
        raw[setting.field] = (setting, value)

    values: dict[str, Any] = {}
    for name, (setting, value) in raw.items():
        if name == "prometheus_url":
            values[name] = _to_url(value, setting)
        elif name == "max_replicas":
            values[name] = _to_int(value, setting, minimum=1, maximum=10_000)
        elif name == "namespaces":
            values[name] = _to_namespaces(value, setting)
        elif name in ("push_timeout_s", "query_timeout_s"):
            values[name] = _to_seconds(value, setting, maximum=60.0)
        elif name == "max_data_age_s":
            values[name] = _to_seconds(value, setting, maximum=3600.0)
        elif name == "metrics_port":
            values[name] = _to_int(value, setting, minimum=0, maximum=65535)
        elif name == "admin_token_secret":
            text = str(value).strip()
            if not text or len(text) > 253:
                raise SettingsError(f"{_source_label(setting)}: {value!r} is not a Secret name")
            values[name] = text
        elif name == "liveness":
            text = str(value).strip()
            values[name] = _to_url(text, setting) if text else None
        elif name == "profiles":
            text = str(value).strip()
            if text and not os.path.isfile(text):
                raise SettingsError(f"{_source_label(setting)}: no such file {text!r}")
            values[name] = text or None
        elif name == "peering":
            text = str(value).strip()
            if not text or len(text) > 253 or not _DNS_LABEL.match(text):
                raise SettingsError(f"{_source_label(setting)}: {value!r} is not a peering name")
            values[name] = text
            values["peering_mandatory"] = True
        elif name == "standalone":
            values[name] = _to_bool(value, setting)
        elif name == "target_label":
            text = str(value).strip()
            if text and (not re.match(r"^[a-zA-Z_][a-zA-Z0-9_]*$", text) or text.startswith("__")):
                raise SettingsError(f"{_source_label(setting)}: {value!r} is not a label name")
            if text in ("namespace", "le"):
                raise SettingsError(f"{_source_label(setting)}: {text!r} is reserved")
            values[name] = text
        elif name in ("query_share_s", "look_interval_s"):
            values[name] = _to_seconds_or_zero(value, setting, maximum=300.0)
        elif name == "scrape_interval_s":
            values[name] = _to_seconds(value, setting, maximum=300.0)
        elif name == "prometheus_concurrency":
            values[name] = _to_int(value, setting, minimum=1, maximum=256)
        elif name == "prometheus_max_mib":
            values[name] = _to_int(value, setting, minimum=1, maximum=1024)
        elif name == "max_concurrent_steps":
            values[name] = _to_int(value, setting, minimum=1, maximum=4096)
        elif name == "shard_id":
            text = str(value).strip()
            if len(text) > 253 or not _SHARD_ID.match(text):
                raise SettingsError(
                    f"{_source_label(setting)}: {value!r} is not a shard identity "
                    "(letters, digits, '-', '.', '_', '/', at most 253)"
                )
            values[name] = text
    if values.get("shard_id") and not values.get("namespaces"):
        raise SettingsError(
            "--shard-id / $LATENCYSLO_SHARD_ID needs --namespace / $LATENCYSLO_NAMESPACES: "
            "a cluster-wide operator watches every namespace and cannot be one shard of several"
        )
    return OperatorSettings(**values)


def describe(settings: OperatorSettings) -> list[tuple[str, str]]:
    """(flag, value) pairs for the start-up log line."""
    rows: list[tuple[str, str]] = []
    for setting in SOURCES:
        value = getattr(settings, setting.field)
        if isinstance(value, Sequence) and not isinstance(value, str):
            value = ",".join(value) or "(all)"
        rows.append((setting.flag, str(value)))
    return rows
