"""The Helm chart: lint, render with several value sets, validate every object, RBAC, security.

Rendering uses helm-python-sdk (Helm's own Go library, no helm binary); built-in kinds are
validated offline with kubernetes-validate against the oldest supported Kubernetes (the
chart's kubeVersion) and the newest schema it ships.
"""

from __future__ import annotations

import base64
import json
import os
from typing import Any

import helm_python as helm
import jsonschema
import kubernetes_validate
import pytest
import yaml

from slo_contracts.runtime import MAX_QUEUE_WAIT_MS
from slo_operator.spec import LatencySLO
from slo_operator.validate import check_document
from tests.unit.helm.monitoring_schemas import SCHEMAS as MONITORING_SCHEMAS
from tests.unit.helm.render import (
    CHART_DIR,
    GPU_WORKER,
    MONITORING_ON,
    NAMESPACE,
    RELEASE,
    REPO,
    VALUE_SETS,
    find,
    merge,
    one,
    render_manifests,
    render_objects,
    render_value_set,
)

K8S_VERSIONS = ("1.29", kubernetes_validate.latest_version())
OPERATOR = f"{RELEASE}-operator"
WORKER = f"{RELEASE}-demo-worker"
CLUSTER_SCOPED = {
    "ClusterRole",
    "ClusterRoleBinding",
    "ValidatingAdmissionPolicy",
    "ValidatingAdmissionPolicyBinding",
}
SINCE = {"ValidatingAdmissionPolicy": "1.30", "ValidatingAdmissionPolicyBinding": "1.30"}
"""Kinds the chart renders only on clusters that serve them (Capabilities.KubeVersion)."""
ALL_SETS = sorted(VALUE_SETS)

