"""The plain JSON front end: POST /v1/predict/{route} with {"inputs": {...}}."""

from __future__ import annotations

from collections.abc import Mapping

from failwell.api.auth import Pass
from failwell.api.http import Receive, Scope, Send, read_body, respond
from failwell.api.layers import FrontEnd
from failwell.api.limits import BodyLimits
from failwell.api.responses import answer_headers, encode
from failwell.config.models import RouteKind
from failwell.contracts import Exchange
from failwell.errors import MethodNotAllowed, UnknownRoute
from failwell.protocols.tensor import Tensors
from failwell.routing.route import Route

_PATHS = {RouteKind.CHAT: "/v1/chat/completions", RouteKind.EMBEDDINGS: "/v1/embeddings"}


def find_route(routes: Mapping[str, Route], name: str, kind: RouteKind) -> Route:
    route = routes.get(name)
    if route is None:
        raise UnknownRoute(f"no route named {name!r}")
    if route.kind is not kind:
        hint = _PATHS.get(route.kind) or f"/v1/predict/{name}"
        raise UnknownRoute(f"route {name!r} is a {route.kind.value} route; use {hint}")
    return route


async def predict(
    route: Route, scope: Scope, receive: Receive, send: Send, ex: Exchange, limit: BodyLimits
) -> None:
    body = await read_body(scope, receive, limit, route.max_body)
    ex.inputs = inputs = route.decode_predict(body)
    ex.answer = answer = await route.answer(inputs, ex.request_id, "predict", ex.upstream_headers)
    outputs = answer.outputs
    if type(outputs) is Tensors:  # a tensor route: each output as nested lists
        outputs = {name: tensor.nested() for name, tensor in outputs.items()}
    fields = {
        "outputs": outputs,
        "tier": answer.tier,
        "quality": answer.quality,
        "backend": answer.backend,
        "model_version": answer.model_version,
        "request_id": ex.request_id,
    }
    if answer.row_tiers is not None:  # answered row by row: the tier of each row, in order
        fields["row_tiers"] = answer.row_tiers
    payload = encode(fields)
    await respond(send, 200, payload, answer_headers(answer, ex.request_id))


def front_end(routes: Mapping[str, Route], limit: BodyLimits) -> FrontEnd:
    """POST /v1/predict/{route}."""

    async def serve(scope: Scope, receive: Receive, send: Send, ex: Exchange, gate: Pass) -> None:
        ex.front_end = "predict"
        path, method = ex.path, scope["method"]
        if method != "POST":
            raise MethodNotAllowed(f"{method} is not allowed on {path}; use POST")
        ex.route = path[12:]
        route = find_route(routes, ex.route, RouteKind.PREDICT)
        slot = await gate.admit(route.name)  # scope, rate, concurrency
        try:
            await predict(route, scope, receive, send, ex, limit)
        finally:
            gate.release(slot)

    return serve
