"""The plain JSON front end: POST /v1/predict/{route} with {"inputs": {...}}."""

from __future__ import annotations

from failwell.api.http import Receive, Scope, Send, read_body, respond
from failwell.api.request_info import RequestInfo
from failwell.api.responses import answer_headers, encode
from failwell.config.models import RouteKind
from failwell.errors import UnknownRoute
from failwell.routing.route import Route


def find_route(routes: dict[str, Route], name: str, kind: RouteKind) -> Route:
    route = routes.get(name)
    if route is None:
        raise UnknownRoute(f"no route named {name!r}")
    if route.kind is not kind:
        hint = "/v1/chat/completions" if route.kind is RouteKind.CHAT else f"/v1/predict/{name}"
        raise UnknownRoute(f"route {name!r} is a {route.kind.value} route; use {hint}")
    return route


async def predict(
    route: Route, scope: Scope, receive: Receive, send: Send, info: RequestInfo, limit: int
) -> None:
    body = await read_body(scope, receive, limit)
    inputs = route.decode_predict(body)
    answer = await route.answer(inputs, info.request_id, "predict", info.upstream_headers)
    payload = encode(
        {
            "outputs": answer.outputs,
            "tier": answer.tier,
            "quality": answer.quality,
            "backend": answer.backend,
            "model_version": answer.model_version,
            "request_id": info.request_id,
        }
    )
    await respond(send, 200, payload, answer_headers(answer, info.request_id))
