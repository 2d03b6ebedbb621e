"""The OpenAI-compatible front end: POST /v1/chat/completions, where ``model`` names a route.

The request travels the tier chain as the client sent it (``protocols/chat.py``); a model
tier's answer comes back whole, with the route's labels in headers and one extra field,
``failwell``. A non-model tier's answer is wrapped in a completion whose ``model`` names it.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

from failwell.api.auth import Pass
from failwell.api.chatstream import stream_chat
from failwell.api.http import Receive, Scope, Send, read_body, respond
from failwell.api.layers import FrontEnd
from failwell.api.limits import BodyLimits
from failwell.api.predict import find_route
from failwell.api.responses import answer_headers, encode, with_labels
from failwell.config.models import RouteKind
from failwell.contracts import Answer, Exchange
from failwell.protocols.chat import completion, decode_request, is_completion
from failwell.routing.route import Route


def answer_body(answer: Answer, request_id: str) -> bytes:
    """The completion for ``answer``: the upstream's own, or one made for a non-model tier,
    with the ``failwell`` field added."""
    outputs = answer.outputs
    if not is_completion(outputs):
        outputs = completion(request_id, int(time.time()), answer.backend, outputs)
    return with_labels(outputs, answer)


def front_end(routes: Mapping[str, Route], limit: BodyLimits) -> FrontEnd:
    """POST /v1/chat/completions; ``model`` names the route."""
    kind = RouteKind.CHAT  # read once: an enum member off its class is a slow lookup

    async def chat(scope: Scope, receive: Receive, send: Send, ex: Exchange, gate: Pass) -> None:
        ex.front_end = "openai"
        body = await read_body(scope, receive, limit)
        model, stream, inputs = decode_request(body)
        ex.route = model
        route = find_route(routes, model, kind)
        ex.inputs = inputs
        slot = await gate.admit(route.name)
        try:
            if stream:
                await stream_chat(route, inputs, receive, send, ex)
                return
            answer = await route.answer(inputs, ex.request_id, "openai", ex.upstream_headers)
        finally:
            gate.release(slot)
        ex.answer = answer
        await respond(
            send, 200, answer_body(answer, ex.request_id), answer_headers(answer, ex.request_id)
        )

    return chat


async def list_models(routes: Mapping[str, Route], send: Send) -> None:
    data = [
        {"id": name, "object": "model", "created": 0, "owned_by": "failwell"}
        for name, r in routes.items()
        if r.kind is not RouteKind.PREDICT
    ]
    await respond(
        send,
        200,
        encode({"object": "list", "data": data}),
        [(b"content-type", b"application/json")],
    )
