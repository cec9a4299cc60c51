"""Operator settings: defaults, environment, flags over environment, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from slo_operator.run import operator_command
from slo_operator.settings import OperatorSettings, SettingsError, describe, load_settings


def test_defaults_are_the_documented_ones() -> None:
    s = load_settings({}, environ={})
    assert s == OperatorSettings()
    assert s.prometheus_url == "http://prometheus-operated.monitoring.svc:9090"
    assert s.max_replicas == 32
    assert s.namespaces == ()
    assert s.clusterwide
    assert s.push_timeout_s == 2.0
    assert s.query_timeout_s == 5.0
    assert s.admin_token_secret == "latencyslo-admin-token"
    assert s.metrics_port == 9102
    assert s.liveness == "http://0.0.0.0:8080/healthz"
    assert s.max_data_age_s == 60.0
    assert s.profiles is None
    assert (s.peering, s.peering_mandatory, s.standalone) == ("latencyslo", False, False)
    assert (s.scrape_interval_s, s.look_interval_s) == (15.0, 5.0)


def test_scrape_and_look_intervals() -> None:
    env = {"LATENCYSLO_SCRAPE_INTERVAL_S": "5", "LATENCYSLO_LOOK_INTERVAL_S": "0"}
    s = load_settings({}, environ=env)
    assert (s.scrape_interval_s, s.look_interval_s) == (5.0, 0.0)  # 0: no looks
    s = load_settings({"look_interval_s": "2.5"}, environ=env)
    assert s.look_interval_s == 2.5


def test_environment() -> None:
    s = load_settings(
        {},
        environ={
            "LATENCYSLO_PROMETHEUS_URL": "http://prom.monitoring:9090/",
            "LATENCYSLO_MAX_REPLICAS": "12",
            "LATENCYSLO_NAMESPACES": "ml, team-a,,ml",
            "LATENCYSLO_PUSH_TIMEOUT_S": "0.5",
            "LATENCYSLO_QUERY_TIMEOUT_S": "3",
            "LATENCYSLO_ADMIN_TOKEN_SECRET": "token",
            "LATENCYSLO_METRICS_PORT": "0",
            "LATENCYSLO_MAX_DATA_AGE_S": "45",
            "LATENCYSLO_STANDALONE": "true",
            "LATENCYSLO_PEERING": "ours",
        },
    )
    assert s.prometheus_url == "http://prom.monitoring:9090"
    assert s.max_replicas == 12
    assert s.namespaces == ("ml", "team-a")
    assert not s.clusterwide
    assert (s.push_timeout_s, s.query_timeout_s, s.max_data_age_s) == (0.5, 3.0, 45.0)
    assert s.admin_token_secret == "token"
    assert s.metrics_port == 0
    assert s.standalone is True
    assert (s.peering, s.peering_mandatory) == ("ours", True)


def test_flags_win_over_environment() -> None:
    s = load_settings(
        {"max_replicas": "4", "namespaces": ("a", "b,c"), "liveness": ""},
        environ={"LATENCYSLO_MAX_REPLICAS": "12", "LATENCYSLO_NAMESPACES": "x"},
    )
    assert s.max_replicas == 4
    assert s.namespaces == ("a", "b", "c")
    assert s.liveness is None


def test_profiles_file(tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    path.write_text("{}")
    assert load_settings({"profiles": str(path)}, environ={}).profiles == str(path)


@pytest.mark.parametrize(
    ("flags", "environ", "message"),
    [
        (
            {},
            {"LATENCYSLO_MAX_REPLICAS": "many"},
            "--max-replicas / $LATENCYSLO_MAX_REPLICAS: 'many' is not an integer",
        ),
        (
            {"max_replicas": "0"},
            {},
            "--max-replicas / $LATENCYSLO_MAX_REPLICAS: 0 is out of range 1..10000",
        ),
        (
            {"prometheus_url": "prometheus:9090"},
            {},
            "--prometheus-url / $LATENCYSLO_PROMETHEUS_URL: 'prometheus:9090' is not an http(s) "
            "URL",
        ),
        (
            {},
            {"LATENCYSLO_PUSH_TIMEOUT_S": "-1"},
            "--push-timeout / $LATENCYSLO_PUSH_TIMEOUT_S: -1.0 must be a number of seconds in "
            "(0, 60.0]",
        ),
        (
            {"query_timeout_s": "nan"},
            {},
            "--query-timeout / $LATENCYSLO_QUERY_TIMEOUT_S: nan must be",
        ),
        (
            {"metrics_port": "70000"},
            {},
            "--metrics-port / $LATENCYSLO_METRICS_PORT: 70000 is out of range 0..65535",
        ),
        (
            {"namespaces": ("Bad_NS",)},
            {},
            "--namespace / $LATENCYSLO_NAMESPACES: 'Bad_NS' is not a namespace name",
        ),
        (
            {},
            {"LATENCYSLO_STANDALONE": "maybe"},
            "--standalone / $LATENCYSLO_STANDALONE: 'maybe' is not a boolean",
        ),
        ({"profiles": "/no/such/file.json"}, {}, "--profiles / $LATENCYSLO_PROFILES: no such file"),
        ({"admin_token_secret": " "}, {}, "--admin-token-secret / $LATENCYSLO_ADMIN_TOKEN_SECRET"),
        ({"liveness": "localhost:8080"}, {}, "--liveness: 'localhost:8080' is not an http(s) URL"),
        ({"peering": "Not A Name"}, {}, "--peering / $LATENCYSLO_PEERING"),
        ({"nonsense": 1}, {}, "unknown settings: nonsense"),
        (
            {},
            {"LATENCYSLO_SCRAPE_INTERVAL_S": "0"},
            "--scrape-interval / $LATENCYSLO_SCRAPE_INTERVAL_S: 0.0 must be a number of seconds",
        ),
        (
            {"look_interval_s": "-5"},
            {},
            "--look-interval / $LATENCYSLO_LOOK_INTERVAL_S: -5.0 must be a number of seconds",
        ),
    ],
)
def test_bad_values_name_the_flag_and_the_variable(flags, environ, message) -> None:
    with pytest.raises(SettingsError) as info:
        load_settings(flags, environ=environ)
    assert message in str(info.value)


def test_settings_are_read_when_asked_not_at_import(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LATENCYSLO_MAX_REPLICAS", "7")
    assert load_settings({}).max_replicas == 7
    monkeypatch.setenv("LATENCYSLO_MAX_REPLICAS", "9")
    assert load_settings({}).max_replicas == 9


def test_describe_lists_every_flag() -> None:
    rows = dict(describe(OperatorSettings(namespaces=("a", "b"))))
    assert rows["--namespace"] == "a,b"
    assert rows["--prometheus-url"] == "http://prometheus-operated.monitoring.svc:9090"


def test_command_rejects_bad_settings_before_starting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LATENCYSLO_MAX_REPLICAS", raising=False)
    result = CliRunner().invoke(operator_command, ["--max-replicas", "lots"])
    assert result.exit_code == 2
    assert "--max-replicas / $LATENCYSLO_MAX_REPLICAS: 'lots' is not an integer" in result.output


def test_command_help_lists_the_flags() -> None:
    result = CliRunner().invoke(operator_command, ["--help"])
    assert result.exit_code == 0
    for flag in (
        "--prometheus-url", "--max-replicas", "--namespace", "--push-timeout", "--query-timeout",
        "--admin-token-secret", "--metrics-port", "--liveness", "--max-data-age", "--profiles",
        "--peering", "--standalone",
    ):  # fmt: skip
        assert flag in result.output
