"""OpenAPI 3.0 documents of the worker's two HTTP APIs, served by the worker itself.

`GET /openapi.json` on the public port describes the public API, `GET /admin/openapi.json` on
the admin port (behind the bearer token, like every admin path) the admin API. They are built
from the same limits the handlers enforce (max inputs, body sizes, config ranges), so a
schema-driven fuzzer (bench/fuzz_worker.py) generates both valid and invalid requests from
them.
"""

from __future__ import annotations

from typing import Any

from inference_worker.api import ADMIN_MAX_BYTES, PREDICT_MAX_BYTES
from slo_contracts.runtime import MAX_BATCH_SIZE, MAX_QUEUE_WAIT_MS, MAX_WINDOW_MS

_ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {"error": {"type": "string"}, "field": {"type": "string"}},
}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*codes: int) -> dict[str, Any]:
    meaning = {
        400: "body is not valid JSON",
        401: "missing or wrong bearer token",
        404: "no such path",
        405: "method not allowed",
        413: "body too large",
        415: "Content-Type is not application/json",
        422: "the body breaks a rule; `field` names it",
        500: "the model raised on this request, or a switch failed (nothing changed)",
        503: "queue full, not ready or shutting down (Retry-After)",
        504: "request deadline exceeded",
    }
    return {str(c): _json(_ERROR, meaning[c]) for c in codes}


_CONFIG_FIELDS = {
    "variant": {"type": "string"},
    "batchWindowMs": {"type": "number", "minimum": 0, "maximum": MAX_WINDOW_MS},
    "maxBatchSize": {"type": "integer", "minimum": 1, "maximum": MAX_BATCH_SIZE},
    "maxQueueWaitMs": {"type": "number", "minimum": 0, "maximum": MAX_QUEUE_WAIT_MS},
}


def _document(title: str, paths: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "openapi": "3.0.3",
        "info": {"title": title, "version": "1"},
        "paths": paths,
        **extra,
    }


def public_document(max_inputs: int) -> dict[str, Any]:
    prediction = {
        "type": "object",
        "required": ["label", "score", "scores"],
        "properties": {
            "label": {"type": "string"},
            "score": {"type": "number"},
            "scores": {"type": "object", "additionalProperties": {"type": "number"}},
        },
    }
    return _document(
        "latencyslo inference worker",
        {
            "/v1/predict": {
                "post": {
                    "operationId": "predict",
                    "description": f"Classify 1..{max_inputs} texts (body at most "
                    f"{PREDICT_MAX_BYTES} bytes).",
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "required": ["inputs"],
                                    "additionalProperties": False,
                                    "properties": {
                                        "inputs": {
                                            "type": "array",
                                            "minItems": 1,
                                            "maxItems": max_inputs,
                                            "items": {"type": "string"},
                                        }
                                    },
                                }
                            }
                        },
                    },
                    "responses": {
                        "200": _json(
                            {
                                "type": "object",
                                "required": ["variant", "outputs"],
                                "properties": {
                                    "variant": {"type": "string"},
                                    "outputs": {"type": "array", "items": prediction},
                                },
                            },
                            "one output per input, in order",
                        ),
                        **_errors(400, 413, 415, 422, 500, 503, 504),
                    },
                }
            },
            "/healthz": {
                "get": {
                    "operationId": "healthz",
                    "responses": {"200": _json({"type": "object"}, "the process runs")},
                }
            },
            "/readyz": {
                "get": {
                    "operationId": "readyz",
                    "responses": {
                        "200": _json({"type": "object"}, "the active variant is warm"),
                        **_errors(503),
                    },
                }
            },
            "/metrics": {
                "get": {
                    "operationId": "metrics",
                    "responses": {
                        "200": {
                            "description": "Prometheus text format",
                            "content": {"text/plain": {"schema": {"type": "string"}}},
                        }
                    },
                }
            },
            "/openapi.json": {
                "get": {
                    "operationId": "publicOpenapi",
                    "responses": {"200": _json({"type": "object"}, "this document")},
                }
            },
        },
    )


def admin_document(variants: list[str]) -> dict[str, Any]:
    config = {
        "type": "object",
        "required": list(_CONFIG_FIELDS),
        "properties": {**_CONFIG_FIELDS, "variant": {"type": "string", "enum": variants}},
    }
    update = {
        "type": "object",
        "minProperties": 1,
        "additionalProperties": False,
        "properties": {**_CONFIG_FIELDS, "variant": {"type": "string", "enum": variants}},
    }
    secured: dict[str, Any] = {"security": [{"bearer": []}]}
    return _document(
        "latencyslo inference worker: admin API",
        {
            "/admin/config": {
                "get": {
                    "operationId": "getConfig",
                    **secured,
                    "responses": {
                        "200": _json(config, "the configuration in force"),
                        **_errors(401),
                    },
                },
                "put": {
                    "operationId": "putConfig",
                    **secured,
                    "description": f"Change the runtime configuration (body at most "
                    f"{ADMIN_MAX_BYTES} bytes); fields left out keep their value; nothing "
                    "changes on error.",
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": update}},
                    },
                    "responses": {
                        "200": _json(config, "the new configuration, in force"),
                        **_errors(400, 401, 413, 415, 422, 500),
                    },
                },
            },
            "/admin/variants": {
                "get": {
                    "operationId": "getVariants",
                    **secured,
                    "responses": {"200": _json({"type": "object"}, "the variants"), **_errors(401)},
                }
            },
            "/admin/openapi.json": {
                "get": {
                    "operationId": "adminOpenapi",
                    **secured,
                    "responses": {
                        "200": _json({"type": "object"}, "this document"),
                        **_errors(401),
                    },
                }
            },
        },
        components={"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
    )
