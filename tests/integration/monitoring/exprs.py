"""Every PromQL expression the dashboard and the alert rules ship, ready to evaluate.

Grafana variables are substituted the way Grafana does before it sends a query: the
multi-value `$namespace`/`$name` variables with "All" become the regex `.+`, and the interval
macros become durations.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from tests.unit.helm.render import REPO, rendered_rule_groups

DASHBOARD = REPO / "dashboards" / "latencyslo.json"


def load_dashboard(path: Path = DASHBOARD) -> dict[str, Any]:
    return dict(json.loads(path.read_text()))


def dashboard_queries(dashboard: dict[str, Any] | None = None) -> list[tuple[str, str]]:
    """(where, expr) for every panel target and every Prometheus annotation query."""
    dash = dashboard or load_dashboard()
    out: list[tuple[str, str]] = []
    for panel in dash["panels"]:
        for target in panel.get("targets", []):
            out.append((f"panel {panel['title']!r} {target['refId']}", target["expr"]))
    for annotation in dash["annotations"]["list"]:
        if "expr" in annotation:
            out.append((f"annotation {annotation['name']!r}", annotation["expr"]))
    return out


def template_queries(dashboard: dict[str, Any] | None = None) -> list[tuple[str, str, str]]:
    """(variable, series selector, label) of every `label_values(selector, label)` variable."""
    dash = dashboard or load_dashboard()
    out = []
    for var in dash["templating"]["list"]:
        if var["type"] != "query":
            continue
        query = var["query"]["query"] if isinstance(var["query"], dict) else var["query"]
        match = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", query.strip())
        assert match, f"variable {var['name']}: unsupported query {query!r}"
        out.append((var["name"], match.group(1), match.group(2)))
    return out


def rule_queries(values: dict[str, Any] | None = None) -> list[tuple[str, str]]:
    """(alert or record name, expr) of every rule the chart's PrometheusRule renders."""
    return [
        (rule.get("alert") or rule["record"], rule["expr"])
        for group in rendered_rule_groups(values)
        for rule in group["rules"]
    ]


def substitute(
    expr: str,
    *,
    rate_interval: str = "1m",
    range_: str = "1h",
    interval: str = "15s",
    quantile: str = "0.99",
    histogram: str = "inference_request_duration_seconds",
) -> str:
    """The query Grafana sends with "All" selected, the given time macros, and the objective
    variables (`quantile`, `histogram`: values of latencyslo_objective_info) set as given.
    A regex back-reference (`"$1"` in label_replace) is not a variable and stays."""
    out = expr.replace("$__rate_interval", rate_interval)
    out = out.replace("$__range", range_).replace("$__interval", interval)
    out = re.sub(r"\$\{?(namespace|name)\}?", ".+", out)
    out = re.sub(r"\$\{?histogram\}?", histogram, out)
    out = re.sub(r"\$\{?quantile\}?", quantile, out)
    assert not re.search(r"\$(?!\d)", out), f"unsubstituted variable in {out!r}"
    return out