EXPECTED_RULES: list[dict[str, Any]] = [
    {
        "apiGroups": ["latencyslo.io"],
        "resources": ["latencyslos"],
        "verbs": ["list", "watch", "patch"],
    },
    {"apiGroups": ["latencyslo.io"], "resources": ["latencyslos/status"], "verbs": ["patch"]},
    {"apiGroups": ["latencyslo.io"], "resources": ["latencyslos/finalizers"], "verbs": ["update"]},
    {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get", "list", "watch"]},
    {"apiGroups": ["apps"], "resources": ["deployments/scale"], "verbs": ["get", "update"]},
    {"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]},
    {
        "apiGroups": [""],
        "resources": ["configmaps"],
        "verbs": ["create", "get", "update", "list", "watch"],
    },
    {
        "apiGroups": [""],
        "resources": ["secrets"],
        "resourceNames": ["latencyslo-admin-token"],
        "verbs": ["get"],
    },
    {"apiGroups": [""], "resources": ["events"], "verbs": ["create"]},
    {
        "apiGroups": ["autoscaling"],
        "resources": ["horizontalpodautoscalers"],
        "verbs": ["list", "watch"],
    },
]
"""The operator's permissions, exactly: what it reads, what it changes, nothing more (a real
API server's audit log of the operator under these rules showed `get` latencyslos, list/watch
deployments and get/watch pods unused, and latencyslos/finalizers needed)."""


def _pod_specs(objects: Any) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for o in objects:
        spec = o.get("spec", {})
        if o["kind"] == "Pod":
            out.append((o["metadata"]["name"], spec))
        elif "template" in spec and "spec" in spec["template"]:
            out.append((f"{o['kind']}/{o['metadata']['name']}", spec["template"]["spec"]))
    return out


def _env(container: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e.get("value", "") for e in container.get("env", [])}


# ----------------------------------------------------------------------------- lint, validity


@pytest.mark.parametrize("value_set", ALL_SETS)
def test_lint_strict_is_clean(value_set: str) -> None:
    report = helm.lint(CHART_DIR, VALUE_SETS[value_set], strict=True, namespace=NAMESPACE)
    problems = [m for m in report["messages"] if m["severity"] >= 2]
    assert not report["errors"], report
    assert not problems, problems


@pytest.mark.parametrize("value_set", ALL_SETS)
def test_every_rendered_object_is_valid(value_set: str) -> None:
    objects = render_value_set(value_set)
    assert objects
    for obj in objects:
        where = f"{obj['kind']}/{obj['metadata']['name']} ({value_set})"
        group = obj["apiVersion"].split("/")[0] if "/" in obj["apiVersion"] else ""
        if group == "monitoring.coreos.com":
            jsonschema.validate(obj, MONITORING_SCHEMAS[obj["kind"]])
        elif group == "latencyslo.io":
            # as the API server would admit it against the CRD (schema, defaults, CEL)
            problems = check_document(json.loads(json.dumps(obj)))
            assert not problems, f"{where}: {[str(p) for p in problems]}"
            LatencySLO.model_validate(obj)
        else:
            for version in K8S_VERSIONS:
                if version < SINCE.get(obj["kind"], version):
                    continue
                try:
                    kubernetes_validate.validate(obj, version, strict=True)
                except kubernetes_validate.ValidationError as exc:
                    pytest.fail(f"{where} is invalid for Kubernetes {version}: {exc.message}")
        if obj["kind"] in CLUSTER_SCOPED:
            assert "namespace" not in obj["metadata"], where
        else:
            assert obj["metadata"].get("namespace"), f"{where} has no namespace"


def test_validation_catches_a_broken_object() -> None:
    """The validation above can fail: a misspelt field is reported."""
    deployment = dict(one(render_value_set("defaults"), "Deployment", OPERATOR))
    broken = json.loads(json.dumps(deployment))
    broken["spec"]["template"]["spec"]["containers"][0]["imagePullPolicyy"] = "Always"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, K8S_VERSIONS[0], strict=True)
    monitor = json.loads(
        json.dumps(one(render_value_set("monitoring"), "ServiceMonitor", OPERATOR))
    )
    monitor["spec"]["endpoints"][0]["honorLabel"] = True
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(monitor, MONITORING_SCHEMAS["ServiceMonitor"])
    sample = json.loads(json.dumps(one(render_value_set("demo"), "LatencySLO")))
    sample["spec"]["replicas"]["min"] = 9
    assert any("replicas.min must be <= replicas.max" in str(p) for p in check_document(sample))


def test_objects_per_value_set() -> None:
    kinds = {name: sorted(o["kind"] for o in render_value_set(name)) for name in ALL_SETS}
    assert kinds["defaults"] == [
        "ClusterRole",
        "ClusterRoleBinding",
        "Deployment",
        "Service",
        "ServiceAccount",
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding",
    ]
    assert sorted(set(kinds["demo"]) - set(kinds["defaults"])) == [
        "LatencySLO",
        "NetworkPolicy",
        "Secret",
    ]
    assert kinds["demo"].count("Deployment") == 2
    assert kinds["demo"].count("Service") == 2
    assert {"PodMonitor", "ServiceMonitor", "PrometheusRule", "ConfigMap"} <= set(
        kinds["monitoring"]
    )


def test_notes_render_for_every_value_set() -> None:
    for name in ALL_SETS:
        notes = render_manifests(VALUE_SETS[name])[f"{RELEASE}/templates/NOTES.txt"]
        assert f"deployment/{OPERATOR}" in notes
        assert "crds/" in notes
        if VALUE_SETS[name].get("demo", {}).get("enabled"):
            assert f"describe lslo {WORKER}" in notes


# ------------------------------------------------------------------------------------ values


def test_values_yaml_is_fully_commented() -> None:
    """Every key has a comment just above it, except keys inside a value that a `# --`
    comment already documents as a whole (e.g. the default `resources`)."""
    lines = (CHART_DIR / "values.yaml").read_text().splitlines()
    undocumented = []
    ancestors: list[tuple[int, bool]] = []  # (indent, documents its whole value)
    for i, line in enumerate(lines):
        stripped = line.strip()
        if not stripped or stripped.startswith(("#", "-")) or ":" not in stripped:
            continue
        indent = len(line) - len(line.lstrip())
        while ancestors and ancestors[-1][0] >= indent:
            ancestors.pop()
        block = i  # the first line of the comment block just above this key
        while block and lines[block - 1].strip().startswith("#"):
            block -= 1
        commented = block < i
        if not commented and not any(whole for _, whole in ancestors):
            undocumented.append(f"line {i + 1}: {stripped}")
        ancestors.append((indent, commented and lines[block].strip().startswith("# --")))
    assert not undocumented, "values.yaml keys without a comment:\n" + "\n".join(undocumented)


def test_schema_accepts_defaults_and_is_closed() -> None:
    schema = json.loads((CHART_DIR / "values.schema.json").read_text())
    defaults = yaml.safe_load((CHART_DIR / "values.yaml").read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    jsonschema.validate(defaults, schema)

    def walk(node: Any, path: str) -> None:
        if isinstance(node, dict):
            if node.get("type") == "object" and "properties" in node:
                assert node.get("additionalProperties") is False, f"{path} accepts unknown keys"
            for key, value in node.items():
                walk(value, f"{path}.{key}")
        elif isinstance(node, list):
            for i, value in enumerate(node):
                walk(value, f"{path}[{i}]")

    walk(schema["properties"], "values")


BAD_VALUES: list[tuple[str, dict[str, Any]]] = [
    ("unknown top-level key", {"replicaCount": 2}),
    ("misspelt nested key", {"operator": {"prometheusURL": "http://p:9090"}}),
    ("prometheus URL without scheme", {"operator": {"prometheusUrl": "prometheus:9090"}}),
    ("replica cap zero", {"operator": {"maxReplicas": 0}}),
    ("replica cap as string", {"operator": {"maxReplicas": "32"}}),
    ("namespace not a DNS label", {"operator": {"watchNamespaces": ["Team_A"]}}),
    ("watched namespaces not a list", {"operator": {"watchNamespaces": "team-a"}}),
    ("repeated watched namespace", {"operator": {"watchNamespaces": ["a", "a"]}}),
    ("push timeout zero", {"operator": {"pushTimeoutSeconds": 0}}),
    ("query timeout over a minute", {"operator": {"queryTimeoutSeconds": 120}}),
    ("bad secret name", {"operator": {"adminTokenSecret": "Admin Token"}}),
    ("port out of range", {"operator": {"metricsPort": 70000}}),
    ("bad pull policy", {"operator": {"image": {"pullPolicy": "Sometimes"}}}),
    ("tag with a space", {"demo": {"image": {"tag": "v1 beta"}}}),
    ("bad quantity", {"operator": {"resources": {"requests": {"cpu": "lots"}}}}),
    ("bad device", {"demo": {"device": "tpu"}}),
    ("unknown variant", {"demo": {"latencySLO": {"allowedVariants": ["full", "tiny"]}}}),
    ("repeated variant", {"demo": {"latencySLO": {"allowedVariants": ["full", "full"]}}}),
    ("percentile 100", {"demo": {"latencySLO": {"percentile": 100}}}),
    ("negative latency", {"demo": {"latencySLO": {"latencyMs": -5}}}),
    ("bad mode", {"demo": {"latencySLO": {"mode": "Auto"}}}),
    ("bad duration", {"monitoring": {"prometheusRule": {"breachedFor": "ten minutes"}}}),
    ("bad severity", {"monitoring": {"prometheusRule": {"severity": "page"}}}),
    ("enabled as string", {"monitoring": {"serviceMonitor": {"enabled": "yes"}}}),
    ("grace period zero", {"demo": {"terminationGracePeriodSeconds": 0}}),
    ("negative queue wait", {"demo": {"maxQueueWaitMs": -1}}),
    ("queue wait as string", {"demo": {"maxQueueWaitMs": "50ms"}}),
]


@pytest.mark.parametrize(("case", "values"), BAD_VALUES, ids=[c for c, _ in BAD_VALUES])
def test_schema_rejects_bad_values(case: str, values: dict[str, Any]) -> None:
    with helm.Chart.load(CHART_DIR) as chart:
        with pytest.raises(helm.HelmError):
            chart.validate_schema(values)
        # an install (render) refuses them too
        with pytest.raises(helm.HelmError):
            chart.render(values, name=RELEASE, namespace=NAMESPACE)


def test_the_queue_wait_bound_is_the_workers() -> None:
    """The chart takes every limit a worker takes (`slo_contracts.runtime`), and no more."""
    worker = {**GPU_WORKER, "maxQueueWaitMs": MAX_QUEUE_WAIT_MS}
    with helm.Chart.load(CHART_DIR) as chart:
        chart.validate_schema({"demo": {"maxQueueWaitMs": MAX_QUEUE_WAIT_MS}, "workers": [worker]})
        for values in (
            {"demo": {"maxQueueWaitMs": MAX_QUEUE_WAIT_MS + 1}},
            {"workers": [{**worker, "maxQueueWaitMs": MAX_QUEUE_WAIT_MS + 1}]},
        ):
            with pytest.raises(helm.HelmError, match="maxQueueWaitMs"):
                chart.validate_schema(values)


def test_schema_error_names_the_key() -> None:
    with helm.Chart.load(CHART_DIR) as chart, pytest.raises(helm.HelmError) as caught:
        chart.validate_schema({"operator": {"maxReplicas": 0}})
    assert "maxReplicas" in str(caught.value)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (
            {"demo": {"enabled": True, "latencySLO": {"minReplicas": 5, "maxReplicas": 2}}},
            "demo.latencySLO.minReplicas (5) must be <= demo.latencySLO.maxReplicas (2)",
        ),
        (
            {"demo": {"enabled": True, "latencySLO": {"maxReplicas": 40}}},
            "must be <= operator.maxReplicas (32)",
        ),
        (
            {"operator": {"watchNamespaces": ["team-a"]}, "demo": {"enabled": True}},
            f'release namespace "{NAMESPACE}", which operator.watchNamespaces',
        ),
        (
            {"serviceAccount": {"create": False, "name": ""}},
            "serviceAccount.name is required when serviceAccount.create is false",
        ),
        (
            {
                "demo": {
                    "enabled": True,
                    "adminToken": {"value": "t"},
                    "preStopDelaySeconds": 20,
                    "drainDelaySeconds": 10,
                    "terminationGracePeriodSeconds": 30,
                }
            },
            "demo.terminationGracePeriodSeconds (30) must exceed",
        ),
    ],
)
def test_templates_reject_inconsistent_values(values: dict[str, Any], message: str) -> None:
    with pytest.raises(helm.HelmError) as caught:
        render_objects(values)
    assert message in str(caught.value)


