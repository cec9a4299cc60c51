"""LatencySLOs on a real API server: the examples, the table of good and bad objects of the
offline tests (tests/unit/crd/cases.py) with the server's own messages, and `latencyslo
validate` agreeing with the server on every one of them."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
import yaml

from slo_operator.validate import Problem, check_document
from tests.apiserver.conftest import namespace
from tests.apiserver.envtest import ControlPlane
from tests.unit.crd.cases import BAD, EXAMPLES, GOOD, Case

pytestmark = pytest.mark.apiserver

# The words the server uses for each kind of schema problem (its text around them differs
# from validate's: "spec.x in body should be ..."), so the comparison is on the field path,
# the kind of problem and, for CEL rules, the exact message.
SERVER_WORDS = {
    "required": "Required value",
    "unknown field": "unknown field",
    "type": "must be of type",
    "enum": "Unsupported value",
    "minimum": "should be greater than",
    "exclusiveMinimum": "should be greater than",
    "maximum": "should be less than",
    "exclusiveMaximum": "should be less than",
    "minLength": "at least",
    "maxLength": "Too long",
    "pattern": "should match",
    "minItems": "should have at least",
    "maxItems": "Too many",
    "maxProperties": "Too many",
    "x-kubernetes-list-type": "Duplicate value",
    "format": "date-time",
}


@pytest.fixture(scope="module")
def server(crd: ControlPlane) -> ControlPlane:
    for name in ("ml", "search"):
        namespace(crd, name)
    return crd


def create(server: ControlPlane, doc: Any, *, dry_run: bool = True) -> tuple[int, str]:
    args = ["create", "-f", "-", "-o", "json"] + (["--dry-run=server"] if dry_run else [])
    proc = server.kubectl(*args, stdin=yaml.safe_dump(doc, sort_keys=False))
    return proc.returncode, proc.stderr


def update(server: ControlPlane, old: dict[str, Any], new: dict[str, Any]) -> tuple[int, str]:
    """Create `old` for real, then replace it with `new` (dry run); delete `old` again."""
    code, err = create(server, old, dry_run=False)
    assert code == 0, err
    try:
        proc = server.kubectl(
            "replace", "--dry-run=server", "-f", "-", stdin=yaml.safe_dump(new, sort_keys=False)
        )
        return proc.returncode, proc.stderr
    finally:
        meta = old["metadata"]
        server.kubectl(
            "delete", "latencyslo", meta["name"], "-n", meta["namespace"], "--wait=false"
        )


def server_says(problem: Problem, stderr: str) -> bool:
    """Whether the server's answer names the same field and the same kind of problem."""
    path = problem.path
    candidates = {path, re.sub(r"\[([^\]\d][^\]]*)\]", r".\1", path)} if path else {""}
    if not any(c in stderr for c in candidates):
        return False
    kind = problem.rule.split(":")[0]
    if kind in SERVER_WORDS:
        return SERVER_WORDS[kind] in stderr
    return problem.message in stderr  # a CEL rule: the message itself


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.yaml")), ids=lambda p: p.name)
def test_every_example_is_accepted(server: ControlPlane, path: Any) -> None:
    proc = server.kubectl("create", "--dry-run=server", "-f", str(path))
    assert proc.returncode == 0, proc.stderr
    assert "warning" not in proc.stderr.lower(), proc.stderr


@pytest.mark.parametrize("case", GOOD, ids=lambda c: c.id)
def test_good_objects_are_accepted(server: ControlPlane, case: Case) -> None:
    old = case.old_document()
    code, err = update(server, old, case.document()) if old else create(server, case.document())
    assert code == 0, err
    assert check_document(case.document(), old) == []


CLIENT_SIDE = (
    "resource mapping not found",
    "no matches for kind",
    "resource name may not be empty",
    "error validating data",
)
"""kubectl's own refusals, before any request: the verdict is compared, the text is not."""


@pytest.mark.parametrize("case", BAD, ids=lambda c: c.id)
def test_bad_objects_are_refused_and_validate_agrees(server: ControlPlane, case: Case) -> None:
    """The server refuses, naming the case's field; `latencyslo validate` refuses too, and
    every problem it reports under `spec` is one the server reports (same field, same kind
    of problem; for a CEL rule, the same message)."""
    doc, old = case.document(), case.old_document()
    code, err = update(server, old, doc) if old else create(server, doc)
    assert code != 0, f"the server accepted {case.id}"
    problems = check_document(doc, old) if isinstance(doc, dict) else [Problem("", "", "object")]
    assert problems, f"validate accepted {case.id}, the server said: {err}"
    if any(text in err for text in CLIENT_SIDE):
        return  # refused by kubectl itself: both refuse, there is no server text to compare
    assert case.path in err or case.path.replace("[", ".").rstrip("]") in err, err
    for problem in problems:
        if problem.path.startswith("spec") and problem.rule != "x-kubernetes-validations":
            assert server_says(problem, err), (str(problem), err)


def test_created_object_gets_the_defaults_validate_applies(server: ControlPlane) -> None:
    from slo_operator import validate
    from tests.unit.crd.cases import minimal

    doc = minimal()
    code, _ = create(server, doc, dry_run=False)
    assert code == 0
    try:
        got = json.loads(
            server.kubectl("get", "latencyslo", "sentiment", "-n", "ml", "-o", "json").stdout
        )
        assert got["spec"] == validate.admit(doc)["spec"]
    finally:
        server.kubectl("delete", "latencyslo", "sentiment", "-n", "ml", "--wait=false")
