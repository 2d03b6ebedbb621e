"""The front-end router, the innermost layer of the edge: exact path matches, and three
prefixes for the inference front ends (a framework's router would cost more per request than
the rest of the gateway together; see DESIGN §6). Every handler has the one ``FrontEnd``
signature and meets admission through the request's ``Pass``."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST

from failwell.api import chat, embeddings, feedback, predict, v2
from failwell.api.auth import Pass
from failwell.api.dashboard import dashboard_endpoints
from failwell.api.health import readiness
from failwell.api.host import Host
from failwell.api.http import Receive, Scope, Send, read_body, respond
from failwell.api.layers import FrontEnd
from failwell.api.responses import JSON, encode
from failwell.contracts import Exchange
from failwell.errors import MethodNotAllowed, NotFound

_JSON_HEADERS = [JSON]
_LIVE = encode({"status": "alive"})


class FrontEnds:
    def __init__(self, host: Host) -> None:
        self.host = host
        routes, limit = host.routes, host.limits
        self.predict = predict.front_end(routes, limit)
        self.v2 = v2.front_end(routes, limit)
        self.feedback = feedback.front_end(host.quality, limit)
        self.exact: dict[str, tuple[str, FrontEnd]] = {
            "/health/live": ("GET", self._live),
            "/v2/health/live": ("GET", self._live),
            "/health/ready": ("GET", self._ready),
            "/v2/health/ready": ("GET", self._ready),
            "/metrics": ("GET", self._metrics),
            "/openapi.json": ("GET", self._openapi),
            "/v1/chat/completions": ("POST", chat.front_end(routes, limit)),
            "/v1/embeddings": ("POST", embeddings.front_end(routes, limit)),
            "/v1/models": ("GET", self._models),
            "/v2": ("GET", self._v2_server),
        }
        for path, (method, handler) in dashboard_endpoints(host).items():
            self.exact[path] = (method, handler)

    async def __call__(
        self, scope: Scope, receive: Receive, send: Send, ex: Exchange, gate: Pass
    ) -> None:
        path = ex.path
        if path.startswith("/v1/predict/"):
            await self.predict(scope, receive, send, ex, gate)
        elif path.startswith("/v2/models/"):
            await self.v2(scope, receive, send, ex, gate)
        elif path.startswith("/v1/feedback/"):
            await self.feedback(scope, receive, send, ex, gate)
        elif path.startswith("/admin/"):
            await self._admin(scope, receive, send, ex)
        else:
            entry = self.exact.get(path)
            if entry is None:
                raise NotFound(f"no such endpoint {path}")
            method = scope["method"]
            if entry[0] != method and not (method == "HEAD" and entry[0] == "GET"):
                raise MethodNotAllowed(f"{method} is not allowed on {path}; use {entry[0]}")
            await entry[1](scope, receive, send, ex, gate)

    async def _admin(self, scope: Scope, receive: Receive, send: Send, ex: Exchange) -> None:
        ex.front_end = "admin"
        body = await read_body(scope, receive, self.host.limits)
        status, payload = await self.host.admin.call(
            scope["method"], ex.path, scope.get("query_string", b""), body, ex
        )
        await respond(send, status, encode(payload), _JSON_HEADERS)

    async def _live(
        self, scope: Scope, receive: Receive, send: Send, ex: Exchange, gate: Pass
    ) -> None:
        await respond(send, 200, _LIVE, _JSON_HEADERS)

    async def _ready(
        self, scope: Scope, receive: Receive, send: Send, ex: Exchange, gate: Pass
    ) -> None:
        host = self.host
        tier1 = b"tier1=true" in scope.get("query_string", b"")  # for a global balancer
        ok, detail = readiness(host.routes, host.cache, host.readiness_checks, tier1)
        if host.guard.draining:
            ok, detail = False, {**detail, "draining": True}
        await respond(send, 200 if ok else 503, encode(detail), _JSON_HEADERS)

    async def _metrics(
        self, scope: Scope, receive: Receive, send: Send, ex: Exchange, gate: Pass
    ) -> None:
        body = await self.host.metrics.exposition()
        await respond(send, 200, body, [(b"content-type", CONTENT_TYPE_LATEST.encode())])

    async def _openapi(
        self, scope: Scope, receive: Receive, send: Send, ex: Exchange, gate: Pass
    ) -> None:
        await respond(send, 200, self.host.openapi, _JSON_HEADERS)

    async def _models(
        self, scope: Scope, receive: Receive, send: Send, ex: Exchange, gate: Pass
    ) -> None:
        await chat.list_models(self.host.routes, send)

    async def _v2_server(
        self, scope: Scope, receive: Receive, send: Send, ex: Exchange, gate: Pass
    ) -> None:
        await respond(send, 200, v2.server_metadata(), _JSON_HEADERS)