# -------------------------------------------------------------------------------------- RBAC


def _binding_subject(binding: dict[str, Any]) -> list[dict[str, Any]]:
    return list(binding["subjects"])


def test_rbac_cluster_mode_is_exact() -> None:
    objects = render_value_set("defaults")
    role = one(objects, "ClusterRole", OPERATOR)
    assert role["rules"] == EXPECTED_RULES
    binding = one(objects, "ClusterRoleBinding", OPERATOR)
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": OPERATOR,
    }
    assert _binding_subject(binding) == [
        {"kind": "ServiceAccount", "name": OPERATOR, "namespace": NAMESPACE}
    ]
    assert not find(objects, "Role")
    assert not find(objects, "RoleBinding")


def test_rbac_namespaced_mode_is_exact() -> None:
    objects = render_value_set("namespaced")
    assert not find(objects, "ClusterRole")
    assert not find(objects, "ClusterRoleBinding")
    roles = find(objects, "Role")
    bindings = find(objects, "RoleBinding")
    assert sorted(r["metadata"]["namespace"] for r in roles) == ["team-a", "team-b"]
    assert sorted(b["metadata"]["namespace"] for b in bindings) == ["team-a", "team-b"]
    for role in roles:  # plus the namespace claim (tests/unit/helm/test_operator_flags.py)
        assert role["rules"][: len(EXPECTED_RULES)] == EXPECTED_RULES
        assert {r["apiGroups"][0] for r in role["rules"][len(EXPECTED_RULES) :]} == {
            "coordination.k8s.io"
        }
    for binding in bindings:
        assert binding["roleRef"]["kind"] == "Role"
        assert binding["roleRef"]["name"] == OPERATOR
        assert _binding_subject(binding) == [
            {"kind": "ServiceAccount", "name": OPERATOR, "namespace": NAMESPACE}
        ]
    deployment = one(objects, "Deployment", OPERATOR)
    assert _env(deployment["spec"]["template"]["spec"]["containers"][0])[
        "LATENCYSLO_NAMESPACES"
    ] == ("team-a,team-b")


def test_rbac_secret_rule_follows_the_secret_name() -> None:
    objects = render_objects({"operator": {"adminTokenSecret": "my-token"}})
    rules = one(objects, "ClusterRole")["rules"]
    secret_rules = [r for r in rules if "secrets" in r["resources"]]
    assert secret_rules == [
        {
            "apiGroups": [""],
            "resources": ["secrets"],
            "resourceNames": ["my-token"],
            "verbs": ["get"],
        }
    ]


@pytest.mark.parametrize("value_set", ALL_SETS)
def test_rbac_has_no_wildcards_secret_listing_or_exec(value_set: str) -> None:
    for role in [o for o in render_value_set(value_set) if o["kind"] in ("Role", "ClusterRole")]:
        for rule in role["rules"]:
            for field in ("apiGroups", "resources", "verbs", "resourceNames"):
                assert "*" not in rule.get(field, []), rule
            assert not {"escalate", "bind", "impersonate"} & set(rule["verbs"]), rule
            assert not {"pods/exec", "pods/attach", "pods/portforward"} & set(rule["resources"])
            if "secrets" in rule["resources"]:
                assert rule["verbs"] == ["get"], rule
                assert rule.get("resourceNames"), rule
            if "deployments" in rule["resources"]:
                assert set(rule["verbs"]) <= {"get", "list", "watch"}, rule


def test_rbac_can_be_turned_off() -> None:
    objects = render_objects({"rbac": {"create": False}})
    assert not [o for o in objects if o["apiVersion"].startswith("rbac.")]


# -------------------------------------------------------------------------------- pod security


@pytest.mark.parametrize("value_set", ALL_SETS)
def test_every_pod_meets_the_restricted_profile(value_set: str) -> None:
    pods = _pod_specs(render_value_set(value_set))
    assert pods
    for where, pod in pods:
        psc = pod["securityContext"]
        assert psc["runAsNonRoot"] is True, where
        assert psc["runAsUser"] != 0, where
        assert psc["seccompProfile"] == {"type": "RuntimeDefault"}, where
        assert not pod.get("hostNetwork")
        assert not pod.get("hostPID")
        assert not pod.get("hostIPC")
        for container in pod.get("initContainers", []) + pod["containers"]:
            csc = container["securityContext"]
            name = f"{where} container {container['name']}"
            assert csc["allowPrivilegeEscalation"] is False, name
            assert csc["capabilities"] == {"drop": ["ALL"]}, name
            assert csc["readOnlyRootFilesystem"] is True, name
            assert csc["runAsNonRoot"] is True, name
            assert not csc.get("privileged"), name
            assert container["resources"].get("requests"), f"{name} has no requests"
            assert container["resources"].get("limits", {}).get("memory"), name
            mounts = {m["mountPath"]: m["name"] for m in container.get("volumeMounts", [])}
            assert "/tmp" in mounts, f"{name}: a read-only root needs a writable /tmp"
        volumes = {v["name"]: v for v in pod.get("volumes", [])}
        for volume in volumes.values():
            assert "hostPath" not in volume, where
        assert "emptyDir" in volumes["tmp"], where


# --------------------------------------------------------------------------------- operator


