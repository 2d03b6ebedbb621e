"""The HTTP edge: a small plain-ASGI router over the front ends, probes and metrics.

Exact path matches for the hot inference paths; a framework would cost more per request than
the rest of the gateway together (see DESIGN §6). Every exception becomes a JSON response in
``failwell.api.responses``; nothing reaches the client as a stack trace.
"""

from __future__ import annotations

import functools
import gc
from collections.abc import Awaitable, Callable

from prometheus_client import CONTENT_TYPE_LATEST

from failwell.api import chat, predict, v2
from failwell.api.auth import Guard
from failwell.api.dashboard import dashboard_endpoints
from failwell.api.drain import register_drain
from failwell.api.exchange import Exchange, exchange
from failwell.api.health import readiness
from failwell.api.http import ClientDisconnected, Message, Receive, Scope, Send, read_body, respond
from failwell.api.limits import BodyLimits
from failwell.api.openapi import openapi
from failwell.api.responses import JSON, encode, error_body, error_headers, v2_error
from failwell.api.status import register_status
from failwell.config.models import RouteKind
from failwell.control.plane import ControlPlane
from failwell.errors import CallerError, MethodNotAllowed, NotFound, Overloaded
from failwell.observe.logging import log
from failwell.routing.assemble import Gateway

Handler = Callable[[Scope, Receive, Send, Exchange], Awaitable[None]]
_JSON_HEADERS = [JSON]
_LIVE = encode({"status": "alive"})


