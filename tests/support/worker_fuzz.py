"""Fuzz every endpoint of a running worker: schema-driven cases and raw hostile requests.

Two families of generated requests per endpoint, each up to `cases` examples (hypothesis):

- `schema`: schemathesis strategies from the OpenAPI documents the worker serves
  (`/openapi.json`, `/admin/openapi.json`), positive and negative, sent with the valid token
  and judged by schemathesis' own checks (no 5xx, status codes and content types as documented,
  schema-invalid data refused, valid data accepted, auth enforced...);
- `raw`: hand-made hostile HTTP (any method, random query, junk or non-UTF-8 headers and
  Authorization, random bytes, JSON with lone surrogates, huge numbers, NaN, deep nesting,
  oversized bodies), judged by this module: never a 5xx, every 4xx a JSON `{"error": ...}`.

What no single request may do to others is checked independently of the answers: a canary
thread sends a fixed valid request all along and must get 200 with the same outputs for a
variant every time (or the 503 of a queue wait limit: an accepted admin PUT may set one, as
small as it likes, until it is undone); an admin PUT that is refused must leave the
configuration unchanged (one that is accepted must put exactly its answer in force, and is
then undone); at the end the worker must be alive and its log free of tracebacks.

`fuzz(worker, cases)` returns a JSON-able report; `report["failures"]` lists every violation
(at most 50 kept, all counted).
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from tests.support.worker import WorkerProcess

CANARY = {"inputs": ["the staff were friendly", "a slow and rude service"]}
ENDPOINTS: tuple[tuple[str, str, str], ...] = (
    ("public", "POST", "/v1/predict"),
    ("public", "GET", "/healthz"),
    ("public", "GET", "/readyz"),
    ("public", "GET", "/metrics"),
    ("public", "GET", "/openapi.json"),
    ("admin", "GET", "/admin/config"),
    ("admin", "PUT", "/admin/config"),
    ("admin", "GET", "/admin/variants"),
    ("admin", "GET", "/admin/openapi.json"),
)
MAX_FAILURES_KEPT = 50
SCORE_TOLERANCE = 1e-4
"""How far the canary's scores may move with its batch companions: a batch padded to a longer
text runs other matrix shapes, so the float rounding differs (about 1e-7); the labels must
not move at all."""
LOG_PROBLEMS = ("Traceback", "unhandled error", "batcher loop error")


def _special_bodies() -> list[bytes]:
    """Bodies too big or too odd to generate case by case."""
    return [
        b"[" * 200_000 + b"]" * 200_000,
        b'{"inputs": ' + b"[" * 50_000 + b"]" * 50_000 + b"}",
        b'{"inputs": [' + b"9" * 5000 + b"]}",
        b'{"batchWindowMs": ' + b"9" * 400 + b"}",
        b'{"maxBatchSize": -' + b"9" * 4000 + b"}",
        b'{"inputs": ["' + b"x" * (1 << 20) + b'"]}',
        b'{"inputs": ["\\ud800", "ok"]}',
        b'{"inputs": ["ok"], "inputs": ["\\udfff"]}',
        b'{"batchWindowMs": Infinity}',
        b'{"batchWindowMs": NaN, "maxBatchSize": 0}',
        b'{"maxBatchSize": 1e999}',
        b"\xef\xbb\xbf" + b'{"inputs": ["bom"]}',
        '{"inputs": ["utf16"]}'.encode("utf-16"),
        b'{"inputs": ["' + "\u00e9\u4e2d\U0001f600".encode() * 1000 + b'"]}',
        b'{"inputs": [' + b'"a",' * 5000 + b'"a"]}',
        b"\x00" * 1000,
    ]


def _json_values() -> st.SearchStrategy[Any]:
    text = st.text(alphabet=st.characters(codec=None), max_size=40)  # lone surrogates too
    scalars = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(10**30), max_value=10**30),
        st.floats(allow_nan=False, allow_infinity=False),
        text,
    )
    return st.recursive(
        scalars,
        lambda inner: st.one_of(
            st.lists(inner, max_size=6), st.dictionaries(text, inner, max_size=5)
        ),
        max_leaves=20,
    )


def _json_like_bodies() -> st.SearchStrategy[bytes]:
    keys = st.sampled_from(["inputs", "variant", "batchWindowMs", "maxBatchSize", "x", ""])
    shaped = st.dictionaries(keys, _json_values(), max_size=4)
    numbers = st.sampled_from(["NaN", "Infinity", "-Infinity", "1e999", "-0", "1" * 500, "0.5"])

    def encode(value: Any) -> bytes:
        return json.dumps(value, ensure_ascii=True).encode()

    return st.one_of(
        shaped.map(encode),
        _json_values().map(encode),
        st.builds(lambda k, n: f'{{"{k}": {n}}}'.encode(), keys, numbers),
        st.binary(max_size=300),
        st.sampled_from(_special_bodies()),
    )


_FIELD_BYTES = [*range(0x21, 0x7F), *range(0x80, 0x100)]
HEADER_BYTES = st.lists(st.one_of(st.sampled_from(_FIELD_BYTES), st.just(0x20)), max_size=40).map(
    lambda b: bytes(b).strip(b" ")
)
"""Any header value HTTP allows (visible ASCII, obs-text 0x80-0xFF, inner spaces): UTF-8 or
not. Control characters are refused by aiohttp's parser before the application (a text 400,
checked in tests/integration/worker/test_hardening.py) and by the client library here."""


ODD_CONTENT_TYPES = (
    b"text/plain",
    b"application/json; charset=utf-16",
    b"application/x-www-form-urlencoded",
    b"multipart/form-data; boundary=x",
    b"application/json;;;",
    b"",
)


@dataclass
class RawRequest:
    method: str
    query: dict[str, str]
    headers: dict[str, bytes]
    body: bytes | None


def _raw_requests(method: str, admin: bool, token: str) -> st.SearchStrategy[RawRequest]:
    methods = st.one_of(
        st.just(method), st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD"])
    )
    content_types = st.one_of(
        st.just(b"application/json"),
        st.sampled_from(ODD_CONTENT_TYPES),
        HEADER_BYTES,
    )
    valid = f"Bearer {token}".encode()
    auths = st.one_of(
        st.just(valid),
        st.sampled_from([b"Bearer", b"Bearer  x", b"Basic " + token.encode(), valid + b"x"]),
        HEADER_BYTES.map(lambda b: (b"Bearer " + b).strip()),
        HEADER_BYTES,
    )
    headers = st.fixed_dictionaries(
        {},
        optional={
            "Content-Type": content_types,
            "Authorization": auths if admin else HEADER_BYTES,
            "Accept": HEADER_BYTES,
            "X-Junk": HEADER_BYTES,
        },
    )
    if admin:  # most admin cases carry the valid token, so that the body is reached
        headers = st.builds(
            lambda h, keep: {**h, "Authorization": valid} if keep else h, headers, st.booleans()
        )
    return st.builds(
        RawRequest,
        method=methods,
        query=st.dictionaries(st.text(max_size=8), st.text(max_size=20), max_size=3),
        headers=headers,
        body=st.one_of(st.none(), _json_like_bodies()),
    )


@dataclass
class Canary:
    """Sends the same valid predict request in a loop; every answer must be 200 with the
    labels first seen for the variant that served it and scores within SCORE_TOLERANCE, or a
    refusal by a queue wait limit (`refused`: what an admin's `maxQueueWaitMs` is for)."""

    url: str
    interval_s: float = 0.02
    sent: int = 0
    max_score_diff: float = 0.0
    refused: int = 0
    bad: list[str] = field(default_factory=list)
    baseline: dict[str, Any] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="canary", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)

    def _run(self) -> None:
        with httpx.Client(timeout=15) as client:
            while not self._stop.wait(self.interval_s):
                self.sent += 1
                try:
                    r = client.post(self.url + "/v1/predict", json=CANARY)
                except httpx.HTTPError as exc:
                    self.bad.append(f"transport error: {type(exc).__name__}: {exc}")
                    continue
                if r.status_code == 503 and "in the queue, over the" in r.text:
                    self.refused += 1
                    continue
                if r.status_code != 200:
                    self.bad.append(f"{r.status_code}: {r.text[:200]}")
                    continue
                body = r.json()
                seen = self.baseline.setdefault(body["variant"], body["outputs"])
                labels = [o["label"] for o in body["outputs"]]
                diff = max(
                    abs(o["scores"][k] - b["scores"][k])
                    for o, b in zip(body["outputs"], seen, strict=True)
                    for k in b["scores"]
                )
                self.max_score_diff = max(self.max_score_diff, diff)
                if labels != [o["label"] for o in seen] or diff > SCORE_TOLERANCE:
                    self.bad.append(f"outputs of {body['variant']} changed: {body['outputs']}")