def test_operator_deployment() -> None:
    deployment = one(render_value_set("defaults"), "Deployment", OPERATOR)
    spec = deployment["spec"]
    assert spec["replicas"] == 1
    assert spec["strategy"] == {"type": "Recreate"}
    pod = spec["template"]["spec"]
    assert pod["serviceAccountName"] == OPERATOR
    (container,) = pod["containers"]
    assert container["image"] == "latencyslo/operator:0.1.0"
    assert container["args"] == ["operator", "--liveness=http://0.0.0.0:8080/healthz"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"health": 8080, "metrics": 9102}
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "health"}, probe
    assert _env(container) | {"POD_ID": ""} == {
        "LATENCYSLO_PROMETHEUS_URL": "http://prometheus-operated.monitoring.svc:9090",
        "LATENCYSLO_MAX_REPLICAS": "32",
        "LATENCYSLO_NAMESPACES": "",
        "LATENCYSLO_PUSH_TIMEOUT_S": "2",
        "LATENCYSLO_QUERY_TIMEOUT_S": "5",
        "LATENCYSLO_ADMIN_TOKEN_SECRET": "latencyslo-admin-token",
        "LATENCYSLO_METRICS_PORT": "9102",
        "LATENCYSLO_MAX_DATA_AGE_S": "60",
        "LATENCYSLO_TARGET_LABEL": "deployment",
        "LATENCYSLO_QUERY_SHARE_S": "7.5",
        "LATENCYSLO_SCRAPE_INTERVAL_S": "15",
        "LATENCYSLO_LOOK_INTERVAL_S": "5",
        "LATENCYSLO_PROMETHEUS_CONCURRENCY": "4",
        "LATENCYSLO_PROMETHEUS_MAX_MIB": "16",
        "LATENCYSLO_MAX_CONCURRENT_STEPS": "16",
        "LATENCYSLO_STANDALONE": "true",
        "POD_ID": "",
        "TMPDIR": "/tmp",
    }
    service = one(render_value_set("defaults"), "Service", OPERATOR)
    labels = pod.get("nodeSelector")
    assert labels is None
    selector = service["spec"]["selector"]
    assert selector.items() <= deployment["spec"]["template"]["metadata"]["labels"].items()
    assert service["spec"]["ports"] == [
        {"name": "metrics", "port": 9102, "targetPort": "metrics", "protocol": "TCP"}
    ]


def test_operator_settings_come_from_values() -> None:
    objects = render_objects(
        {
            "operator": {
                "prometheusUrl": "https://prom.example.internal:9443/prometheus",
                "maxReplicas": 12,
                "watchNamespaces": ["ml", "search"],
                "pushTimeoutSeconds": 0.5,
                "queryTimeoutSeconds": 3,
                "maxDataAgeSeconds": 90,
                "adminTokenSecret": "worker-admin",
                "metricsPort": 9200,
                "healthPort": 8088,
                "image": {"repository": "registry.example.com/lslo/operator", "tag": "1.2.3"},
                "extraEnv": [{"name": "EXTRA", "value": "1"}],
            }
        }
    )
    container = one(objects, "Deployment", OPERATOR)["spec"]["template"]["spec"]["containers"][0]
    env = _env(container)
    assert env["LATENCYSLO_PROMETHEUS_URL"] == "https://prom.example.internal:9443/prometheus"
    assert env["LATENCYSLO_MAX_REPLICAS"] == "12"
    assert env["LATENCYSLO_NAMESPACES"] == "ml,search"
    assert env["LATENCYSLO_PUSH_TIMEOUT_S"] == "0.5"
    assert env["LATENCYSLO_QUERY_TIMEOUT_S"] == "3"
    assert env["LATENCYSLO_ADMIN_TOKEN_SECRET"] == "worker-admin"
    assert env["LATENCYSLO_METRICS_PORT"] == "9200"
    assert env["LATENCYSLO_MAX_DATA_AGE_S"] == "90"
    assert env["EXTRA"] == "1"
    assert container["args"][1] == "--liveness=http://0.0.0.0:8088/healthz"
    assert container["image"] == "registry.example.com/lslo/operator:1.2.3"
    assert {p["name"]: p["containerPort"] for p in container["ports"]} == {
        "health": 8088,
        "metrics": 9200,
    }


def test_operator_profiles_from_values() -> None:
    default = one(render_value_set("defaults"), "Deployment", OPERATOR)
    assert "LATENCYSLO_PROFILES" not in _env(default["spec"]["template"]["spec"]["containers"][0])
    profiles = {
        "variants": {
            "full": {"alpha_ms": 4.0, "beta_ms": 1.5, "accuracy": 0.9},
            "distilled": {"alpha_ms": 1.0, "beta_ms": 0.5, "accuracy": 0.85},
        },
        "device": "cpu",
    }
    objects = render_objects({"operator": {"profiles": profiles}})
    cm = one(objects, "ConfigMap", f"{OPERATOR}-profiles")
    assert json.loads(cm["data"]["profiles.json"]) == profiles
    pod = one(objects, "Deployment", OPERATOR)["spec"]["template"]
    (container,) = pod["spec"]["containers"]
    assert _env(container)["LATENCYSLO_PROFILES"] == "/etc/latencyslo/profiles/profiles.json"
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert mounts["profiles"] == "/etc/latencyslo/profiles"
    checksum = pod["metadata"]["annotations"]["latencyslo.io/profiles-checksum"]
    assert (
        checksum
        != default["spec"]["template"]["metadata"]["annotations"]["latencyslo.io/profiles-checksum"]
    ), "changing the profiles rolls the operator pod"
    with pytest.raises(helm.HelmError):
        render_objects({"operator": {"profiles": {"variants": {"full": {"alpha_ms": 1}}}}})


# ------------------------------------------------------------------------------------- demo


