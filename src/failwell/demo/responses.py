"""JSON responses and error bodies of the demo model server: v2's ``{"error": "..."}`` and
OpenAI's ``{"error": {"message", "type", ...}}``, for handled errors and injected faults."""

from __future__ import annotations

from typing import Any

import msgspec
from aiohttp import web

from failwell.demo.faults import Fault

_encode = msgspec.json.Encoder().encode


def json_response(data: Any, status: int = 200) -> web.Response:
    return web.Response(status=status, body=_encode(data), content_type="application/json")


def v2_error(message: str, status: int = 400) -> web.Response:
    return json_response({"error": message}, status)


def openai_error(
    message: str, status: int = 400, kind: str = "invalid_request_error", code: str | None = None
) -> web.Response:
    return json_response(
        {"error": {"message": message, "type": kind, "param": None, "code": code}}, status
    )


V2_FAULT_BODY = _encode({"error": "injected fault"})


def v2_fault(fault: Fault) -> bytes:
    return V2_FAULT_BODY


def openai_fault(fault: Fault) -> bytes:
    """OpenAI's error shape; a 4xx is the caller's (invalid_request_error), else server_error."""
    kind = "invalid_request_error" if 400 <= fault.status < 500 else "server_error"
    error = {"message": "injected fault", "type": kind, "param": None, "code": fault.code}
    return _encode({"error": error})
