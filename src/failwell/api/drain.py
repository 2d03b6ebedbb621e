"""POST /admin/drain and /admin/undrain: stop taking inference requests (503 + Retry-After,
readiness 503 so load balancers move traffic away) while requests in flight finish."""

from __future__ import annotations

from typing import Any

from failwell.api.auth import Guard
from failwell.contracts import AdminCall, AdminRoute, AuditSink


def drain_routes(guard: Guard, audit: AuditSink) -> list[AdminRoute]:
    async def drain(call: AdminCall) -> tuple[int, Any]:
        guard.draining = True
        audit("drain", {}, call.exchange.caller)
        return 200, {"draining": True}

    async def undrain(call: AdminCall) -> tuple[int, Any]:
        guard.draining = False
        audit("undrain", {}, call.exchange.caller)
        return 200, {"draining": False}

    return [
        AdminRoute("POST", "/admin/drain", drain),
        AdminRoute("POST", "/admin/undrain", undrain),
    ]