def test_demo_worker_follows_the_worker_contract() -> None:
    objects = render_value_set("demo")
    deployment = one(objects, "Deployment", WORKER)
    assert "replicas" not in deployment["spec"], "replicas belong to the operator"
    template = deployment["spec"]["template"]
    pod = template["spec"]
    (container,) = pod["containers"]
    assert container["image"] == "latencyslo/worker:0.1.0"
    assert container["args"] == ["worker"]
    assert {p["name"]: p["containerPort"] for p in container["ports"]} == {
        "http": 8080,
        "admin": 8081,
    }
    env = _env(container)
    assert env["LATENCYSLO_RUNTIME_CONFIG"] == "/etc/latencyslo/runtime/config.json"
    assert env["LATENCYSLO_ADMIN_TOKEN_FILE"] == "/etc/latencyslo/admin/token"
    assert env["LATENCYSLO_PORT"] == "8080"
    assert env["LATENCYSLO_ADMIN_PORT"] == "8081"
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert mounts["runtime-config"] == "/etc/latencyslo/runtime"
    assert volumes["runtime-config"]["configMap"] == {
        "name": f"{WORKER}-latencyslo",
        "optional": True,
    }
    assert mounts["admin-token"] == "/etc/latencyslo/admin"
    assert volumes["admin-token"]["secret"]["secretName"] == "latencyslo-admin-token"
    assert pod["automountServiceAccountToken"] is False

    # warm-up before readiness, model load under a startup probe, a drain on scale-down
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    startup = container["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 300
    assert container["lifecycle"]["preStop"]["exec"]["command"] == ["sleep", "5"]
    # after SIGTERM the worker keeps answering what was already routed to it, then drains
    assert env["LATENCYSLO_DRAIN_DELAY_S"] == "5"
    assert pod["terminationGracePeriodSeconds"] > 5
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0

    service = one(objects, "Service", WORKER)
    assert service["spec"]["selector"].items() <= template["metadata"]["labels"].items()
    assert service["spec"]["ports"][0]["targetPort"] == "http"


def test_demo_sample_latencyslo_targets_the_worker() -> None:
    objects = render_value_set("demo")
    slo = LatencySLO.model_validate(one(objects, "LatencySLO", WORKER))
    assert slo.spec.target_ref.name == WORKER
    assert slo.spec.objective.latency_ms == 150
    assert (slo.spec.replicas.min, slo.spec.replicas.max) == (1, 4)
    assert slo.spec.policy.mode == "Enforce"
    custom = render_objects(
        merge(
            VALUE_SETS["demo"],
            {
                "demo": {
                    "latencySLO": {
                        "latencyMs": 80,
                        "percentile": 95,
                        "maxReplicas": 6,
                        "allowedVariants": ["full", "quantized"],
                        "mode": "Recommend",
                    },
                }
            },
        )
    )
    slo = LatencySLO.model_validate(one(custom, "LatencySLO"))
    assert slo.spec.objective.percentile == 95
    assert slo.spec.objective.latency_ms == 80
    assert slo.spec.variants.allowed == ["full", "quantized"]
    assert slo.spec.policy.mode == "Recommend"
    assert not find(
        render_objects(merge(VALUE_SETS["demo"], {"demo": {"latencySLO": {"enabled": False}}})),
        "LatencySLO",
    )


def test_demo_admin_token() -> None:
    given = one(render_value_set("everything"), "Secret", "latencyslo-admin-token")
    assert base64.b64decode(given["data"]["token"]).decode() == "s3cret-token"
    # kept by Helm even when a later render drops it: the workers hold it
    assert given["metadata"]["annotations"] == {"helm.sh/resource-policy": "keep"}
    # a given token renders the same every time (GitOps renders often)
    assert render_objects(VALUE_SETS["everything"]) == render_objects(VALUE_SETS["everything"])


def test_demo_admin_token_is_never_random_without_a_cluster() -> None:
    """`helm template` (no cluster: lookup finds nothing) cannot keep a generated token, so a
    render that would make a new one every time fails with what to do instead."""
    with pytest.raises(helm.HelmError) as caught:
        render_objects({"demo": {"enabled": True}})
    assert "demo.adminToken" in str(caught.value)
    assert "demo.adminToken.create=false" in str(caught.value)


def test_bring_your_own_admin_token_secret() -> None:
    objects = render_objects(
        {
            "demo": {"enabled": True, "adminToken": {"create": False}},
            "operator": {"adminTokenSecret": "my-token"},
        }
    )
    assert not find(objects, "Secret")
    worker = one(objects, "Deployment", WORKER)["spec"]["template"]["spec"]
    secrets = [v["secret"]["secretName"] for v in worker["volumes"] if "secret" in v]
    assert secrets == ["my-token"]
    role = one(objects, "ClusterRole", OPERATOR)
    assert next(r for r in role["rules"] if "secrets" in r["resources"])["resourceNames"] == [
        "my-token"
    ]


# ------------------------------------------------------------------ demo worker NetworkPolicy


def test_demo_network_policy_guards_the_admin_port() -> None:
    objects = render_value_set("demo")
    policy = one(objects, "NetworkPolicy", WORKER)
    worker = one(objects, "Deployment", WORKER)
    operator = one(objects, "Deployment", OPERATOR)
    pod_labels = worker["spec"]["template"]["metadata"]["labels"]
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= pod_labels.items()
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    by_port = {r["ports"][0]["port"]: r for r in policy["spec"]["ingress"]}
    assert set(by_port) == {"http", "admin"}
    assert "from" not in by_port["http"]  # requests and scrapes from anywhere
    (peer,) = by_port["admin"]["from"]
    operator_labels = operator["spec"]["template"]["metadata"]["labels"]
    assert peer["podSelector"]["matchLabels"].items() <= operator_labels.items()
    assert not peer["podSelector"]["matchLabels"].items() <= pod_labels.items()
    assert peer["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name": NAMESPACE}
    # the named ports exist on the worker container
    ports = {p["name"] for p in worker["spec"]["template"]["spec"]["containers"][0]["ports"]}
    assert {"http", "admin"} <= ports
    off = merge(VALUE_SETS["demo"], {"demo": {"networkPolicy": {"enabled": False}}})
    assert not find(render_objects(off), "NetworkPolicy")


# -------------------------------------------------------------------------------- monitoring


def test_monitoring_objects() -> None:
    objects = render_value_set("monitoring")
    for kind in ("ServiceMonitor", "PodMonitor", "PrometheusRule"):
        assert one(objects, kind)["metadata"]["labels"]["release"] == "kube-prometheus-stack"

    monitor = one(objects, "ServiceMonitor", OPERATOR)
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] == "metrics"
    assert endpoint["honorLabels"] is True
    service = one(objects, "Service", OPERATOR)
    assert (
        monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    )

    pods = one(objects, "PodMonitor")
    assert pods["spec"]["namespaceSelector"] == {"any": True}
    assert pods["spec"]["podMetricsEndpoints"][0]["port"] == "http"
    # the demo worker's pods are what the PodMonitor selects
    everything = render_value_set("everything")
    worker_labels = one(everything, "Deployment", WORKER)["spec"]["template"]["metadata"]["labels"]
    pm = one(everything, "PodMonitor")
    assert pm["spec"]["selector"]["matchLabels"].items() <= worker_labels.items()
    assert pm["spec"]["namespaceSelector"] == {"matchNames": [NAMESPACE]}

    dashboard = one(objects, "ConfigMap", f"{RELEASE}-dashboard")
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"

    rules = one(objects, "PrometheusRule")["spec"]["groups"][0]["rules"]
    assert {r["alert"] for r in rules} == {
        "LatencySLOBreached",
        "LatencySLOMetricsUnavailable",
        "LatencySLOConflict",
        "LatencySLOQualityBudgetExhausted",
        "LatencySLOOperatorDown",
    }
    down = next(r for r in rules if r["alert"] == "LatencySLOOperatorDown")
    assert down["expr"] == f'absent(up{{job="{OPERATOR}"}} == 1)'


def test_monitoring_values_flow_into_objects() -> None:
    objects = render_objects(
        merge(
            VALUE_SETS["monitoring"],
            {
                "monitoring": {
                    "labels": {"release": "prom"},
                    "prometheusRule": {
                        "breachedFor": "3m",
                        "severity": "critical",
                        "operatorJob": "lslo",
                        "additionalAlertLabels": {"team": "ml"},
                    },
                    "dashboard": {"namespace": "grafana", "annotations": {"grafana_folder": "SLO"}},
                }
            },
        )
    )
    rules = one(objects, "PrometheusRule")["spec"]["groups"][0]["rules"]
    breached = next(r for r in rules if r["alert"] == "LatencySLOBreached")
    assert breached["for"] == "3m"
    assert breached["labels"] == {"severity": "critical", "team": "ml"}
    assert "3m" in breached["annotations"]["description"]
    down = next(r for r in rules if r["alert"] == "LatencySLOOperatorDown")
    assert down["expr"] == 'absent(up{job="lslo"} == 1)'
    assert one(objects, "ServiceMonitor")["metadata"]["labels"]["release"] == "prom"
    dashboard = one(objects, "ConfigMap", f"{RELEASE}-dashboard")
    assert dashboard["metadata"]["namespace"] == "grafana"
    assert dashboard["metadata"]["annotations"] == {"grafana_folder": "SLO"}


