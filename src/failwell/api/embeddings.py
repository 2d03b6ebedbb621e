"""The OpenAI-compatible embeddings front end: POST /v1/embeddings, where ``model`` names an
embeddings route. The request travels the tier chain as the client sent it; a model tier's
answer comes back whole with the ``failwell`` field; a non-model tier's value is the vector
answered for every input."""

from __future__ import annotations

from collections.abc import Mapping

from failwell.api.auth import Pass
from failwell.api.http import Receive, Scope, Send, read_body, respond
from failwell.api.layers import FrontEnd
from failwell.api.limits import BodyLimits
from failwell.api.predict import find_route
from failwell.api.responses import answer_headers, with_labels
from failwell.config.models import RouteKind
from failwell.contracts import Exchange
from failwell.protocols.embeddings import decode_request, embeddings, is_embeddings
from failwell.routing.route import Route


def front_end(routes: Mapping[str, Route], limit: BodyLimits) -> FrontEnd:
    """POST /v1/embeddings; ``model`` names the route."""

    async def serve(scope: Scope, receive: Receive, send: Send, ex: Exchange, gate: Pass) -> None:
        ex.front_end = "openai"
        body = await read_body(scope, receive, limit)
        name, inputs = decode_request(body)
        ex.route = name
        route = find_route(routes, name, RouteKind.EMBEDDINGS)
        ex.inputs = inputs
        slot = await gate.admit(route.name)
        try:
            answer = await route.answer(inputs, ex.request_id, "openai", ex.upstream_headers)
        finally:
            gate.release(slot)
        ex.answer = answer
        outputs = answer.outputs
        if not is_embeddings(outputs):
            outputs = embeddings(answer.backend, outputs, inputs)
        await respond(
            send, 200, with_labels(outputs, answer), answer_headers(answer, ex.request_id)
        )

    return serve
