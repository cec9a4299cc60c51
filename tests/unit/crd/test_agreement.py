"""The CRD and the pydantic models agree: every manifest gets the same verdict three ways.

1. `jsonschema` against the CRD's OpenAPI schema (unknown fields refused, nulls pruned and
   defaults applied first, as the API server does);
2. the CRD's CEL rules, evaluated with cel-python on the defaulted object (transition rules with
   the old object);
3. the pydantic model.

Each bad case must be refused by the layer the table names (and only the CEL layer for CEL
cases: the schema alone must let them through, or the CEL rule would be untested), at the named
field path, and by the model with the same path; CEL and model messages are the same text.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from slo_operator import crd, validate
from slo_operator.spec import LatencySLOSpec, LatencySLOStatus
from tests.unit.crd.cases import ALL, BAD, GOOD, STATUS, Case, changed, minimal


def on_branch(found: str, expected: str) -> bool:
    """`found` is `expected`, or one is inside the other (`metadata` vs `metadata.name`)."""
    return any(
        a == b or a.startswith(b + ".") or a.startswith(b + "[")
        for a, b in ((found, expected), (expected, found))
    )


def verdicts(case: Case) -> tuple[list[Any], list[Any], list[Any], list[Any]]:
    doc = case.document()
    obj = validate.admit(doc)
    schema = validate.schema_problems(obj)
    blocked = validate.is_blocking(schema)
    cel_create = [] if blocked else validate.cel_problems(obj)
    old = case.old_document()
    cel = cel_create if old is None or blocked else validate.cel_problems(obj, validate.admit(old))
    return schema, cel_create, cel, validate.model_problems(doc)


def test_table_size() -> None:
    assert len(BAD) >= 25
    assert len({c.id for c in ALL}) == len(ALL), "case ids must be unique"
    assert {c.layer for c in BAD} == {"schema", "cel", "update"}


@pytest.mark.parametrize("case", GOOD, ids=lambda c: c.id)
def test_good_manifest_passes_three_ways(case: Case) -> None:
    schema, cel_create, cel, model = verdicts(case)
    assert schema == []
    assert cel_create == []
    assert cel == []
    assert model == []
    assert validate.check_document(case.document(), case.old_document()) == []


@pytest.mark.parametrize("case", BAD, ids=lambda c: c.id)
def test_bad_manifest_is_refused_three_ways(case: Case) -> None:
    schema, cel_create, cel, model = verdicts(case)
    if case.layer == "schema":
        assert any(on_branch(p.path, case.path) for p in schema), schema
        assert all(p.path for p in schema)
    elif case.layer == "cel":
        assert schema == [], "the schema alone must accept it: the CEL rule is what refuses it"
        assert any(p.path == case.path for p in cel), cel
        assert all(p.rule in {r["rule"] for r in rules()} for p in cel)
        # same message, same path, same rule from the model
        assert {(p.path, p.message, p.rule) for p in model} <= {
            (p.path, p.message, p.rule) for p in cel
        }
    else:  # a transition rule: only an update with the old object can refuse it
        assert schema == []
        assert cel_create == []
        assert [p.path for p in cel] == [case.path]
        assert crd.is_transition_rule(cel[0].rule)
    if case.layer != "update":
        assert model, "the pydantic model must refuse what the API server refuses"
        assert any(on_branch(p.path, case.path) for p in model), model
    else:
        assert model == [], "the model sees one object: immutability is the API server's"
    assert validate.check_document(case.document(), case.old_document())


def rules() -> list[dict[str, str]]:
    return [
        r
        for _, node in crd.walk(validate.object_schema())
        for r in node.get("x-kubernetes-validations", [])
    ]


def test_every_cel_rule_is_exercised_by_a_bad_case() -> None:
    hit = set()
    for case in BAD:
        if case.layer in ("cel", "update"):
            hit |= {p.rule for p in verdicts(case)[2]}
    assert hit == {r["rule"] for r in rules()}


def test_blocking_errors_skip_the_cel_rules() -> None:
    doc = changed(minimal(), {"spec.replicas": {"min": "9", "max": 2}})
    problems = validate.server_problems(doc)
    assert problems[-1] == validate.NOT_CHECKED
    assert not any(p.rule == "self.min <= self.max" for p in problems)
    # a bound violation is not blocking: the CEL rules still run
    doc = changed(
        minimal(), {"spec.replicas": {"min": 5, "max": 2}, "spec.policy.intervalSeconds": 1}
    )
    rules_hit = {p.rule for p in validate.server_problems(doc)}
    assert {"minimum: 5", "self.min <= self.max"} <= rules_hit


def test_defaults_are_the_models_defaults() -> None:
    """The API server's defaulted object is exactly the model's view of the same manifest."""
    admitted = validate.admit(minimal())["spec"]
    model = LatencySLOSpec.model_validate(minimal()["spec"])
    assert admitted == model.model_dump(by_alias=True, exclude_none=True, mode="json")
    assert "preferred" not in admitted["variants"], "preferred has no default: allowed[0]"


# -------------------------------------------------------- every bound, generated from the CRD


def numeric_bounds() -> list[tuple[str, str, float, bool, str]]:
    """(dotted path, type, bound, exclusive, side) of every bounded number in spec."""
    out = []
    spec_schema = validate.object_schema()["properties"]["spec"]
    for path, node in crd.walk(spec_schema, "spec"):
        if node.get("type") not in ("integer", "number"):
            continue
        for side in ("minimum", "maximum"):
            if side in node:
                exclusive = bool(node.get(f"exclusive{side[0].upper()}{side[1:]}"))
                out.append((path, node["type"], node[side], exclusive, side))
    return out


BOUNDS = numeric_bounds()
BOUND_RULES = {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"}


@pytest.mark.parametrize(
    ("path", "kind", "bound", "exclusive", "side"), BOUNDS, ids=[f"{b[0]}-{b[4]}" for b in BOUNDS]
)
def test_every_bound_is_the_same_in_crd_and_model(
    path: str, kind: str, bound: float, exclusive: bool, side: str
) -> None:
    step = 1 if kind == "integer" else 0.001
    beyond = bound - step if side == "minimum" else bound + step
    for value, inside in ((bound, not exclusive), (beyond, False)):
        doc = changed(minimal(), {path: value})
        server, model = validate.server_problems(doc), validate.model_problems(doc)
        # the bound itself, not a cross-field rule that the value may also break
        flagged = [p for p in server if p.path == path and p.rule.split(":")[0] in BOUND_RULES]
        bound_errors = [p for p in model if p.path == path and p.rule.startswith("model:")]
        assert bool(flagged) != inside, (value, server)
        assert bool(bound_errors) != inside, (value, model)
        assert bool(server) == bool(model), (value, server, model)


def test_bounds_cover_the_api_contract() -> None:
    """The bounds of the API contract (docs/crd.md) are present (a removed bound would
    silently widen the API)."""
    found = {(p, side): (b, e) for p, _, b, e, side in BOUNDS}
    assert found[("spec.objective.percentile", "minimum")] == (50, False)
    assert found[("spec.objective.percentile", "maximum")] == (100, True)
    assert found[("spec.objective.latencyMs", "minimum")] == (0, True)
    assert found[("spec.objective.windowSeconds", "minimum")] == (15, False)
    assert found[("spec.objective.windowSeconds", "maximum")] == (3600, False)
    assert found[("spec.replicas.min", "minimum")] == (0, False)
    assert found[("spec.batching.maxWindowMs", "maximum")] == (1000, False)
    assert found[("spec.batching.maxBatchSize", "minimum")] == (1, False)
    assert found[("spec.batching.maxBatchSize", "maximum")] == (1024, False)
    assert found[("spec.variants.qualityBudget.maxDegradedFraction", "maximum")] == (1, False)
    assert found[("spec.policy.headroom", "minimum")] == (0, True)
    assert found[("spec.policy.headroom", "maximum")] == (1, False)
    assert found[("spec.policy.intervalSeconds", "minimum")] == (5, False)
    assert found[("spec.policy.intervalSeconds", "maximum")] == (300, False)


# ----------------------------------------------------------- property: random specs, one verdict

ODD = st.sampled_from([None, "3", True, 2.0, 1.5, [], {}, "Bogus"])


def mostly(good: st.SearchStrategy[Any], bad: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """`good` 24 times in 25, so that about a third of whole specs are valid."""
    return st.integers(0, 24).flatmap(lambda roll: bad if roll == 24 else good)


def values(schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Values for a schema node: mostly within its rules, sometimes just outside or mistyped."""
    kind = schema.get("type")
    if "enum" in schema:
        return mostly(st.sampled_from(schema["enum"]), st.one_of(ODD, st.just("full ")))
    if kind in ("integer", "number"):
        low, high = schema.get("minimum", 0), min(schema.get("maximum", 100), 100)
        if kind == "integer":
            good: st.SearchStrategy[Any] = st.integers(int(low), int(high))
        else:
            good = st.floats(
                low,
                high,
                exclude_min=bool(schema.get("exclusiveMinimum")),
                exclude_max=bool(schema.get("exclusiveMaximum")) and high == schema["maximum"],
            )
        edges = st.sampled_from([low - 1, high + 1, low - 0.5, low, high])
        return mostly(good, st.one_of(edges, ODD))
    if kind == "string":
        pattern, longest = schema.get("pattern"), min(schema.get("maxLength", 60), 60)
        good = st.from_regex(pattern, fullmatch=True) if pattern else st.text(max_size=8)
        good = good.filter(lambda text: 0 < len(text) <= longest)
        if "default" in schema:  # apiVersion, kind: free text, checked by CEL rules
            good = st.one_of(st.just(schema["default"]), good)
        return mostly(good, st.one_of(ODD, st.sampled_from(["", "A b", "x" * 1100])))
    if kind == "array":
        return mostly(
            st.lists(values(schema["items"]), min_size=1, max_size=schema.get("maxItems", 4)),
            st.one_of(st.lists(values(schema["items"]), max_size=5), ODD),
        )
    if kind == "object" and "additionalProperties" in schema:
        keys = st.sampled_from(
            ["tier", "app", "_ok", "namespace", "le", "bad-key", "__x", "k" * 101]
        )
        good = st.dictionaries(st.sampled_from(["tier", "app", "_ok"]), st.text(max_size=5))
        return mostly(good, st.dictionaries(keys, st.one_of(st.text(max_size=5), ODD), max_size=18))
    if kind == "object":
        props = {name: values(sub) for name, sub in schema.get("properties", {}).items()}
        required = {name: props.pop(name) for name in schema.get("required", [])}
        return mostly(st.fixed_dictionaries(required, optional=props), ODD)
    return ODD


