"""The demo model server's v2 endpoints: server and model metadata, health, readiness, and
inference for a field model (JSON tensors only). ``TensorServer`` (``tensorserver.py``)
serves a tensor model on the same endpoints."""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
from aiohttp import web

from failwell.demo.faults import FaultInjector
from failwell.demo.responses import json_response as _json
from failwell.demo.responses import v2_error as _v2_error
from failwell.demo.responses import v2_fault as _v2_fault
from failwell.demo.v2models import Described, V2Model, _decode_infer


class V2Server:
    """/v2, /v2/health/*, /v2/models/{name}[/versions/{v}][/ready|/infer] over one model."""

    slots: asyncio.Semaphore | None = None  # --concurrency: inferences at once (subclasses too)

    def __init__(self, model: V2Model, faults: FaultInjector) -> None:
        self.model: Described = model
        self.fields, self.faults = model, faults

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/v2", self.server_metadata),
            web.get("/v2/health/live", self.live),
            web.get("/v2/health/ready", self.ready),
            web.get("/v2/models/{name}", self.model_metadata),
            web.get("/v2/models/{name}/versions/{version}", self.model_metadata),
            web.get("/v2/models/{name}/ready", self.model_ready),
            web.get("/v2/models/{name}/versions/{version}/ready", self.model_ready),
            web.post("/v2/models/{name}/infer", self.infer),
            web.post("/v2/models/{name}/versions/{version}/infer", self.infer),
        ]

    async def server_metadata(self, request: web.Request) -> web.Response:
        return _json({"name": "failwell-demo-modelserver", "version": "1", "extensions": []})

    async def live(self, request: web.Request) -> web.Response:
        return _json({"live": True})

    async def ready(self, request: web.Request) -> web.Response:
        ready = self.faults.fault.ready
        return _json({"ready": ready}, 200 if ready else 503)

    def _unknown(self, request: web.Request) -> web.Response | None:
        name = request.match_info["name"]
        version = request.match_info.get("version")
        if name != self.model.name:
            return _v2_error(f"unknown model {name!r}", 404)
        if version is not None and version != self.model.version:
            return _v2_error(f"unknown version {version!r} of model {name!r}", 404)
        return None

    async def model_metadata(self, request: web.Request) -> web.Response:
        return self._unknown(request) or _json(self.model.metadata())

    async def model_ready(self, request: web.Request) -> web.Response:
        ready = self.faults.fault.ready
        return self._unknown(request) or _json(
            {"name": self.model.name, "ready": ready}, 200 if ready else 503
        )

    async def infer(self, request: web.Request) -> web.StreamResponse:
        if self.slots is None:
            return await self._infer(request)
        async with self.slots:  # like a model server's queue: the service time is waited in it
            return await self._infer(request)

    async def _infer(self, request: web.Request) -> web.StreamResponse:
        unknown = self._unknown(request)
        if unknown is not None:
            return unknown
        body = await request.read()
        faulty = await self.faults.apply(request, _v2_fault)
        if faulty is not None:
            return faulty
        return self.answer(body, request.headers.get("Inference-Header-Content-Length"))

    def answer(self, body: bytes, header_length: str | None) -> web.Response:
        """The field model's answer to a request body (JSON tensors only)."""
        if header_length is not None:
            return _v2_error("binary tensor data is not supported; send JSON tensors")
        try:
            parsed = _decode_infer(body)
            outputs = self.fields.infer(parsed.inputs)
        except (msgspec.DecodeError, ValueError) as exc:
            return _v2_error(f"bad inference request: {exc}")
        answer: dict[str, Any] = {
            "model_name": self.model.name,
            "model_version": self.model.version,
        }
        if parsed.id is not None:
            answer["id"] = parsed.id
        answer["outputs"] = outputs
        return _json(answer)