@dataclass
class EndpointReport:
    schema_cases: int = 0
    raw_cases: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    failures: int = 0


class Fuzzer:
    def __init__(self, worker: WorkerProcess, cases: int, seed: int | None = None) -> None:
        self.w = worker
        self.cases = cases
        self.seed = seed
        self.auth = {"Authorization": f"Bearer {worker.token}"}
        self.client = httpx.Client(timeout=30)
        self.session = requests.Session()
        self.failures: list[dict[str, Any]] = []
        self.failure_count = 0
        self.reports: dict[str, EndpointReport] = {}
        self.baseline_config = self.get_config()

    # ----- helpers

    def base(self, kind: str) -> str:
        return self.w.admin_url if kind == "admin" else self.w.url

    def get_config(self) -> dict[str, Any]:
        r = self.client.get(self.w.admin_url + "/admin/config", headers=self.auth)
        r.raise_for_status()
        return dict(r.json())

    def fail(self, endpoint: str, what: str, request: str) -> None:
        self.failure_count += 1
        self.reports[endpoint].failures += 1
        if len(self.failures) < MAX_FAILURES_KEPT:
            self.failures.append({"endpoint": endpoint, "problem": what, "request": request[:500]})

    def check_config_effect(
        self, endpoint: str, before: dict[str, Any], status: int, body: Any, request: str
    ) -> None:
        """A refused PUT changes nothing; an accepted one puts its answer in force (undone)."""
        after = self.get_config()
        if status == 200:
            if after != body:
                self.fail(
                    endpoint, f"accepted PUT answered {body} but {after} is in force", request
                )
            if after != self.baseline_config:
                r = self.client.put(
                    self.w.admin_url + "/admin/config", json=self.baseline_config, headers=self.auth
                )
                if r.status_code != 200:
                    self.fail(endpoint, f"could not restore the config: {r.status_code}", request)
        elif after != before:
            self.fail(endpoint, f"refused PUT ({status}) changed {before} to {after}", request)

    def run_given(self, strategy: st.SearchStrategy[Any], body: Callable[[Any], None]) -> None:
        @settings(
            max_examples=self.cases,
            deadline=None,
            database=None,
            derandomize=self.seed is not None,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(strategy)
        def run(example: Any) -> None:
            body(example)

        run()

    # ----- the two families

    def schema_family(self, kind: str, method: str, path: str) -> None:
        name = f"{method} {path}"
        doc_path = "/admin/openapi.json" if kind == "admin" else "/openapi.json"
        doc = self.client.get(self.base(kind) + doc_path, headers=self.auth).json()
        operation = schemathesis.openapi.from_dict(doc)[path][method]
        strategy = st.one_of(
            operation.as_strategy(schemathesis.GenerationMode.POSITIVE),
            operation.as_strategy(schemathesis.GenerationMode.NEGATIVE),
        )
        report = self.reports[name]

        def one(case: Any) -> None:
            report.schema_cases += 1
            before = self.baseline_config if method == "PUT" else {}
            headers = self.auth if kind == "admin" else None
            try:
                response = case.call(
                    base_url=self.base(kind), session=self.session, headers=headers
                )
            except requests.RequestException as exc:
                self.fail(name, f"transport error: {exc}", case.as_curl_command())
                return
            report.statuses[str(response.status_code)] += 1
            try:
                case.validate_response(response, headers=headers)
            except Exception as exc:  # schemathesis raises one error listing every failed check
                self.fail(name, f"schemathesis: {str(exc)[:400]}", case.as_curl_command())
            if method == "PUT":
                try:
                    answer = response.json()
                except ValueError:
                    answer = None
                self.check_config_effect(
                    name, before, response.status_code, answer, case.as_curl_command()
                )

        self.run_given(strategy, one)

    def raw_family(self, kind: str, method: str, path: str) -> None:
        name = f"{method} {path}"
        report = self.reports[name]
        strategy = _raw_requests(method, kind == "admin", self.w.token)

        def one(req: RawRequest) -> None:
            report.raw_cases += 1
            shown = (
                f"{req.method} {path} query={req.query!r} headers={req.headers!r} "
                f"body={(req.body or b'')[:200]!r} ({len(req.body or b'')} bytes)"
            )
            before = self.baseline_config if kind == "admin" and req.method == "PUT" else None
            try:
                r = self.client.request(
                    req.method,
                    self.base(kind) + path,
                    params=req.query,
                    headers=req.headers,
                    content=req.body,
                )
            except httpx.HTTPError as exc:
                self.fail(name, f"transport error: {type(exc).__name__}: {exc}", shown)
                return
            report.statuses[str(r.status_code)] += 1
            if r.status_code >= 500:
                self.fail(name, f"{r.status_code}: {r.text[:200]}", shown)
            elif r.status_code >= 400 and req.method != "HEAD":
                try:
                    ok = isinstance(r.json().get("error"), str)
                except (ValueError, AttributeError):
                    ok = False
                if not ok:
                    self.fail(name, f"{r.status_code} without a JSON error: {r.text[:200]}", shown)
            if before is not None:
                try:
                    answer = r.json()
                except ValueError:
                    answer = None
                self.check_config_effect(name, before, r.status_code, answer, shown)

        self.run_given(strategy, one)

    def run(self, families: tuple[str, ...] = ("schema", "raw")) -> dict[str, Any]:
        canary = Canary(self.w.url)
        canary.start()
        started = time.monotonic()
        try:
            for kind, method, path in ENDPOINTS:
                self.reports[f"{method} {path}"] = EndpointReport()
                if "schema" in families:
                    self.schema_family(kind, method, path)
                if "raw" in families:
                    self.raw_family(kind, method, path)
        finally:
            canary.stop()
            self.client.close()
            self.session.close()
        elapsed = time.monotonic() - started
        for problem in canary.bad:
            self.failure_count += 1
            if len(self.failures) < MAX_FAILURES_KEPT:
                self.failures.append({"endpoint": "canary", "problem": problem, "request": ""})
        alive = self.w.proc.poll() is None
        log = self.w.log()
        log_problems = {p: log.count(p) for p in LOG_PROBLEMS if p in log}
        if not alive:
            self.failures.append(
                {"endpoint": "worker", "problem": "the worker died", "request": ""}
            )
            self.failure_count += 1
        if log_problems:
            self.failures.append(
                {"endpoint": "worker", "problem": f"log: {log_problems}", "request": ""}
            )
            self.failure_count += 1
        return {
            "cases_per_family_asked": self.cases,
            "seconds": round(elapsed, 1),
            "endpoints": {
                name: {
                    "schema_cases": r.schema_cases,
                    "raw_cases": r.raw_cases,
                    "cases": r.schema_cases + r.raw_cases,
                    "statuses": dict(sorted(r.statuses.items())),
                    "failures": r.failures,
                }
                for name, r in self.reports.items()
            },
            "canary": {
                "sent": canary.sent,
                "bad": len(canary.bad),
                "refused": canary.refused,
                "max_score_diff": canary.max_score_diff,
            },
            "worker_alive": alive,
            "log_problems": log_problems,
            "failure_count": self.failure_count,
            "failures": self.failures,
        }


def fuzz(
    worker: WorkerProcess,
    cases: int,
    seed: int | None = None,
    families: tuple[str, ...] = ("schema", "raw"),
) -> dict[str, Any]:
    """Fuzz every endpoint of `worker` with up to `cases` examples per family."""
    return Fuzzer(worker, cases, seed).run(families)
