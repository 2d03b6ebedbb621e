"""The OpenAI-compatible front end: POST /v1/chat/completions, where ``model`` names a route."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, Literal

import msgspec

from failwell.api.auth import Pass
from failwell.api.http import Receive, Scope, Send, read_body, respond
from failwell.api.layers import FrontEnd
from failwell.api.limits import BodyLimits
from failwell.api.predict import find_route
from failwell.api.responses import answer_headers, encode
from failwell.backends.openai import PASSTHROUGH
from failwell.config.models import RouteKind
from failwell.contracts import Exchange
from failwell.errors import InvalidInput
from failwell.routing.route import Route, invalid_from_msgspec

MAX_MESSAGES = 1024


class ContentPart(msgspec.Struct, forbid_unknown_fields=False):
    type: str
    text: str | None = None


class Message(msgspec.Struct, forbid_unknown_fields=False, omit_defaults=True):
    role: Literal["system", "user", "assistant", "tool", "developer"]
    content: str | list[ContentPart] | None = None
    name: str | None = None


class ChatRequest(msgspec.Struct, forbid_unknown_fields=False):
    model: str
    messages: list[Message]
    stream: bool = False
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    stop: str | list[str] | None = None
    seed: int | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None


_decode = msgspec.json.Decoder(ChatRequest).decode


def _text(message: Message) -> str:
    if isinstance(message.content, list):
        return "".join(p.text or "" for p in message.content if p.type == "text")
    return message.content or ""


def decode_chat(body: bytes) -> tuple[str, dict[str, Any]]:
    try:
        req = _decode(body)
    except msgspec.DecodeError as exc:
        raise invalid_from_msgspec(exc) from None
    if req.stream:
        raise InvalidInput(
            "streaming is not supported yet; send stream: false", field="stream", status=400
        )
    if not req.messages:
        raise InvalidInput("messages: at least one message is required", field="messages")
    if len(req.messages) > MAX_MESSAGES:
        raise InvalidInput(f"messages: at most {MAX_MESSAGES} messages", field="messages")
    inputs: dict[str, Any] = {
        "messages": [{"role": m.role, "content": _text(m)} for m in req.messages]
    }
    for key in PASSTHROUGH:
        value = getattr(req, key)
        if value is not None:
            inputs[key] = value
    return req.model, inputs


def completion(
    route: Route, request_id: str, outputs: Any, extra: dict[str, Any]
) -> dict[str, Any]:
    if isinstance(outputs, dict) and isinstance(outputs.get("content"), str):
        content, finish = outputs["content"], outputs.get("finish_reason") or "stop"
    else:
        content = outputs if isinstance(outputs, str) else encode(outputs).decode()
        finish = "stop"
    return {
        "id": f"chatcmpl-{request_id}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": route.name,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": finish,
                "logprobs": None,
            }
        ],
        "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
        "failwell": extra,
    }


def front_end(routes: Mapping[str, Route], limit: BodyLimits) -> FrontEnd:
    """POST /v1/chat/completions; ``model`` names the route."""

    async def serve(scope: Scope, receive: Receive, send: Send, ex: Exchange, gate: Pass) -> None:
        ex.front_end = "openai"
        await chat(routes, scope, receive, send, ex, limit, gate)

    return serve


async def chat(
    routes: Mapping[str, Route],
    scope: Scope,
    receive: Receive,
    send: Send,
    ex: Exchange,
    limit: BodyLimits,
    gate: Pass,
) -> None:
    body = await read_body(scope, receive, limit)
    model, inputs = decode_chat(body)
    ex.route = model
    route = find_route(routes, model, RouteKind.CHAT)
    ex.inputs = inputs
    slot = await gate.admit(route.name)
    try:
        answer = await route.answer(inputs, ex.request_id, "openai", ex.upstream_headers)
    finally:
        gate.release(slot)
    ex.answer = answer
    extra = {
        "tier": answer.tier,
        "quality": answer.quality,
        "backend": answer.backend,
        "model_version": answer.model_version,
    }
    payload = encode(completion(route, ex.request_id, answer.outputs, extra))
    await respond(send, 200, payload, answer_headers(answer, ex.request_id))


async def list_models(routes: Mapping[str, Route], send: Send) -> None:
    data = [
        {"id": name, "object": "model", "created": 0, "owned_by": "failwell"}
        for name, r in routes.items()
        if r.kind is RouteKind.CHAT
    ]
    await respond(
        send,
        200,
        encode({"object": "list", "data": data}),
        [(b"content-type", b"application/json")],
    )
