"""The generated CRD: committed output, API contract, agreement of field names with the models,
and offline checks of what the API server would refuse."""

from __future__ import annotations

import copy
import types
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

import kubernetes_validate
import pytest
import yaml
from click.testing import CliRunner
from pydantic import BaseModel, Field

from slo_operator import api_status, crd, crd_docs, crd_lint, spec
from slo_operator.cli import main

REPO = Path(__file__).resolve().parents[3]
COMMITTED = REPO / "crds" / crd.CRD_FILE


@pytest.fixture(scope="module")
def generated() -> dict[str, Any]:
    return crd.build_crd()


def test_committed_crd_is_the_generated_one() -> None:
    assert COMMITTED.read_text() == crd.crd_yaml(), (
        "run `latencyslo crd -o crds/" + crd.CRD_FILE + "`"
    )


def test_crd_command_prints_writes_and_checks(tmp_path: Path) -> None:
    runner = CliRunner()
    printed = runner.invoke(main, ["crd"])
    assert printed.exit_code == 0, printed.output
    assert printed.stdout == crd.crd_yaml()
    target = tmp_path / "out" / "crd.yaml"
    assert runner.invoke(main, ["crd", "-o", str(target)]).exit_code == 0
    assert target.read_text() == crd.crd_yaml()
    assert runner.invoke(main, ["crd", "--check", str(target)]).exit_code == 0
    target.write_text(crd.crd_yaml().replace("maxItems: 20", "maxItems: 21"))
    stale = runner.invoke(main, ["crd", "--check", str(target)])
    assert stale.exit_code == 1
    assert "differs from the generated CRD" in stale.stderr


def test_api_contract(generated: dict[str, Any]) -> None:
    assert generated["apiVersion"] == "apiextensions.k8s.io/v1"
    assert generated["metadata"]["name"] == "latencyslos.latencyslo.io"
    body = generated["spec"]
    assert body["group"] == "latencyslo.io"
    assert body["scope"] == "Namespaced"
    assert body["names"] == {
        "kind": "LatencySLO",
        "listKind": "LatencySLOList",
        "plural": "latencyslos",
        "singular": "latencyslo",
        "shortNames": ["lslo"],
        "categories": ["all", "latencyslo"],
    }
    (version,) = body["versions"]
    assert (version["name"], version["served"], version["storage"]) == ("v1alpha1", True, True)
    assert version["subresources"] == {"status": {}}
    columns = [
        c["name"].upper() for c in version["additionalPrinterColumns"] if not c.get("priority")
    ]
    assert columns == [
        "TARGET",
        "LATENCY",
        "REPLICAS",
        "WINDOW",
        "VARIANT",
        "MODE",
        "SLO MET",
        "AGE",
    ]
    by_name = {c["name"]: c["jsonPath"] for c in version["additionalPrinterColumns"]}
    assert by_name["Latency"] == ".status.observed.latencyMs"
    assert by_name["Percentile"] == ".status.observed.percentile"
    assert by_name["SLO Met"] == '.status.conditions[?(@.type=="SLOMet")].status'
    assert by_name["Target"] == ".spec.objective.latencyMs"


@pytest.mark.parametrize("version", ["1.29", kubernetes_validate.latest_version()])
def test_crd_is_a_valid_kubernetes_object(generated: dict[str, Any], version: str) -> None:
    kubernetes_validate.validate(generated, version, strict=True)


def test_minimum_kubernetes_is_1_28(generated: dict[str, Any]) -> None:
    """`fieldPath` on CEL rules needs 1.28 (docs/crd.md; the chart asks for 1.29)."""
    kubernetes_validate.validate(generated, "1.28", strict=True)
    with pytest.raises(kubernetes_validate.ValidationError, match="fieldPath"):
        kubernetes_validate.validate(generated, "1.27", strict=True)


def test_no_preserve_unknown_fields_anywhere() -> None:
    """kopf keeps its progress in annotations (docs/crd.md): no field escapes the schema."""
    assert "x-kubernetes-preserve-unknown-fields" not in crd.crd_yaml()


def test_preferred_has_no_default() -> None:
    variants = crd.served_schema()["properties"]["spec"]["properties"]["variants"]
    assert "default" not in variants["properties"]["preferred"]
    assert variants["properties"]["allowed"]["default"] == ["full", "quantized", "distilled"]


# --------------------------------------------------------------- field names, both directions


