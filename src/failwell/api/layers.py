"""The edge's layers, outermost first; ``api/app.py`` stacks them:

1. ``Exchanges``: one ``Exchange`` per request (request id, trace context); the gateway's
   ``before_respond`` hooks as the response starts; the audit record of admin calls and the
   observers once the response is sent (so they see how it ended, errors included);
2. ``Errors``: every exception becomes a JSON error response (``api/responses.py``), never a
   stack trace;
3. ``Guarded``: header limits, the API key and the admin and metrics scopes; hands the front
   ends a ``Pass`` for route scopes and admission;
4. the front-end router (``api/router.py``).
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

Inner = Callable[[Scope, Receive, Send, Exchange], Awaitable[None]]
FrontEnd = Callable[[Scope, Receive, Send, Exchange, Pass], Awaitable[None]]


class Exchanges:
    def __init__(
        self,
        inner: Inner,
        observers: Sequence[Observer],
        before_respond: Sequence[BeforeRespond],
        audit: AuditSink,
    ) -> None:
        self.inner, self.observers, self.hooks, self.audit = inner, observers, before_respond, audit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        ex = exchange(scope)
        if self.hooks:
            send = self._held(send, ex)
        await self.inner(scope, receive, send, ex)
        path = ex.path
        if path.startswith("/admin/"):
            detail = {"method": scope["method"], "path": path, "status": ex.status}
            self.audit("admin_call", detail, ex.caller)
        if ex.front_end:
            for observer in self.observers:
                try:
                    observer(ex)
                except Exception as exc:  # an observer must never break the edge
                    log.error("observer_failed", observer=repr(observer), exc_info=exc)

    def _held(self, send: Send, ex: Exchange) -> Send:
        """``send`` that awaits the before_respond hooks once, as the response starts (the sync
        inference log makes the exchange's record durable there)."""
        hooks = self.hooks
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


class Errors:
    def __init__(self, inner: Inner) -> None:
        self.inner = inner

    async def __call__(self, scope: Scope, receive: Receive, send: Send, ex: Exchange) -> None:
        try:
            await self.inner(scope, receive, send, ex)
            ex.status = 200
        except ClientDisconnected:
            ex.status, ex.error = 499, "client_disconnected"
        except Exception as exc:
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


class Guarded:
    def __init__(self, inner: FrontEnd, guard: Guard) -> None:
        self.inner, self.guard = inner, guard

    async def __call__(self, scope: Scope, receive: Receive, send: Send, ex: Exchange) -> None:
        guard = self.guard
        who = guard.enter(scope, ex.path, ex)  # limits, key; admin and metrics scopes
        await self.inner(scope, receive, send, ex, Pass(guard, who))
