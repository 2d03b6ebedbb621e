"""The demo model server's tensor model on the v2 endpoints: the image scorer takes batches
as JSON or Triton's binary tensor data and answers in the form asked for."""

from __future__ import annotations

from typing import Any

import msgspec
from aiohttp import web

from failwell.demo.faults import FaultInjector
from failwell.demo.responses import v2_error as _v2_error
from failwell.demo.tensormodel import ScorerModel
from failwell.demo.v2server import V2Server


class TensorServer(V2Server):
    """``V2Server`` over the image scorer; ``state`` tells what it received (for tests)."""

    def __init__(self, scorer: ScorerModel, faults: FaultInjector) -> None:
        self.model, self.scorer, self.faults = scorer, scorer, faults

    def state(self) -> dict[str, Any]:
        return self.scorer.state()

    def answer(self, body: bytes, header_length: str | None) -> web.Response:
        try:
            length = None if header_length is None else int(header_length)
            payload, out_length = self.scorer.answer(body, length)
        except (msgspec.DecodeError, ValueError, KeyError, TypeError) as exc:
            return _v2_error(f"bad inference request: {exc}")
        if out_length is None:
            return web.Response(body=payload, content_type="application/json")
        headers = {"Inference-Header-Content-Length": str(out_length)}
        return web.Response(body=payload, content_type="application/octet-stream", headers=headers)
