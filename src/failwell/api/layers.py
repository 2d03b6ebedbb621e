"""The HTTP edge: one ASGI callable with its steps inline (a layer of its own for each would be
one more coroutine frame on every request, entered and resumed through):

1. one ``Exchange`` per request (request id, trace context: ``api/exchange.py``); the
   gateway's ``before_respond`` hooks (``before_admin_respond`` for the admin API) as the
   response starts: a request with none sends as the server does;
2. the guard: header limits, the API key and the admin and metrics scopes; the front ends get
   a ``Pass`` for route scopes and admission (``api/auth.py``);
3. the front-end router (``api/router.py``);
4. every exception becomes a JSON error response (``api/responses.py``), never a stack trace;
5. once the response is sent: the audit record of admin calls and the observers (so they see
   how it ended, errors included).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from failwell.api.auth import Guard, Pass
from failwell.api.exchange import exchange
from failwell.api.http import ClientDisconnected, Message, Receive, Scope, Send, respond
from failwell.api.responses import encode, error_body, error_headers, v2_error
from failwell.contracts import AuditSink, BeforeRespond, Exchange, Observer
from failwell.errors import CallerError, Overloaded
from failwell.observe.logging import log

FrontEnd = Callable[[Scope, Receive, Send, Exchange, Pass], Awaitable[None]]


class Edge:
    def __init__(
        self,
        front_ends: FrontEnd,
        guard: Guard,
        observers: Sequence[Observer],
        before_respond: Sequence[BeforeRespond],
        before_admin_respond: Sequence[BeforeRespond],
        audit: AuditSink,
    ) -> None:
        self.front_ends, self.guard = front_ends, guard
        self.observers, self.audit = observers, audit
        self.hooks, self.admin_hooks = before_respond, before_admin_respond

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.other(scope, receive, send)
            return
        ex = exchange(scope)
        admin = ex.path.startswith("/admin/")
        hooks = self.admin_hooks if admin else self.hooks
        if hooks:
            send = self._held(send, ex, hooks)
        guard = self.guard
        try:
            who = guard.enter(scope, ex.path, ex)  # limits, key; admin and metrics scopes
            await self.front_ends(scope, receive, send, ex, Pass(guard, who))
            ex.status = 200
        except ClientDisconnected:
            ex.status, ex.error = 499, "client_disconnected"
        except Exception as exc:
            await self._failed(exc, send, ex)
        if admin:
            detail = {"method": scope["method"], "path": ex.path, "status": ex.status}
            self.audit("admin_call", detail, ex.caller)
        if ex.front_end:
            for observer in self.observers:
                try:
                    observer(ex)
                except Exception as exc:  # an observer must never break the edge
                    log.error("observer_failed", observer=repr(observer), exc_info=exc)

    async def other(self, scope: Scope, receive: Receive, send: Send) -> None:
        """A scope that is not HTTP (``api/app.py``: the lifespan)."""

    @staticmethod
    def _held(send: Send, ex: Exchange, hooks: Sequence[BeforeRespond]) -> Send:
        """``send`` that awaits ``hooks`` once, as the response starts (the sync inference log
        makes the exchange's record durable there)."""
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

    @staticmethod
    async def _failed(exc: Exception, send: Send, ex: Exchange) -> None:
        path = ex.path
        status, body = error_body(exc)
        ex.status, ex.error = status, body["error"]["type"]
        if status == 500:
            log.error("internal_error", path=path, exc_info=exc)
        elif not isinstance(exc, CallerError | Overloaded):  # shedding is counted, not logged
            log.warning("request_failed", path=path, error=type(exc).__name__, message=str(exc))
        if path.startswith("/v2"):
            body = v2_error(body)
        await respond(send, status, encode(body), error_headers(exc))
