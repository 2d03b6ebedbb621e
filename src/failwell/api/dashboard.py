"""Observability endpoints on the edge: GET /health/inference (latest canaries), GET /dashboard
(one self-contained HTML page) and GET /dashboard/feed (the JSON it polls)."""

from __future__ import annotations

from importlib import resources
from urllib.parse import parse_qs

from failwell.api.auth import Pass
from failwell.api.health import inference_health
from failwell.api.host import Host
from failwell.api.http import Receive, Scope, Send, respond
from failwell.api.layers import FrontEnd
from failwell.api.responses import JSON, encode
from failwell.api.sessions import cleared, cookie
from failwell.api.status import feed
from failwell.contracts import Exchange
from failwell.errors import InvalidInput

_HTML = [(b"content-type", b"text/html; charset=utf-8"), (b"cache-control", b"no-store")]
_JSON = [JSON, (b"cache-control", b"no-store")]


def _window(scope: Scope) -> float:
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    raw = query.get("window", ["300"])[0]
    try:
        window = float(raw)
    except ValueError:
        raise InvalidInput(f"window: expected seconds, got {raw!r}", field="window") from None
    if not 10 <= window <= 600:
        raise InvalidInput("window: must be between 10 and 600 seconds", field="window")
    return window


def dashboard_endpoints(host: Host) -> dict[str, tuple[str, FrontEnd]]:
    page = resources.files("failwell.api").joinpath("dashboard.html").read_bytes()

    async def inference(
        scope: Scope, receive: Receive, send: Send, ex: Exchange, gate: Pass
    ) -> None:
        ok, detail = inference_health(host.health.canaries, host.routes)
        await respond(send, 200 if ok else 503, encode(detail), _JSON)

    async def dashboard(
        scope: Scope, receive: Receive, send: Send, ex: Exchange, gate: Pass
    ) -> None:
        await respond(send, 200, page, _HTML)

    async def dashboard_feed(
        scope: Scope, receive: Receive, send: Send, ex: Exchange, gate: Pass
    ) -> None:
        await respond(send, 200, encode(await feed(host, _window(scope))), _JSON)

    async def sign_in(scope: Scope, receive: Receive, send: Send, ex: Exchange, gate: Pass) -> None:
        who = gate.who
        if who is None:  # keys are off: nothing to sign in to
            await respond(send, 200, encode({"signed_in": True, "keys": False}), _JSON)
            return
        token, max_age = host.guard.sessions.open(who.name, who.expires)
        headers = [*_JSON, (b"set-cookie", cookie(token, max_age))]
        await respond(send, 200, encode({"signed_in": True, "expires_in": max_age}), headers)

    async def sign_out(
        scope: Scope, receive: Receive, send: Send, ex: Exchange, gate: Pass
    ) -> None:
        host.guard.sessions.close(scope["headers"])
        await respond(send, 200, encode({"signed_in": False}), [*_JSON, (b"set-cookie", cleared())])

    return {
        "/dashboard/session": ("POST", sign_in),
        "/dashboard/signout": ("POST", sign_out),
        "/health/inference": ("GET", inference),
        "/dashboard": ("GET", dashboard),
        "/dashboard/feed": ("GET", dashboard_feed),
    }
