"""The operator's batching, concurrency and sharding settings in the chart.

Each value reaches the operator container as the environment variable the operator reads, and
the operator's own settings loader accepts what the chart renders (the chart and the command
share one contract). Sharding: in namespace-scoped mode each release claims its namespaces
under "<release namespace>/<operator fullname>", with exactly the Lease rights that needs.
"""

from __future__ import annotations

from typing import Any

import helm_python as helm
import pytest

from slo_operator.settings import OperatorSettings, load_settings
from slo_operator.shards import LEASE_NAME
from tests.unit.helm.render import CHART_DIR, NAMESPACE, RELEASE, find, one, render_objects

OPERATOR = f"{RELEASE}-operator"
LEASE_RULES = [
    {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create"]},
    {
        "apiGroups": ["coordination.k8s.io"],
        "resources": ["leases"],
        "resourceNames": [LEASE_NAME],
        "verbs": ["get", "update", "delete"],
    },
]
FLAGS = {
    "targetLabel": "LATENCYSLO_TARGET_LABEL",
    "queryShareSeconds": "LATENCYSLO_QUERY_SHARE_S",
    "lookIntervalSeconds": "LATENCYSLO_LOOK_INTERVAL_S",
    "prometheusConcurrency": "LATENCYSLO_PROMETHEUS_CONCURRENCY",
    "prometheusMaxMiB": "LATENCYSLO_PROMETHEUS_MAX_MIB",
    "maxConcurrentSteps": "LATENCYSLO_MAX_CONCURRENT_STEPS",
}


def operator_env(values: dict[str, Any]) -> dict[str, str]:
    deployment = one(render_objects(values), "Deployment", OPERATOR)
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e["value"] for e in container["env"] if "value" in e}


def settings_from(env: dict[str, str]) -> OperatorSettings:
    """What `latencyslo operator` makes of the rendered environment (no flags given)."""
    return load_settings({}, environ={k: v for k, v in env.items() if k.startswith("LATENCYSLO_")})


def test_defaults_are_the_operators_defaults() -> None:
    env = operator_env({})
    for variable in FLAGS.values():
        assert variable in env
    settings = settings_from(env)
    defaults = OperatorSettings()
    for name in (
        "target_label",
        "query_share_s",
        "scrape_interval_s",
        "look_interval_s",
        "prometheus_concurrency",
        "prometheus_max_mib",
        "max_concurrent_steps",
    ):
        assert getattr(settings, name) == getattr(defaults, name), name


@pytest.mark.parametrize(
    ("values", "expect"),
    [
        pytest.param({}, 15.0, id="no-pod-monitor: prometheus-usual-15s"),
        pytest.param(
            {"monitoring": {"podMonitor": {"enabled": True}}},
            5.0,
            id="the-chart's-pod-monitor: its-5s",
        ),
        pytest.param(
            {"monitoring": {"podMonitor": {"enabled": True, "interval": "10s"}}},
            10.0,
            id="its-interval-in-seconds",
        ),
        pytest.param(
            {"monitoring": {"podMonitor": {"enabled": True, "interval": "1m"}}},
            15.0,
            id="not-whole-seconds: the-usual-15s",
        ),
        pytest.param(
            {
                "operator": {"scrapeIntervalSeconds": 30},
                "monitoring": {"podMonitor": {"enabled": True}},
            },
            30.0,
            id="given: it-wins",
        ),
    ],
)
def test_the_scrape_interval_follows_the_pod_monitor_unless_given(
    values: dict[str, Any], expect: float
) -> None:
    settings = settings_from(operator_env(values))
    assert settings.scrape_interval_s == expect
    assert settings.look_interval_s == 5.0


