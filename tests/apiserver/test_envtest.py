"""The tier's own plumbing, without a server: where the binaries come from, and reading the
audit log (the format of audit.k8s.io/v1 events)."""

from __future__ import annotations

import json
import stat
from pathlib import Path

from tests.apiserver.envtest import AuditEvent, Binaries, find_binaries, is_answered


def _exe(path: Path) -> Path:
    path.write_text("#!/bin/sh\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def test_binaries_from_kubebuilder_assets(tmp_path: Path) -> None:
    for name in ("kube-apiserver", "etcd", "kubectl"):
        _exe(tmp_path / name)
    found = find_binaries({"KUBEBUILDER_ASSETS": str(tmp_path)})
    assert found == Binaries(tmp_path / "kube-apiserver", tmp_path / "etcd", tmp_path / "kubectl")


def test_binaries_from_explicit_paths_and_reasons(tmp_path: Path) -> None:
    apiserver, etcd = _exe(tmp_path / "apiserver"), _exe(tmp_path / "etcd")
    found = find_binaries(
        {
            "LATENCYSLO_KUBE_APISERVER": str(apiserver),
            "LATENCYSLO_ETCD": str(etcd),
            "PATH": str(tmp_path),
        }
    )
    assert isinstance(found, str)  # no kubectl on that PATH
    assert "kubectl" in found
    _exe(tmp_path / "kubectl")
    found = find_binaries(
        {
            "LATENCYSLO_KUBE_APISERVER": str(apiserver),
            "LATENCYSLO_ETCD": str(etcd),
            "PATH": str(tmp_path),
        }
    )
    assert isinstance(found, Binaries)
    assert "KUBEBUILDER_ASSETS" in str(find_binaries({}))
    assert "not an executable" in str(find_binaries({"KUBEBUILDER_ASSETS": "/nonexistent"}))


AUDIT_LINES = [
    {
        "kind": "Event",
        "apiVersion": "audit.k8s.io/v1",
        "level": "Metadata",
        "stage": "ResponseComplete",
        "verb": "update",
        "user": {"username": "system:serviceaccount:latencyslo-system:latencyslo-operator"},
        "objectRef": {
            "resource": "deployments",
            "subresource": "scale",
            "namespace": "ml",
            "name": "w",
            "apiGroup": "apps",
            "apiVersion": "v1",
        },
        "responseStatus": {"metadata": {}, "code": 200},
    },
    {
        "kind": "Event",
        "apiVersion": "audit.k8s.io/v1",
        "stage": "ResponseStarted",
        "verb": "watch",
        "user": {"username": "u"},
        "objectRef": {"resource": "configmaps", "apiVersion": "v1"},
        "responseStatus": {"metadata": {}, "code": 200},
    },
    {"stage": "ResponseStarted", "verb": "get", "user": {"username": "u"}},
]


def test_audit_events_parse() -> None:
    raw = json.loads(json.dumps(AUDIT_LINES[0]))
    event = AuditEvent.parse(raw)
    assert (event.api_group, event.resource, event.verb, event.code) == (
        "apps",
        "deployments/scale",
        "update",
        200,
    )
    denied = json.loads(json.dumps(AUDIT_LINES[0]))
    denied["responseStatus"] = {
        "code": 422,
        "status": "Failure",
        "reason": "Invalid",
        "message": 'deployments.apps "w" is forbidden: ValidatingAdmissionPolicy '
        "'latencyslo-operator-writes' with binding 'latencyslo-operator-writes' denied request",
    }
    assert "ValidatingAdmissionPolicy" in AuditEvent.parse(denied).message
    core = AuditEvent.parse(AUDIT_LINES[1])
    assert (core.api_group, core.resource) == ("", "configmaps")
    assert [is_answered(line) for line in AUDIT_LINES] == [True, True, False]
