"""The OpenAPI document, generated from the routes' msgspec schemas."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec

from failwell.api.feedback import FeedbackBody
from failwell.config.models import RouteKind
from failwell.protocols.chat import ChatRequest
from failwell.protocols.embeddings import EmbeddingsRequest
from failwell.routing.route import Route, input_struct
from failwell.version import __version__

ERROR = {"$ref": "#/components/schemas/Error"}
ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["type", "message"],
            "properties": {
                "type": {"type": "string"},
                "message": {"type": "string"},
                "field": {"type": "string"},
                "param": {"type": "string"},
                "tiers": {"type": "array", "items": {"type": "object"}},
            },
        }
    },
}
ANSWER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["outputs", "tier", "quality", "backend", "model_version"],
    "properties": {
        "outputs": {},
        "tier": {"type": "string"},
        "quality": {"type": "string"},
        "backend": {"type": "string"},
        "model_version": {"anyOf": [{"type": "string"}, {"type": "null"}]},
        "request_id": {"type": "string"},
    },
}


def _errors(*codes: int) -> dict[str, Any]:
    return {
        str(c): {"description": "error", "content": {"application/json": {"schema": ERROR}}}
        for c in codes
    }


def _json(schema: dict[str, Any], description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


INFERENCE_ERRORS = (400, 401, 403, 404, 408, 413, 422, 429, 431, 503)
KEYS = {
    "bearer": {
        "type": "http",
        "scheme": "bearer",
        "description": "An API key; the x-api-key header is accepted too.",
    }
}


def _inputs_schema(route: Route, structs: list[Any]) -> dict[str, Any]:
    """A field route's input struct (added to ``structs``); a tensor route's tensors, each as
    nested arrays in the route's shape."""
    if route.tensors is None:
        inputs = input_struct(route.name, route.schema)
        structs.append(inputs)
        return {"$ref": f"#/components/schemas/{inputs.__name__}"}
    specs = route.tensors.inputs or {}
    return {
        "type": "object",
        "required": list(specs),
        "additionalProperties": route.tensors.inputs is None or route.tensors.passthrough,
        "properties": {
            n: {"type": "array", "description": f"{s.datatype.value} {list(s.shape)}"}
            for n, s in specs.items()
        },
    }


def openapi(routes: Mapping[str, Route], auth: bool = False) -> dict[str, Any]:
    structs: list[Any] = [ChatRequest, EmbeddingsRequest, FeedbackBody]
    paths: dict[str, Any] = {}
    for name, route in routes.items():
        if route.kind is not RouteKind.PREDICT:
            continue
        body = {
            "type": "object",
            "required": ["inputs"],
            "additionalProperties": False,
            "properties": {"inputs": _inputs_schema(route, structs)},
        }
        paths[f"/v1/predict/{name}"] = {
            "post": {
                "summary": f"Predict with route {name}",
                "operationId": f"predict_{name}",
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": body}},
                },
                "responses": {"200": _json(ANSWER_SCHEMA), **_errors(*INFERENCE_ERRORS)},
            }
        }
    for name, route in routes.items():
        if route.config.quality is None:
            continue
        paths[f"/v1/feedback/{name}"] = {
            "post": {
                "summary": f"Labels for earlier answers of route {name}",
                "operationId": f"feedback_{name}",
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {"$ref": "#/components/schemas/FeedbackBody"}
                        }
                    },
                },
                "responses": {
                    "200": _json({"type": "object"}),
                    **_errors(400, 401, 403, 404, 409, 413, 422, 431, 503),
                },
            }
        }
    _, components = msgspec.json.schema_components(
        structs, ref_template="#/components/schemas/{name}"
    )
    components["Error"] = ERROR_SCHEMA
    paths["/v1/chat/completions"] = {
        "post": {
            "summary": "OpenAI-compatible chat completion; 'model' names a chat route",
            "operationId": "chat_completions",
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {"schema": {"$ref": "#/components/schemas/ChatRequest"}}
                },
            },
            "responses": {"200": _json({"type": "object"}), **_errors(*INFERENCE_ERRORS)},
        }
    }
    paths["/v1/embeddings"] = {
        "post": {
            "summary": "OpenAI-compatible embeddings; 'model' names an embeddings route",
            "operationId": "embeddings",
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {"$ref": "#/components/schemas/EmbeddingsRequest"}
                    }
                },
            },
            "responses": {"200": _json({"type": "object"}), **_errors(*INFERENCE_ERRORS)},
        }
    }
    for path, summary in (("/health/live", "Liveness"), ("/v2/health/live", "V2 liveness")):
        paths[path] = {
            "get": {
                "summary": summary,
                "operationId": path.strip("/").replace("/", "_"),
                "responses": {"200": _json({"type": "object"}), **_errors(431)},
                "security": [],
            }
        }
    for path, summary in (("/health/ready", "Readiness"), ("/v2/health/ready", "V2 readiness")):
        paths[path] = {
            "get": {
                "summary": summary,
                "operationId": path.strip("/").replace("/", "_"),
                "responses": {
                    "200": _json({"type": "object"}),
                    "503": _json({"type": "object"}, "not ready"),
                    **_errors(431),
                },
                "security": [],
            }
        }
    paths["/metrics"] = {
        "get": {
            "summary": "Prometheus metrics",
            "operationId": "metrics",
            "responses": {
                "200": {
                    "description": "OK",
                    "content": {"text/plain": {"schema": {"type": "string"}}},
                },
                **_errors(401, 403, 431),
            },
        }
    }
    doc: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {"title": "failwell gateway", "version": __version__},
        "paths": paths,
        "components": {"schemas": components},
    }
    if auth:
        doc["components"]["securitySchemes"] = KEYS
        doc["security"] = [{"bearer": []}]
    return doc
