"""The CRD on a real API server: installed with no warning, Established, its schema published
(`kubectl explain`), and the server's own check of defaults against CEL rules."""

from __future__ import annotations

import copy
import json

import pytest
import yaml

from slo_operator import crd as crd_module
from slo_operator.crd_lint import lint_crd
from tests.apiserver.conftest import REPO
from tests.apiserver.envtest import ControlPlane

pytestmark = pytest.mark.apiserver


def test_crd_installs_without_warning_and_is_established(crd: ControlPlane) -> None:
    again = crd.kubectl("apply", "--server-side", "-f", str(REPO / "crds"))
    assert again.returncode == 0, again.stderr
    assert "warning" not in again.stderr.lower(), again.stderr
    got = json.loads(crd.kubectl("get", "crd", crd_module.CRD_NAME, "-o", "json").stdout)
    conditions = {c["type"]: c["status"] for c in got["status"]["conditions"]}
    assert conditions.get("Established") == "True", conditions
    assert conditions.get("NamesAccepted") == "True", conditions
    assert conditions.get("NonStructuralSchema") is None, conditions
    # the server kept every field and rule of the generated schema
    served = dict(crd_module.walk(crd_module.served_schema(got)))
    for path, node in crd_module.walk(crd_module.served_schema()):
        assert path in served, path
        rules = [r["rule"] for r in node.get("x-kubernetes-validations", [])]
        assert rules == [r["rule"] for r in served[path].get("x-kubernetes-validations", [])]


def test_kubectl_explain_shows_every_field(crd: ControlPlane) -> None:
    proc = crd.kubectl("explain", "latencyslo.spec.replicas")
    assert proc.returncode == 0, proc.stderr
    assert "Bounds on the replica count." in proc.stdout
    assert "Fewest replicas" in proc.stdout
    recursive = crd.kubectl("explain", "latencyslo.spec", "--recursive")
    assert recursive.returncode == 0, recursive.stderr
    root = crd_module.served_schema()
    for path, _node in crd_module.walk(root["properties"]["spec"], "spec"):
        if path.endswith(("[]", "[*]")) or path == "spec":
            continue  # list items and map values have no name of their own
        assert path.rsplit(".", 1)[-1] in recursive.stdout, path


def test_the_server_refuses_an_empty_default_under_a_rule(crd: ControlPlane) -> None:
    """What made every install fail: `default: {}` under `self.min <= self.max`. The offline
    lint (`lint_crd`) reports the same; here the server itself does."""
    broken = copy.deepcopy(crd_module.build_crd())
    broken["spec"]["group"] = "broken.latencyslo.io"
    broken["metadata"]["name"] = f"{broken['spec']['names']['plural']}.broken.latencyslo.io"
    spec = crd_module.served_schema(broken)["properties"]["spec"]["properties"]
    spec["replicas"]["default"] = {}
    proc = crd.kubectl("create", "-f", "-", stdin=yaml.safe_dump(broken))
    assert proc.returncode != 0
    assert "no such key: min" in proc.stderr, proc.stderr
    assert any("replicas.min must be <=" in p for p in lint_crd(broken))