class App:
    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.routes = gateway.routes
        self.guard = Guard(gateway)
        self.limit = BodyLimits.from_config(
            gateway.config.gateway.max_body, gateway.config.security.limits
        )
        gateway.services.append(self.limit.watch)
        self._openapi = encode(openapi(gateway.routes, self.guard.required))
        register_status(gateway)
        register_drain(gateway, self.guard)
        # a config reload (SIGHUP, file change, POST /admin/config/reload) swaps the key set too
        gateway.reload_hooks.append(lambda config: self.guard.keys.replace(config.security.keys))
        self._exact: dict[str, tuple[str, Handler]] = {
            "/health/live": ("GET", self._live),
            "/v2/health/live": ("GET", self._live),
            "/health/ready": ("GET", self._ready),
            "/v2/health/ready": ("GET", self._ready),
            "/metrics": ("GET", self._metrics),
            "/openapi.json": ("GET", self._openapi_doc),
            "/v1/chat/completions": ("POST", self._chat),
            "/v1/models": ("GET", self._models),
            "/v2": ("GET", self._v2_server),
        }
        self.control = ControlPlane(gateway)
        self._exact.update(dashboard_endpoints(self.control))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope["path"]
        method: str = scope["method"]
        ex = exchange(scope)
        if self.gateway.before_respond:
            send = self._held(send, ex)
        guard = self.guard
        try:
            who = guard.enter(scope, path, ex)  # limits, key; admin and metrics scopes
            if path.startswith("/v1/predict/"):
                ex.front_end = "predict"
                if method != "POST":
                    raise MethodNotAllowed(f"{method} is not allowed on {path}; use POST")
                ex.route = path[12:]
                route = predict.find_route(self.routes, ex.route, RouteKind.PREDICT)
                slot = await guard.admit(who, route.name)  # scope, rate, concurrency
                try:
                    await predict.predict(route, scope, receive, send, ex, self.limit)
                finally:
                    if slot is not None:
                        slot.release()
            elif path.startswith("/v2/models/"):
                ex.front_end = "v2"
                name = path[11:].split("/", 1)[0]
                slot = None
                if path.endswith("/infer"):
                    slot = await guard.admit(who, name)
                else:
                    guard.authorize(who, name)
                try:
                    await v2.models(
                        self.routes, path[11:], method, scope, receive, send, ex, self.limit
                    )
                finally:
                    if slot is not None:
                        slot.release()
            elif path.startswith("/admin/"):
                ex.front_end = "admin"
                await self._admin(scope, receive, send, ex)
            else:
                entry = self._exact.get(path)
                if entry is None:
                    raise NotFound(f"no such endpoint {path}")
                if entry[0] != method and not (method == "HEAD" and entry[0] == "GET"):
                    raise MethodNotAllowed(f"{method} is not allowed on {path}; use {entry[0]}")
                await entry[1](scope, receive, send, ex)
            ex.status = 200
        except ClientDisconnected:
            ex.status, ex.error = 499, "client_disconnected"
        except Exception as exc:
            status, body = error_body(exc)
            ex.status, ex.error = status, body["error"]["type"]
            if status == 500:
                log.error("internal_error", path=path, exc_info=exc)
            elif not isinstance(exc, CallerError | Overloaded):  # shedding is counted, not logged
                log.warning("request_failed", path=path, error=type(exc).__name__, message=str(exc))
            if path.startswith("/v2"):
                body = v2_error(body)
            await respond(send, status, encode(body), error_headers(exc))
        if path.startswith("/admin/"):
            self.gateway.audit(
                "admin_call", {"method": method, "path": path, "status": ex.status}, ex.caller
            )
        if ex.front_end:
            for observer in self.gateway.observers:
                try:
                    observer(ex)
                except Exception as exc:  # an observer must never break the edge
                    log.error("observer_failed", observer=repr(observer), exc_info=exc)

    def _held(self, send: Send, ex: Exchange) -> Send:
        """``send`` that awaits the gateway's before_respond hooks once, as the response starts
        (the sync inference log makes the exchange's record durable there)."""
        hooks = self.gateway.before_respond
        started = False

        async def held(message: Message) -> None:
            nonlocal started
            if not started and message["type"] == "http.response.start":
                started = True
                ex.status = message["status"]
                for hook in hooks:
                    await hook(ex)
            await send(message)

        return held

    async def _admin(self, scope: Scope, receive: Receive, send: Send, ex: Exchange) -> None:
        body = await read_body(scope, receive, self.limit)
        status, payload = await self.gateway.admin.call(
            scope["method"], scope["path"], scope.get("query_string", b""), body, ex
        )
        await respond(send, status, encode(payload), _JSON_HEADERS)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.gateway.start()
                except Exception as exc:  # report start-up failure to the server
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                gc.collect()
                gc.freeze()  # start-up objects never need scanning again: fewer GC pauses
                log.info("gateway_started", routes=list(self.routes))
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.gateway.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _live(self, scope: Scope, receive: Receive, send: Send, ex: Exchange) -> None:
        await respond(send, 200, _LIVE, _JSON_HEADERS)

    async def _ready(self, scope: Scope, receive: Receive, send: Send, ex: Exchange) -> None:
        ok, detail = readiness(self.gateway)
        if self.guard.draining:
            ok, detail = False, {**detail, "draining": True}
        await respond(send, 200 if ok else 503, encode(detail), _JSON_HEADERS)

    async def _metrics(self, scope: Scope, receive: Receive, send: Send, ex: Exchange) -> None:
        body = self.gateway.metrics.render()
        await respond(send, 200, body, [(b"content-type", CONTENT_TYPE_LATEST.encode())])

    async def _openapi_doc(self, scope: Scope, receive: Receive, send: Send, ex: Exchange) -> None:
        await respond(send, 200, self._openapi, _JSON_HEADERS)

    async def _chat(self, scope: Scope, receive: Receive, send: Send, ex: Exchange) -> None:
        ex.front_end = "openai"
        admit = functools.partial(self.guard.admit, self.guard.keys.named(ex.caller))
        await chat.chat(self.routes, scope, receive, send, ex, self.limit, admit)

    async def _models(self, scope: Scope, receive: Receive, send: Send, ex: Exchange) -> None:
        await chat.list_models(self.routes, send)

    async def _v2_server(self, scope: Scope, receive: Receive, send: Send, ex: Exchange) -> None:
        await respond(send, 200, v2.server_metadata(), _JSON_HEADERS)
