"""The real-apiserver tier: skipped with the reason unless a kube-apiserver and etcd are there
(envtest.find_binaries); with LATENCYSLO_REQUIRE_APISERVER=1 (the GitHub workflow) a missing
binary is an error instead, so the tier can never pass by skipping."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.apiserver.envtest import Binaries, ControlPlane, control_plane, find_binaries
from tests.unit.helm.render import NAMESPACE, RELEASE

REPO = Path(__file__).resolve().parents[2]
OPERATOR_USER = f"system:serviceaccount:{NAMESPACE}:{RELEASE}-operator"
"""The chart's operator ServiceAccount (release `latencyslo` in `latencyslo-system`)."""
REQUIRE = os.environ.get("LATENCYSLO_REQUIRE_APISERVER") == "1"


@pytest.fixture(scope="session")
def binaries() -> Binaries:
    found = find_binaries()
    if isinstance(found, str):
        if REQUIRE:
            pytest.fail(f"LATENCYSLO_REQUIRE_APISERVER=1 but {found}")
        pytest.skip(found)
    return found


@pytest.fixture(scope="session")
def plane(binaries: Binaries) -> Iterator[ControlPlane]:
    with control_plane(binaries, users=[OPERATOR_USER], audited=[OPERATOR_USER]) as running:
        yield running


@pytest.fixture(scope="session")
def crd(plane: ControlPlane) -> ControlPlane:
    """The CRD from crds/, installed as a user would and Established."""
    proc = plane.kubectl("apply", "--server-side", "-f", str(REPO / "crds"))
    assert proc.returncode == 0, proc.stderr
    wait = plane.kubectl(
        "wait", "--for=condition=Established", "crd/latencyslos.latencyslo.io", "--timeout=60s"
    )
    assert wait.returncode == 0, wait.stderr
    return plane


def namespace(plane: ControlPlane, name: str) -> None:
    """Create a namespace if it is not there (no controller manager: it stays Active)."""
    if plane.kubectl("get", "namespace", name).returncode != 0:
        proc = plane.kubectl("create", "namespace", name)
        assert proc.returncode == 0, proc.stderr