# ------------------------------------------------------------------------------ single sources


def test_dashboard_has_one_source() -> None:
    source = REPO / "dashboards" / "latencyslo.json"
    copy = CHART_DIR / "dashboards" / "latencyslo.json"
    assert copy.read_bytes() == source.read_bytes(), "run `make chart-sync`"
    objects = render_value_set("monitoring")
    shipped = one(objects, "ConfigMap", f"{RELEASE}-dashboard")["data"]["latencyslo.json"]
    assert json.loads(shipped) == json.loads(source.read_text())


def test_chart_crd_is_the_generated_crd() -> None:
    source = REPO / "crds" / "latencyslos.latencyslo.io.yaml"
    copy = CHART_DIR / "crds" / "latencyslos.latencyslo.io.yaml"
    assert source.exists(), "the generated CRD is missing: run `latencyslo crd` (crds/)"
    assert copy.exists(), "the chart has no CRD: run `make chart-sync`"
    assert copy.read_bytes() == source.read_bytes(), "run `make chart-sync`"
    crd = yaml.safe_load(copy.read_text())
    for version in K8S_VERSIONS:
        kubernetes_validate.validate(crd, version, strict=True)
    assert crd["spec"]["names"]["shortNames"] == ["lslo"]
    assert sorted(p.name for p in (CHART_DIR / "crds").iterdir()) == [
        "latencyslos.latencyslo.io.yaml"
    ]


# ------------------------------------------------------- the chart against the real commands


@pytest.mark.parametrize("value_set", ALL_SETS)
def test_operator_env_parses_with_the_operators_settings(value_set: str) -> None:
    """The operator container's args and env, read by `slo_operator.settings` as at start."""
    from slo_operator.settings import load_settings

    values = VALUE_SETS[value_set]
    container = one(render_value_set(value_set), "Deployment", OPERATOR)["spec"]["template"][
        "spec"
    ]["containers"][0]
    assert container["args"][0] == "operator"
    flags = dict(arg.removeprefix("--").split("=", 1) for arg in container["args"][1:])
    settings = load_settings({"liveness": flags.pop("liveness")}, environ=_env(container))
    assert not flags
    operator_values = merge(
        yaml.safe_load((CHART_DIR / "values.yaml").read_text())["operator"],
        values.get("operator", {}),
    )
    assert settings.namespaces == tuple(operator_values["watchNamespaces"])
    assert settings.clusterwide == (not operator_values["watchNamespaces"])
    assert settings.prometheus_url == operator_values["prometheusUrl"]
    assert settings.max_replicas == operator_values["maxReplicas"]
    assert settings.push_timeout_s == operator_values["pushTimeoutSeconds"]
    assert settings.admin_token_secret == operator_values["adminTokenSecret"]
    assert settings.metrics_port == operator_values["metricsPort"]
    assert settings.liveness == f"http://0.0.0.0:{operator_values['healthPort']}/healthz"
    assert settings.standalone is True


def test_demo_worker_env_parses_with_the_worker_command(monkeypatch: pytest.MonkeyPatch) -> None:
    """The demo worker's args and env, parsed by the real `latencyslo worker` command."""
    cli = pytest.importorskip("inference_worker.cli")
    container = one(render_value_set("demo"), "Deployment", WORKER)["spec"]["template"]["spec"][
        "containers"
    ][0]
    for name in [n for n in os.environ if n.startswith("LATENCYSLO_")]:
        monkeypatch.delenv(name)
    for name, value in _env(container).items():
        monkeypatch.setenv(name, value)
    assert container["args"] == ["worker"]
    ctx = cli.worker.make_context("worker", [])
    params = ctx.params
    assert str(params["admin_token_file"]) == "/etc/latencyslo/admin/token"
    assert str(params["runtime_config"]) == "/etc/latencyslo/runtime/config.json"
    assert (params["port"], params["admin_port"]) == (8080, 8081)
    assert params["host"] == "0.0.0.0"
    assert params["threads"] == 1
    assert params["device"] == "cpu"
    assert params["drain_delay"] == 5.0


# ------------------------------------------------------------- admission policy (cluster mode)

SA_USER = f"system:serviceaccount:{NAMESPACE}:{OPERATOR}"
OWNED = {
    "ownerReferences": [
        {"apiVersion": "latencyslo.io/v1alpha1", "kind": "LatencySLO", "name": "s", "uid": "u"}
    ]
}


def _configmap(name: str, owned: bool = True) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": "ml", **(OWNED if owned else {})}
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": {}}


def _scale(replicas: int, namespace: str = "ml") -> dict[str, Any]:
    return {
        "apiVersion": "autoscaling/v1",
        "kind": "Scale",
        "metadata": {"name": "w", "namespace": namespace},
        "spec": {"replicas": replicas},
    }


def _request(
    resource: str,
    operation: str,
    obj: dict[str, Any] | None,
    old: dict[str, Any] | None = None,
    *,
    sub: str = "",
    namespace: str = "ml",
    user: str = SA_USER,
) -> dict[str, Any]:
    return {
        "request": {
            "operation": operation,
            "namespace": namespace,
            "subResource": sub,
            "resource": {"group": "" if resource == "configmaps" else "apps", "resource": resource},
            "userInfo": {"username": user},
        },
        "object": obj,
        "oldObject": old,
        "namespaceObject": {"metadata": {"name": namespace, "labels": {}}},
    }


def admission(policy: dict[str, Any], bindings: dict[str, Any]) -> list[str] | None:
    """The policy's verdict on one request, evaluated with cel-python: None when the request is
    not matched, else the messages of the validations that fail ([] = admitted)."""
    import celpy

    env = celpy.Environment()

    def run(expression: str, activation: dict[str, Any]) -> Any:
        return env.program(env.compile(expression)).evaluate(activation)

    activation = {k: celpy.json_to_cel(v) for k, v in bindings.items()}
    spec = policy["spec"]
    if not all(bool(run(c["expression"], activation)) for c in spec["matchConditions"]):
        return None
    variables = {v["name"]: run(v["expression"], activation) for v in spec["variables"]}
    activation["variables"] = celpy.celtypes.MapType(
        {celpy.celtypes.StringType(k): v for k, v in variables.items()}
    )
    failed = []
    for validation in spec["validations"]:
        try:
            ok = bool(run(validation["expression"], activation))
        except celpy.CELEvalError:
            ok = False  # an evaluation error denies (failurePolicy: Fail)
        if not ok:
            failed.append(validation["message"])
    return failed


def _policy(values: dict[str, Any] | None = None) -> dict[str, Any]:
    return one(render_objects(values or {}), "ValidatingAdmissionPolicy")