def _models(annotation: Any) -> list[type[BaseModel]]:
    """The pydantic models inside an annotation (`X | None`, `list[X]`, `Annotated[X, ...]`)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    origin = get_origin(annotation)
    if origin in (Union, types.UnionType, list) or (origin is not None and origin is not Literal):
        return [m for arg in get_args(annotation) for m in _models(arg)]
    return []


def _pairs(
    model: type[BaseModel], node: dict[str, Any], path: str
) -> list[tuple[str, type[BaseModel], dict[str, Any]]]:
    out = [(path, model, node)]
    for name, field in model.model_fields.items():
        wire = field.alias or name
        sub = node.get("properties", {}).get(wire)
        if sub is None:
            continue
        sub = sub.get("items", sub) if sub.get("type") == "array" else sub
        for inner in _models(field.annotation):
            out += _pairs(inner, sub, f"{path}.{wire}")
    return out


PAIRS = _pairs(spec.LatencySLOSpec, crd.served_schema()["properties"]["spec"], "spec") + _pairs(
    spec.LatencySLOStatus, crd.served_schema()["properties"]["status"], "status"
)


@pytest.mark.parametrize(("path", "model", "node"), PAIRS, ids=[p[0] for p in PAIRS])
def test_field_names_agree_both_ways(
    path: str, model: type[BaseModel], node: dict[str, Any]
) -> None:
    model_fields = {f.alias or name for name, f in model.model_fields.items()}
    crd_fields = set(node.get("properties", {}))
    assert model_fields - crd_fields == set(), "model fields missing from the CRD"
    assert crd_fields - model_fields == set(), "CRD properties the model does not know"
    required = {f.alias or n for n, f in model.model_fields.items() if f.is_required()}
    assert set(node.get("required", [])) == required
    for name, field in model.model_fields.items():
        assert node["properties"][field.alias or name]["description"] == field.description


def test_every_model_is_reached() -> None:
    """Every model of the API is compared with its CRD node above."""
    reached = {model for _, model, _ in PAIRS}
    every = {
        value
        for module in (spec, api_status)
        for value in vars(module).values()
        if isinstance(value, type)
        and issubclass(value, spec.ApiModel)
        and value.__module__ in (spec.__name__, api_status.__name__)
    }
    assert reached == every - {spec.LatencySLO}


def test_root_properties_are_the_whole_object() -> None:
    root = crd.served_schema()
    assert set(root["properties"]) == {
        f.alias or n for n, f in spec.LatencySLO.model_fields.items()
    }
    assert root["required"] == ["spec"]


# ------------------------------------------------------------------------ schema conversion


class _Union(BaseModel):
    value: int | str = Field(0, description="either")


class _Pattern(BaseModel):
    value: dict[str, int] = Field(
        default_factory=dict, description="keys", json_schema_extra={"patternProperties": {}}
    )


@pytest.mark.parametrize("model", [_Union, _Pattern], ids=["union", "patternProperties"])
def test_conversion_refuses_what_has_no_structural_form(model: type[BaseModel]) -> None:
    with pytest.raises(crd.UnsupportedSchema):
        crd.to_structural(model, in_status=False)


def test_conversion_maps_keywords() -> None:
    status = crd.served_schema()["properties"]["status"]["properties"]
    assert status["observed"]["nullable"] is True
    assert status["current"]["properties"]["variant"]["enum"] == [
        "full",
        "quantized",
        "distilled",
        None,
    ]
    assert status["observed"]["properties"]["sampledAt"]["format"] == "date-time"
    assert "default" not in yaml.safe_dump(status)
    objective = crd.served_schema()["properties"]["spec"]["properties"]["objective"]["properties"]
    assert objective["latencyMs"].items() >= {"minimum": 0, "exclusiveMinimum": True}.items()
    assert "title" not in crd.crd_yaml()


# ------------------------------------------------------------------------------- offline lint


def test_generated_crd_lints_clean(generated: dict[str, Any]) -> None:
    assert crd_lint.lint_crd(generated) == []


def _schema(crd_obj: dict[str, Any]) -> dict[str, Any]:
    return crd_obj["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


def _spec_props(crd_obj: dict[str, Any]) -> dict[str, Any]:
    return _schema(crd_obj)["properties"]["spec"]["properties"]


def _drop_type(c: dict[str, Any]) -> None:
    del _spec_props(c)["replicas"]["properties"]["min"]["type"]


def _pattern_properties(c: dict[str, Any]) -> None:
    _spec_props(c)["metrics"]["properties"]["labels"]["patternProperties"] = {
        "^a$": {"type": "string"}
    }


def _both_properties(c: dict[str, Any]) -> None:
    _spec_props(c)["replicas"]["additionalProperties"] = {"type": "integer"}


def _no_description(c: dict[str, Any]) -> None:
    del _spec_props(c)["batching"]["properties"]["maxBatchSize"]["description"]


def _bad_default(c: dict[str, Any]) -> None:
    _spec_props(c)["batching"]["properties"]["maxBatchSize"]["default"] = 4096


def _unknown_field_default(c: dict[str, Any]) -> None:
    _spec_props(c)["replicas"]["default"] = {"desired": 3}


def _empty_nested_default(c: dict[str, Any]) -> None:
    _spec_props(c)["replicas"]["default"] = {}  # what the API server refused: no such key: min


def _preserve(c: dict[str, Any]) -> None:
    _spec_props(c)["policy"]["x-kubernetes-preserve-unknown-fields"] = True


def _numeric_exclusive(c: dict[str, Any]) -> None:
    _spec_props(c)["policy"]["properties"]["headroom"]["exclusiveMinimum"] = 0


def _rule_does_not_compile(c: dict[str, Any]) -> None:
    _spec_props(c)["replicas"]["x-kubernetes-validations"][0]["rule"] = "self.min <="


def _rule_field_path(c: dict[str, Any]) -> None:
    _spec_props(c)["replicas"]["x-kubernetes-validations"][0]["fieldPath"] = ".minimum"


def _unbounded_string(c: dict[str, Any]) -> None:
    del _spec_props(c)["targetRef"]["properties"]["name"]["maxLength"]


def _unbounded_list(c: dict[str, Any]) -> None:
    del _spec_props(c)["variants"]["properties"]["allowed"]["maxItems"]


def _unbounded_map(c: dict[str, Any]) -> None:
    del _spec_props(c)["metrics"]["properties"]["labels"]["maxProperties"]


def _map_key_not_required(c: dict[str, Any]) -> None:
    items = _schema(c)["properties"]["status"]["properties"]["conditions"]["items"]
    items["required"].remove("type")


def _status_default(c: dict[str, Any]) -> None:
    _schema(c)["properties"]["status"]["properties"]["history"]["default"] = []


def _bad_column(c: dict[str, Any]) -> None:
    c["spec"]["versions"][0]["additionalPrinterColumns"][1]["jsonPath"] = ".status.observed.p99"


def _bad_condition_column(c: dict[str, Any]) -> None:
    columns = c["spec"]["versions"][0]["additionalPrinterColumns"]
    columns[6]["jsonPath"] = '.status.conditions[?(@.kind=="SLOMet")].status'


def _two_storage(c: dict[str, Any]) -> None:
    c["spec"]["versions"].append({**copy.deepcopy(c["spec"]["versions"][0]), "name": "v1beta1"})


def _metadata_schema(c: dict[str, Any]) -> None:
    _schema(c)["properties"]["metadata"]["properties"] = {
        "name": {"type": "string", "maxLength": 10}
    }


BREAKAGES = {
    "no-type": (_drop_type, "every node needs a type"),
    "patternProperties": (_pattern_properties, "'patternProperties' is not allowed"),
    "properties-and-additionalProperties": (_both_properties, "mutually exclusive"),
    "no-description": (_no_description, "needs a description"),
    "default-out-of-bounds": (_bad_default, "default"),
    "default-unknown-field": (_unknown_field_default, "default"),
    "empty-nested-default-under-rule": (_empty_nested_default, "replicas.min must be <="),
    "preserve-unknown-fields": (_preserve, "x-kubernetes-preserve-unknown-fields"),
    "numeric-exclusive-bound": (_numeric_exclusive, "must be a boolean"),
    "rule-does-not-compile": (_rule_does_not_compile, "does not compile"),
    "rule-field-path": (_rule_field_path, "fieldPath"),
    "unbounded-string-under-rule": (_unbounded_string, "needs maxLength"),
    "unbounded-list-under-rule": (_unbounded_list, "needs maxItems"),
    "unbounded-map-under-rule": (_unbounded_map, "needs maxProperties"),
    "list-map-key-not-required": (_map_key_not_required, "list-map key"),
    "status-default": (_status_default, "status fields carry no defaults"),
    "printer-column-path": (_bad_column, "not a field of the schema"),
    "printer-column-filter": (_bad_condition_column, "does not match the schema"),
    "two-storage-versions": (_two_storage, "storage version"),
    "metadata-schema": (_metadata_schema, ".metadata"),
}


@pytest.mark.parametrize("breakage", list(BREAKAGES))
def test_lint_finds_what_the_api_server_would_refuse(
    generated: dict[str, Any], breakage: str
) -> None:
    breaker, needle = BREAKAGES[breakage]
    broken = copy.deepcopy(generated)
    breaker(broken)
    problems = crd_lint.lint_crd(broken)
    assert any(needle in p for p in problems), problems


def _rules_against_literal_defaults(root: dict[str, Any]) -> list[tuple[str, str, Any]]:
    """(path, rule, result) for every CEL rule the API server evaluates on a literal default.

    Written apart from `lint_crd`: for each node with a `default`, the rules of that node and
    of every field below it that the default holds, with `self` (and `oldSelf`) bound to that
    part of the default as written, no nested defaults filled in, as the server does when the
    CRD is created.
    """
    import celpy

    results: list[tuple[str, str, Any]] = []

    def under(node: dict[str, Any], value: Any, path: str) -> None:
        for entry in node.get("x-kubernetes-validations", []):
            env = celpy.Environment()
            bound = celpy.json_to_cel(value)
            try:
                result = env.program(env.compile(entry["rule"])).evaluate(
                    {"self": bound, "oldSelf": bound}
                )
            except celpy.CELEvalError as exc:
                result = exc
            if isinstance(result, celpy.celtypes.BoolType):
                result = bool(result)
            results.append((path, entry["rule"], result))
        if isinstance(value, dict):
            for name, sub in value.items():
                if name in node.get("properties", {}):
                    under(node["properties"][name], sub, f"{path}.{name}")
        elif isinstance(value, list) and isinstance(node.get("items"), dict):
            for index, sub in enumerate(value):
                under(node["items"], sub, f"{path}[{index}]")

    for path, node in crd.walk(root):
        if "default" in node:
            under(node, node["default"], path)
    return results


@pytest.mark.parametrize("where", ["crds", "helm/latencyslo/crds"])
def test_every_cel_rule_holds_on_its_fields_literal_default(where: str) -> None:
    """The check the API server makes on create: a rule that fails (or cannot be evaluated,
    "no such key") on a literal default makes the whole CRD invalid."""
    committed = yaml.safe_load((REPO / where / crd.CRD_FILE).read_text())
    results = _rules_against_literal_defaults(crd.served_schema(committed))
    bad = [(path, rule, result) for path, rule, result in results if result is not True]
    assert bad == []
    # the rules that broken install hit are among those evaluated
    evaluated = {rule for _, rule, _ in results}
    assert {
        "self.min <= self.max",
        "self.minWindowMs <= self.maxWindowMs",
        "self.allowed.all(v, self.allowed.exists_one(w, w == v))",
    } <= evaluated


def test_literal_default_check_finds_an_empty_nested_default(generated: dict[str, Any]) -> None:
    broken = copy.deepcopy(generated)
    _empty_nested_default(broken)
    results = _rules_against_literal_defaults(crd.served_schema(broken))
    assert any(path == ".spec.replicas" and result is not True for path, _, result in results), (
        results
    )


# ------------------------------------------------------------------------------ docs/crd.md


def test_docs_hold_the_generated_reference_tables(tmp_path: Path) -> None:
    docs = REPO / "docs" / "crd.md"
    assert crd_docs.reference_tables() in docs.read_text(), "run `latencyslo crd --reference`"
    runner = CliRunner()
    assert runner.invoke(main, ["crd", "--reference", "--check", str(docs)]).exit_code == 0
    stale = tmp_path / "crd.md"
    stale.write_text(
        docs.read_text().replace("| `spec.replicas.min` |", "| `spec.replicas.minimum` |")
    )
    assert runner.invoke(main, ["crd", "--reference", "--check", str(stale)]).exit_code == 1


def test_reference_tables_cover_every_field_and_rule() -> None:
    tables = crd_docs.reference_tables()
    for path, node in crd.walk(crd.served_schema()):
        if path.startswith((".spec.", ".status.")) and not path.endswith(("[]", "[*]")):
            assert f"| `{path.lstrip('.')}` |" in tables, path
        for rule in node.get("x-kubernetes-validations", []):
            assert rule["message"] in tables
