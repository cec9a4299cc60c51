"""Every PromQL expression of the dashboard parses under promtool, and the dashboard takes the
objective's percentile and histogram from the operator instead of fixing them.

Parsing: each panel query, annotation query and template-variable selector, substituted as
Grafana sends it, is written as a recording rule and checked with `promtool check rules`
(the parser of Prometheus itself). `test_promql.py` then evaluates the same expressions on
real series.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.integration.monitoring.exprs import (
    dashboard_queries,
    load_dashboard,
    substitute,
    template_queries,
)

HERE = Path(__file__).parent


def _promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        if os.environ.get("LATENCYSLO_REQUIRE_PROMETHEUS") == "1":
            pytest.fail("'promtool' is not on PATH (Debian package 'prometheus')")
        pytest.skip("needs 'promtool' on PATH (Debian package 'prometheus')")
    return found


def _all_expressions() -> list[tuple[str, str]]:
    out = [(where, substitute(expr)) for where, expr in dashboard_queries()]
    for variable, selector, _label in template_queries():
        out.append((f"variable {variable}", f"count({substitute(selector)})"))
    return out


def _check(tmp_path: Path, exprs: list[tuple[str, str]]) -> subprocess.CompletedProcess[str]:
    rules = [{"record": f"dashboard:expr_{i}", "expr": expr} for i, (_, expr) in enumerate(exprs)]
    path = tmp_path / "dashboard_rules.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    return subprocess.run(
        [_promtool(), "check", "rules", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.prometheus
def test_every_dashboard_expression_parses_with_promtool(tmp_path: Path) -> None:
    exprs = _all_expressions()
    assert len(exprs) >= 20
    proc = _check(tmp_path, exprs)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"SUCCESS: {len(exprs)} rules found" in proc.stdout


@pytest.mark.prometheus
def test_the_parse_check_catches_a_broken_expression(tmp_path: Path) -> None:
    exprs = _all_expressions()
    where, expr = exprs[0]
    proc = _check(tmp_path, [*exprs, (where, f"sum by (namespace ({expr})")])
    assert proc.returncode != 0, proc.stdout


def test_no_objective_is_fixed_in_the_dashboard() -> None:
    """The workers' quantile and histogram are variables fed by latencyslo_objective_info;
    no query names p99, 0.99 or the default histogram."""
    dash = load_dashboard()
    for where, expr in dashboard_queries(dash):
        if "reconcile_duration" in expr:  # the operator's own step time, not an objective
            continue
        assert "0.99" not in expr, where
        assert "inference_request_duration_seconds" not in expr, where
        assert "p99" not in expr, where
    variables = {v["name"]: v for v in dash["templating"]["list"]}
    for name in ("quantile", "histogram"):
        assert variables[name]["type"] == "query"
        assert "latencyslo_objective_info" in variables[name]["definition"]
    workers = [
        expr
        for where, expr in dashboard_queries(dash)
        if "histogram_quantile($quantile" in expr and "${histogram}_bucket" in expr
    ]
    assert workers, "no workers' latency panel on the objective's own quantile and histogram"
    assert all("latencyslo_objective_info" in expr for expr in workers)


def test_decision_annotation_shows_action_reason_observed_and_predicted() -> None:
    dash = load_dashboard()
    annotation = next(a for a in dash["annotations"]["list"] if a["name"] == "Decisions")
    text = annotation["titleFormat"] + annotation["textFormat"]
    shown = set(re.findall(r"\{\{(\w+)\}\}", text))
    assert {"action", "reason", "observed_ms", "predicted_ms", "namespace", "name"} <= shown
    expr = annotation["expr"]
    # every label the text shows is produced by the query (by-clause or count_values label)
    produced = set(re.findall(r"by \(([^)]*)\)", expr)[0].replace(" ", "").split(","))
    produced |= set(re.findall(r'count_values by \([^)]*\) \("(\w+)"', expr))
    assert shown <= produced, shown - produced
    events = [p for p in dash["panels"] if p["type"] == "text"]
    assert any(
        "--field-selector involvedObject.kind=LatencySLO" in p["options"]["content"] for p in events
    )


GRAFANA_MACROS = {"__rate_interval", "__range", "__interval"}


def test_every_variable_used_is_defined() -> None:
    """A `$variable` in a query, title or legend is a template variable of the dashboard or a
    Grafana macro (a regex back-reference like label_replace's "$1" is neither and stays)."""
    dash = load_dashboard()
    defined = {v["name"] for v in dash["templating"]["list"]} | GRAFANA_MACROS
    texts = [expr for _, expr in dashboard_queries(dash)]
    texts += [v["definition"] for v in dash["templating"]["list"] if "definition" in v]
    for panel in dash["panels"]:
        texts.append(panel["title"])
        texts += [t.get("legendFormat", "") for t in panel.get("targets", [])]
    used = {m for text in texts for m in re.findall(r"\$\{?([A-Za-z_]\w*)", text)}
    assert used <= defined, used - defined
    assert {"quantile", "histogram", "namespace", "name"} <= used
