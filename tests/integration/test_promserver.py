"""The managed Prometheus really scrapes file-discovered targets and answers PromQL."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from slo_local.promserver import PrometheusServer, prometheus_binary

pytestmark = pytest.mark.prometheus


class _Metrics(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"# TYPE demo_value gauge\ndemo_value 42\n"
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def test_scrapes_file_sd_target(prometheus: PrometheusServer) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Metrics)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        prometheus.set_targets([([f"127.0.0.1:{server.server_port}"], {"namespace": "demo"})])
        result = prometheus.wait_for('demo_value{namespace="demo"}', timeout_s=20)
        assert float(result[0]["value"][1]) == 42.0
        assert result[0]["metric"]["namespace"] == "demo"
    finally:
        server.shutdown()


def test_a_relative_workdir_still_finds_its_targets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`latencyslo demo --out out/demo` gives a relative folder; Prometheus resolves relative
    paths in its config from the config's folder, so the server must write absolute ones."""
    if not prometheus_binary():
        pytest.skip("the 'prometheus' binary is not on PATH")
    monkeypatch.chdir(tmp_path)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Metrics)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        with PrometheusServer(scrape_interval_s=1.0, workdir=Path("out/prom")) as prom:
            assert prom.workdir.is_absolute()
            prom.set_targets([([f"127.0.0.1:{server.server_port}"], {"namespace": "demo"})])
            result = prom.wait_for('demo_value{namespace="demo"}', timeout_s=20)
            assert float(result[0]["value"][1]) == 42.0
    finally:
        server.shutdown()