ADMISSION_CASES = [
    ("own-configmap-create", _request("configmaps", "CREATE", _configmap("w-latencyslo")), ""),
    (
        "own-configmap-update",
        _request("configmaps", "UPDATE", _configmap("w-latencyslo"), _configmap("w-latencyslo")),
        "",
    ),
    (
        "other-configmap",
        _request("configmaps", "CREATE", _configmap("kube-proxy")),
        "writes only ConfigMaps named <deployment>-latencyslo",
    ),
    (
        "unowned-configmap",
        _request("configmaps", "CREATE", _configmap("w-latencyslo", owned=False)),
        "must be owned by a LatencySLO",
    ),
    (
        "takeover",
        _request(
            "configmaps",
            "UPDATE",
            _configmap("w-latencyslo"),
            _configmap("w-latencyslo", owned=False),
        ),
        "may not take over a ConfigMap",
    ),
    (
        "configmap-delete",
        _request("configmaps", "DELETE", None, _configmap("w-latencyslo")),
        "never deletes",
    ),
    ("scale-within-cap", _request("deployments", "UPDATE", _scale(32), sub="scale"), ""),
    (
        "scale-over-cap",
        _request("deployments", "UPDATE", _scale(33), sub="scale"),
        "may not scale beyond operator.maxReplicas (32)",
    ),
    (
        "scale-in-kube-system",
        _request(
            "deployments", "UPDATE", _scale(1, "kube-system"), sub="scale", namespace="kube-system"
        ),
        "may not write in kube-system",
    ),
    (
        "deployment-itself",
        _request("deployments", "UPDATE", {"metadata": {"name": "w"}, "spec": {"replicas": 1}}),
        "only through the scale subresource",
    ),
]


@pytest.mark.parametrize(("case", "bindings", "needle"), ADMISSION_CASES, ids=lambda c: c)
def test_admission_policy_narrows_the_operators_writes(
    case: str, bindings: dict[str, Any], needle: str
) -> None:
    verdict = admission(_policy(), bindings)
    assert verdict is not None, case
    if needle:
        assert any(needle in message for message in verdict), verdict
    else:
        assert verdict == [], verdict


def test_admission_policy_matches_only_the_operator() -> None:
    policy = _policy()
    objects = render_value_set("defaults")
    account = one(objects, "Deployment", OPERATOR)["spec"]["template"]["spec"]
    assert f"system:serviceaccount:{NAMESPACE}:{account['serviceAccountName']}" == SA_USER
    someone = _request("configmaps", "CREATE", _configmap("kube-proxy"), user="alice")
    assert admission(policy, someone) is None
    binding = one(objects, "ValidatingAdmissionPolicyBinding")
    assert binding["spec"] == {
        "policyName": policy["metadata"]["name"],
        "validationActions": ["Deny"],
    }
    assert policy["spec"]["failurePolicy"] == "Fail"


def test_admission_policy_values() -> None:
    labelled = _policy(
        {
            "operator": {"maxReplicas": 4},
            "rbac": {"admissionPolicy": {"namespaceLabel": "latencyslo.io/managed"}},
        }
    )
    request = _request("deployments", "UPDATE", _scale(4), sub="scale")
    assert admission(labelled, request) == [
        "the namespace has not opted in (label latencyslo.io/managed=true)"
    ]
    request["namespaceObject"]["metadata"]["labels"] = {"latencyslo.io/managed": "true"}
    assert admission(labelled, request) == []
    request["object"]["spec"]["replicas"] = 5
    assert admission(labelled, request) == [
        "the latencyslo operator may not scale beyond operator.maxReplicas (4)"
    ]
    assert not find(
        render_objects({"rbac": {"admissionPolicy": {"enabled": False}}}),
        "ValidatingAdmissionPolicy",
    )


# ------------------------------------------------------------- per-Deployment metrics label


def relabel(rule: dict[str, Any], meta: dict[str, str]) -> dict[str, str]:
    """One `replace` relabeling as Prometheus applies it: the source labels joined by the
    separator, the regex anchored at both ends, `$1` from the first group."""
    import re

    assert rule.get("action", "replace") == "replace"
    value = rule.get("separator", ";").join(meta.get(n, "") for n in rule["sourceLabels"])
    match = re.fullmatch(rule["regex"], value)
    if not match:
        return dict(meta)
    replacement = re.sub(
        r"\$(\d+)|\$\{(\d+)\}", lambda m: match.group(int(m[1] or m[2])), rule["replacement"]
    )
    return {**meta, rule["targetLabel"]: replacement}


