"""The managed Prometheus really scrapes file-discovered targets and answers PromQL."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from slo_operator.promserver import PrometheusServer

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
