"""The chart's alert rules under promtool: syntax (`check rules`) and a unit test per alert.

The rules are rendered from the chart (the PrometheusRule's groups are a plain rule file) and
`alerts_test.yaml` shows each alert firing for the series that should fire it and silent for
the others, at the chart's default `for` durations.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.unit.helm.render import rendered_rule_groups

pytestmark = pytest.mark.prometheus

HERE = Path(__file__).parent


def _promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        if os.environ.get("LATENCYSLO_REQUIRE_PROMETHEUS") == "1":
            pytest.fail("'promtool' is not on PATH (Debian package 'prometheus')")
        pytest.skip("needs 'promtool' on PATH (Debian package 'prometheus')")
    return found


def _write_rules(directory: Path, values: dict[str, Any] | None = None) -> Path:
    path = directory / "rules.yaml"
    path.write_text(yaml.safe_dump({"groups": rendered_rule_groups(values)}, sort_keys=False))
    return path


def _promtool_run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [_promtool(), *args], capture_output=True, text=True, timeout=120, check=False
    )


def test_rules_pass_promtool_check(tmp_path: Path) -> None:
    rules = _write_rules(tmp_path)
    proc = _promtool_run("check", "rules", str(rules))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS: 5 rules found" in proc.stdout


def test_every_alert_has_a_unit_test() -> None:
    tests = yaml.safe_load((HERE / "alerts_test.yaml").read_text())["tests"]
    tested = {case["alertname"] for test in tests for case in test["alert_rule_test"]}
    fired = {
        case["alertname"]
        for test in tests
        for case in test["alert_rule_test"]
        if case["exp_alerts"]
    }
    alerts = {r["alert"] for g in rendered_rule_groups() for r in g["rules"] if "alert" in r}
    assert tested == alerts
    assert fired == alerts, "each alert must be shown firing at least once"


def test_alert_unit_tests_pass(tmp_path: Path) -> None:
    _write_rules(tmp_path)
    shutil.copy(HERE / "alerts_test.yaml", tmp_path / "alerts_test.yaml")
    proc = _promtool_run("test", "rules", str(tmp_path / "alerts_test.yaml"))
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize(
    "values",
    [
        {"monitoring": {"prometheusRule": {"breachedFor": "20m"}}},
        {"monitoring": {"prometheusRule": {"operatorJob": "another-job"}}},
        {"monitoring": {"prometheusRule": {"severity": "critical"}}},
    ],
)
def test_unit_tests_catch_a_changed_rule(tmp_path: Path, values: dict[str, Any]) -> None:
    """The unit tests are not vacuous: rules rendered with other values fail them."""
    _write_rules(tmp_path, values)
    shutil.copy(HERE / "alerts_test.yaml", tmp_path / "alerts_test.yaml")
    proc = _promtool_run("test", "rules", str(tmp_path / "alerts_test.yaml"))
    assert proc.returncode != 0, proc.stdout