@pytest.mark.parametrize(
    ("kind", "name", "deployment"),
    [
        ("ReplicaSet", "sentiment-worker-7d9f8c6b5", "sentiment-worker"),
        ("ReplicaSet", "latencyslo-demo-worker-5b7c9d8f4x", "latencyslo-demo-worker"),
        ("StatefulSet", "sentiment-worker", None),
        ("", "", None),
    ],
)
def test_pod_monitor_labels_the_owning_deployment(
    kind: str, name: str, deployment: str | None
) -> None:
    monitor = one(render_value_set("monitoring"), "PodMonitor")
    (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
    (rule,) = endpoint["relabelings"]
    meta = {
        "__meta_kubernetes_pod_controller_kind": kind,
        "__meta_kubernetes_pod_controller_name": name,
    }
    assert relabel(rule, meta).get("deployment") == deployment


def test_e2e_prometheus_labels_the_deployment_as_the_pod_monitor_does() -> None:
    monitor = one(render_value_set("monitoring"), "PodMonitor")
    (rule,) = monitor["spec"]["podMetricsEndpoints"][0]["relabelings"]
    docs = list(
        yaml.safe_load_all((REPO / "tests" / "e2e" / "manifests" / "prometheus.yaml").read_text())
    )
    config = next(
        yaml.safe_load(d["data"]["prometheus.yml"])
        for d in docs
        if d and d["kind"] == "ConfigMap" and "prometheus.yml" in d.get("data", {})
    )
    (job,) = [j for j in config["scrape_configs"] if j["job_name"] == "inference-workers"]
    (plain,) = [r for r in job["relabel_configs"] if r.get("target_label") == "deployment"]
    assert plain["source_labels"] == rule["sourceLabels"]
    assert (plain["regex"], plain["replacement"], plain["separator"]) == (
        rule["regex"],
        rule["replacement"],
        rule["separator"],
    )


# ------------------------------------------------------------------ your own (GPU) workers


def _container(deployment: dict[str, Any]) -> dict[str, Any]:
    return deployment["spec"]["template"]["spec"]["containers"][0]


def test_own_worker_follows_the_same_contract_as_the_demo_worker() -> None:
    demo = one(render_value_set("demo"), "Deployment", WORKER)
    own = one(render_value_set("gpu-workers"), "Deployment", "sentiment-gpu")
    assert own["metadata"]["namespace"] == "ml"
    assert "replicas" not in own["spec"]  # the operator owns them
    mine, theirs = _container(own), _container(demo)
    for key in ("args", "ports", "livenessProbe", "readinessProbe", "securityContext"):
        assert mine[key] == theirs[key], key
    wired = {"LATENCYSLO_ADMIN_TOKEN_FILE", "LATENCYSLO_RUNTIME_CONFIG", "LATENCYSLO_PORT"}
    for name in wired | {"LATENCYSLO_ADMIN_PORT", "LATENCYSLO_HOST"}:
        assert _env(mine)[name] == _env(theirs)[name], name
    pod = own["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["runtime-config"]["configMap"] == {
        "name": "sentiment-gpu-latencyslo",
        "optional": True,
    }
    assert volumes["admin-token"]["secret"]["secretName"] == "latencyslo-admin-token"
    assert pod["automountServiceAccountToken"] is False
    # what the PodMonitor selects
    labels = own["spec"]["template"]["metadata"]["labels"]
    selector = one(render_objects(merge(VALUE_SETS["gpu-workers"], MONITORING_ON)), "PodMonitor")
    assert selector["spec"]["selector"]["matchLabels"].items() <= labels.items()


def test_own_worker_gpu_knobs_reach_the_pod() -> None:

    own = one(render_value_set("gpu-workers"), "Deployment", "sentiment-gpu")
    pod = own["spec"]["template"]["spec"]
    container = _container(own)
    assert container["resources"] == GPU_WORKER["resources"]
    assert container["image"] == "registry.example.com/ml/sentiment-worker:1.4.0"
    assert pod["runtimeClassName"] == "nvidia"
    assert pod["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert pod["tolerations"] == GPU_WORKER["tolerations"]
    env = _env(container)
    assert env["LATENCYSLO_DEVICE"] == "cuda"
    assert env["LATENCYSLO_MODEL_DIR"] == "/models/sentiment"
    assert env["LATENCYSLO_DRAIN_DELAY_S"] == "0"  # an explicit 0 is kept, not defaulted
    assert {"name": "models", "mountPath": "/models", "readOnly": True} in container["volumeMounts"]
    assert container["lifecycle"]["preStop"]["exec"]["command"] == ["sleep", "5"]
    objects = render_value_set("gpu-workers")
    assert one(objects, "Service", "sentiment-gpu")["metadata"]["namespace"] == "ml"
    policy = one(objects, "NetworkPolicy", "sentiment-gpu")
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= (
        own["spec"]["template"]["metadata"]["labels"].items()
    )


def test_own_worker_env_parses_with_the_worker_command(monkeypatch: pytest.MonkeyPatch) -> None:
    cli = pytest.importorskip("inference_worker.cli")
    container = _container(one(render_value_set("gpu-workers"), "Deployment", "sentiment-gpu"))
    for name in [n for n in os.environ if n.startswith("LATENCYSLO_")]:
        monkeypatch.delenv(name)
    for name, value in _env(container).items():
        monkeypatch.setenv(name, value)
    params = cli.worker.make_context("worker", container["args"][1:]).params
    assert params["device"] == "cuda"
    assert str(params["model_dir"]) == "/models/sentiment"
    assert params["drain_delay"] == 0.0
    assert params["frontends"] == 4
    assert params["cuda_graphs"] is True


def test_the_queue_wait_limit_reaches_the_workers(monkeypatch: pytest.MonkeyPatch) -> None:
    """`maxQueueWaitMs` (demo, and each of `workers`) becomes the worker's
    `--max-queue-wait-ms`; left at 0 or out, the worker runs without a limit."""

    cli = pytest.importorskip("inference_worker.cli")
    values = merge(VALUE_SETS["demo"], {"demo": {"maxQueueWaitMs": 50}})
    values["workers"] = [{**GPU_WORKER, "maxQueueWaitMs": 37.5}]
    objects = render_objects(values)
    demo = one(objects, "Deployment", WORKER)["spec"]["template"]["spec"]["containers"][0]
    own = _container(one(objects, "Deployment", "sentiment-gpu"))
    for container, wait in ((demo, 50.0), (own, 37.5)):
        for name in [n for n in os.environ if n.startswith("LATENCYSLO_")]:
            monkeypatch.delenv(name)
        for name, value in _env(container).items():
            monkeypatch.setenv(name, value)
        params = cli.worker.make_context("worker", container["args"][1:]).params
        assert params["max_queue_wait_ms"] == wait
    default_demo = one(render_value_set("demo"), "Deployment", WORKER)
    assert "LATENCYSLO_MAX_QUEUE_WAIT_MS" not in _env(
        default_demo["spec"]["template"]["spec"]["containers"][0]
    )
    assert "LATENCYSLO_MAX_QUEUE_WAIT_MS" not in _env(
        _container(one(render_value_set("gpu-workers"), "Deployment", "sentiment-gpu"))
    )


@pytest.mark.parametrize(
    ("worker", "message"),
    [
        ({"namespace": "elsewhere"}, 'namespace "elsewhere", which operator.watchNamespaces'),
        ({"terminationGracePeriodSeconds": 8}, "must exceed preStopDelaySeconds"),
    ],
)
def test_own_worker_inconsistent_values_fail(worker: dict[str, Any], message: str) -> None:

    values = {
        "operator": {"watchNamespaces": ["ml"]},
        "workers": [{**GPU_WORKER, "drainDelaySeconds": 5, **worker}],
    }
    with pytest.raises(helm.HelmError) as caught:
        render_objects(values)
    assert message in str(caught.value)


@pytest.mark.prometheus
def test_pod_monitor_relabeling_in_a_real_prometheus() -> None:
    """The PodMonitor's relabeling, as the Prometheus operator writes it into the scrape
    config, run by a real Prometheus on targets carrying the pod's controller meta labels."""
    from slo_local.promserver import PrometheusServer, free_port

    monitor = one(render_value_set("monitoring"), "PodMonitor")
    (rule,) = monitor["spec"]["podMetricsEndpoints"][0]["relabelings"]
    snake = {
        "sourceLabels": "source_labels",
        "targetLabel": "target_label",
        "separator": "separator",
        "regex": "regex",
        "replacement": "replacement",
        "action": "action",
    }
    relabel_config = {snake[k]: v for k, v in rule.items()}
    port = free_port()
    owners = {
        "rs": ("ReplicaSet", "sentiment-worker-7d9f8c6b5"),
        "sts": ("StatefulSet", "sentiment-worker"),
    }
    jobs = [
        {
            "job_name": job,
            "scrape_interval": "1s",
            "static_configs": [
                {
                    "targets": [f"127.0.0.1:{port}"],
                    "labels": {
                        "__meta_kubernetes_pod_controller_kind": kind,
                        "__meta_kubernetes_pod_controller_name": name,
                    },
                }
            ],
            "relabel_configs": [relabel_config],
        }
        for job, (kind, name) in owners.items()
    ]
    with PrometheusServer(port=port, extra_scrape_configs=jobs) as prom:
        (rs,) = prom.wait_for('up{job="rs"}', timeout_s=30)
        (sts,) = prom.wait_for('up{job="sts"}', timeout_s=30)
    assert rs["metric"].get("deployment") == "sentiment-worker"
    assert "deployment" not in sts["metric"]
