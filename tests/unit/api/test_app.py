"""The edge in-process: admin calls are audited with the key's name (never the key), the
exchange's caller is the key's name, and chat requests are admitted after their route is known."""

from __future__ import annotations

import asyncio
from typing import Any

from failwell.api.app import App
from failwell.config import parse_config
from failwell.contracts import Exchange
from failwell.gateway import Gateway
from failwell.testing.asgi import asgi_call

ADMIN, APP = "admin-key-0123456789abcdef", "app-key-0123456789abcdefg"
CONFIG: dict[str, Any] = {
    "gateway": {"cache": {"path": ":memory:"}},
    "routes": {
        "recommend": {"input": {"user_id": "str"}, "tiers": [{"name": "s", "value": 1}]},
        "chat": {
            "kind": "chat",
            "admission": {"rate": {"rate": 0.001, "burst": 1}},
            "tiers": [{"name": "s", "value": {"content": "hi"}}],
        },
    },
    "security": {
        "keys": [
            {"name": "root", "secret": ADMIN, "scopes": ["admin"]},
            {"name": "svc", "secret": APP, "scopes": ["predict:*"]},
        ]
    },
}


def bearer(key: str) -> list[tuple[bytes, bytes]]:
    return [(b"authorization", f"Bearer {key}".encode())]


def test_admin_calls_are_audited_and_callers_named() -> None:
    async def run() -> None:
        gateway = Gateway(parse_config(CONFIG))
        app = App(gateway)
        audits: list[tuple[str, dict[str, Any], str | None]] = []
        seen: list[Exchange] = []
        gateway.audit_sinks.append(lambda a, d, c: audits.append((a, d, c)))
        gateway.observers.append(seen.append)
        await app.gateway.start()
        try:
            assert (await asgi_call(app, "GET", "/admin/status", bearer(ADMIN))).status == 200
            assert (await asgi_call(app, "GET", "/admin/status", bearer(APP))).status == 403
            assert (await asgi_call(app, "POST", "/admin/drain", bearer(ADMIN))).status == 200
            body = b'{"inputs": {"user_id": "u"}}'
            drained = await asgi_call(app, "POST", "/v1/predict/recommend", bearer(APP), body)
            assert drained.status == 503 and drained.headers[b"retry-after"] == b"1"
            await asgi_call(app, "POST", "/admin/undrain", bearer(ADMIN))
            ok = await asgi_call(app, "POST", "/v1/predict/recommend", bearer(APP), body)
            assert ok.status == 200
            chat = b'{"model": "chat", "messages": [{"role": "user", "content": "x"}]}'
            first = await asgi_call(app, "POST", "/v1/chat/completions", bearer(APP), chat)
            second = await asgi_call(app, "POST", "/v1/chat/completions", bearer(APP), chat)
            assert (first.status, second.status) == (200, 429)
        finally:
            await app.gateway.close()
        calls = [(d["path"], d["status"], c) for a, d, c in audits if a == "admin_call"]
        assert calls == [
            ("/admin/status", 200, "root"),
            ("/admin/status", 403, "svc"),
            ("/admin/drain", 200, "root"),
            ("/admin/undrain", 200, "root"),
        ]
        assert ("drain", {}, "root") in audits
        assert {e.caller for e in seen if e.front_end in ("predict", "openai")} == {"svc"}
        assert not any(ADMIN in repr(a) or APP in repr(a) for a in audits)

    asyncio.run(run())
