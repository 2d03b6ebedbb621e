"""POST /admin/drain and /admin/undrain: stop taking inference requests (503 + Retry-After,
readiness 503 so load balancers move traffic away) while requests in flight finish."""

from __future__ import annotations

from typing import Any

from failwell.api.admin import AdminCall
from failwell.api.auth import Guard
from failwell.routing.assemble import Gateway


def register_drain(gateway: Gateway, guard: Guard) -> None:
    async def drain(call: AdminCall) -> tuple[int, Any]:
        guard.draining = True
        gateway.audit("drain", {}, call.exchange.caller)
        return 200, {"draining": True}

    async def undrain(call: AdminCall) -> tuple[int, Any]:
        guard.draining = False
        gateway.audit("undrain", {}, call.exchange.caller)
        return 200, {"draining": False}

    gateway.admin.add("POST", "/admin/drain", drain)
    gateway.admin.add("POST", "/admin/undrain", undrain)