def test_values_reach_the_operator() -> None:
    env = operator_env(
        {
            "operator": {
                "targetLabel": "app_kubernetes_io_name",
                "queryShareSeconds": 0,
                "lookIntervalSeconds": 0,
                "prometheusConcurrency": 12,
                "prometheusMaxMiB": 64,
                "maxConcurrentSteps": 200,
            }
        }
    )
    assert env["LATENCYSLO_TARGET_LABEL"] == "app_kubernetes_io_name"
    assert env["LATENCYSLO_QUERY_SHARE_S"] == "0"
    settings = settings_from(env)
    assert settings.target_label == "app_kubernetes_io_name"
    assert settings.query_share_s == 0.0
    assert settings.look_interval_s == 0.0
    assert settings.prometheus_concurrency == 12
    assert settings.prometheus_max_mib == 64
    assert settings.max_concurrent_steps == 200


def test_an_empty_target_label_selects_the_whole_namespace() -> None:
    env = operator_env({"operator": {"targetLabel": ""}})
    assert env["LATENCYSLO_TARGET_LABEL"] == ""
    assert settings_from(env).target_label == ""


def test_namespaced_releases_claim_their_namespaces() -> None:
    values = {"operator": {"watchNamespaces": ["team-a", "team-b"]}}
    env = operator_env(values)
    assert env["LATENCYSLO_SHARD_ID"] == f"{NAMESPACE}/{OPERATOR}"
    settings = settings_from(env)
    assert settings.shard_id == f"{NAMESPACE}/{OPERATOR}"
    assert settings.namespaces == ("team-a", "team-b")
    objects = render_objects(values)
    for role in find(objects, "Role"):
        assert role["rules"][-2:] == LEASE_RULES, role["metadata"]["namespace"]


def test_two_releases_have_distinct_identities() -> None:
    a = render_objects({"operator": {"watchNamespaces": ["team-a"]}}, namespace="shard-a")
    b = render_objects({"operator": {"watchNamespaces": ["team-b"]}}, namespace="shard-b")

    def identity(objects: list[dict[str, Any]]) -> str:
        container = one(objects, "Deployment", OPERATOR)["spec"]["template"]["spec"]
        env = {e["name"]: e.get("value") for e in container["containers"][0]["env"]}
        return str(env["LATENCYSLO_SHARD_ID"])

    assert identity(a) == f"shard-a/{OPERATOR}"
    assert identity(b) == f"shard-b/{OPERATOR}"


@pytest.mark.parametrize(
    "values",
    [{}, {"operator": {"watchNamespaces": ["team-a"], "shardClaim": False}}],
    ids=["cluster mode", "claim off"],
)
def test_no_claim_and_no_lease_rights_without_sharding(values: dict[str, Any]) -> None:
    env = operator_env(values)
    assert "LATENCYSLO_SHARD_ID" not in env
    assert settings_from(env).shard_id is None
    objects = render_objects(values)
    for role in find(objects, "Role") + find(objects, "ClusterRole"):
        assert not any("coordination.k8s.io" in r["apiGroups"] for r in role["rules"])


BAD = [
    ("reserved target label", {"targetLabel": "namespace"}),
    ("target label le", {"targetLabel": "le"}),
    ("target label not a label name", {"targetLabel": "app-name"}),
    ("internal target label", {"targetLabel": "__name__"}),
    ("negative share", {"queryShareSeconds": -1}),
    ("share over five minutes", {"queryShareSeconds": 301}),
    ("no Prometheus concurrency", {"prometheusConcurrency": 0}),
    ("answer cap as string", {"prometheusMaxMiB": "16"}),
    ("no step slots", {"maxConcurrentSteps": 0}),
    ("claim as string", {"shardClaim": "yes"}),
]


@pytest.mark.parametrize(("case", "operator"), BAD, ids=[c for c, _ in BAD])
def test_schema_rejects_bad_values(case: str, operator: dict[str, Any]) -> None:
    with helm.Chart.load(CHART_DIR) as chart, pytest.raises(helm.HelmError):
        chart.validate_schema({"operator": operator})
