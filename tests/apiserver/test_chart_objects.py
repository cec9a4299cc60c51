"""Every object the chart renders, for every value set of the chart tests, accepted by a real
API server (server-side dry run: schema, defaults, admission, the ValidatingAdmissionPolicy's
CEL type check, RBAC escalation rules)."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from tests.apiserver.conftest import namespace
from tests.apiserver.envtest import ControlPlane
from tests.unit.helm.render import NAMESPACE, VALUE_SETS, render_value_set

pytestmark = pytest.mark.apiserver

MONITORING_KINDS = {
    "ServiceMonitor": "servicemonitors",
    "PodMonitor": "podmonitors",
    "PrometheusRule": "prometheusrules",
}


def _loose_crd(kind: str, plural: str) -> dict[str, Any]:
    """The monitoring.coreos.com kinds, accepting any spec: the API server here has no
    Prometheus operator; their fields are checked offline against the upstream schemas
    (tests/unit/helm/monitoring_schemas.py). This checks names, namespaces and metadata."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.monitoring.coreos.com"},
        "spec": {
            "group": "monitoring.coreos.com",
            "scope": "Namespaced",
            "names": {"kind": kind, "plural": plural, "singular": kind.lower()},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "x-kubernetes-preserve-unknown-fields": True,
                        }
                    },
                }
            ],
        },
    }


@pytest.fixture(scope="module")
def server(crd: ControlPlane) -> ControlPlane:
    for name in (NAMESPACE, "team-a", "team-b", "ml"):
        namespace(crd, name)
    proc = crd.apply([_loose_crd(kind, plural) for kind, plural in MONITORING_KINDS.items()])
    assert proc.returncode == 0, proc.stderr
    for plural in MONITORING_KINDS.values():
        wait = crd.kubectl(
            "wait", "--for=condition=Established", f"crd/{plural}.monitoring.coreos.com"
        )
        assert wait.returncode == 0, wait.stderr
    return crd


@pytest.mark.parametrize("value_set", sorted(VALUE_SETS))
def test_every_chart_object_is_accepted(server: ControlPlane, value_set: str) -> None:
    objects = list(render_value_set(value_set))
    assert objects
    text = yaml.safe_dump_all(objects, sort_keys=False)
    proc = server.kubectl("apply", "--server-side", "--dry-run=server", "-f", "-", stdin=text)
    assert proc.returncode == 0, proc.stderr
    assert "warning" not in proc.stderr.lower(), proc.stderr
    # one line per object: nothing was skipped
    assert len(proc.stdout.strip().splitlines()) == len(objects), proc.stdout