_SPEC = validate.object_schema()["properties"]["spec"]
SPEC_VALUES = st.fixed_dictionaries(
    {name: values(_SPEC["properties"][name]) for name in _SPEC["required"]},
    optional={
        name: values(sub)
        for name, sub in _SPEC["properties"].items()
        if name not in _SPEC["required"]
    },
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec=SPEC_VALUES, extra=st.booleans())
def test_random_specs_get_one_verdict(spec: dict[str, Any], extra: bool) -> None:
    doc = {**minimal(), "spec": {**spec, **({"unknownField": 1} if extra else {})}}
    obj = validate.admit(doc)
    schema = validate.schema_problems(obj)
    cel = [] if validate.is_blocking(schema) else validate.cel_problems(obj)
    model = validate.model_problems(doc)
    assert bool(schema or cel) == bool(model), (schema, cel, model)
    if cel and not schema:
        cel_messages = {p.message for p in cel}
        assert {p.message for p in model} <= cel_messages


@pytest.mark.parametrize("full", [False, True], ids=["empty", "full"])
def test_status_as_the_operator_writes_it_is_accepted(full: bool) -> None:
    """The operator stores `status.model_dump(by_alias=True, mode="json")`, nulls included."""
    status = LatencySLOStatus.model_validate(STATUS) if full else LatencySLOStatus()
    written = status.model_dump(by_alias=True, mode="json")
    if not full:
        assert written["observed"] is None  # nulls are written, and the schema allows them
    doc = {**minimal(), "status": written}
    assert validate.schema_problems(validate.admit(doc)) == []
    assert validate.check_document(doc) == []
    assert LatencySLOStatus.model_validate(written) == status
