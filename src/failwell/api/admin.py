"""The admin API under /admin/: a small registry of handlers that other parts of failwell add
to (status, flags, faults, reloads ...). Handlers take an ``AdminCall`` and return a status and
a JSON-able body; errors go through the edge's one error mapping."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs

from failwell.contracts import AdminCall, AdminHandler, Exchange
from failwell.errors import MethodNotAllowed, NotFound


class AdminApi:
    def __init__(self) -> None:
        self._handlers: dict[str, dict[str, AdminHandler]] = {}

    def add(self, method: str, path: str, handler: AdminHandler) -> None:
        """Register ``handler`` for ``method path`` (a path under /admin/, e.g. /admin/status)."""
        self._handlers.setdefault(path, {})[method] = handler

    def paths(self) -> list[tuple[str, str]]:
        return [(m, p) for p, methods in self._handlers.items() for m in methods]

    async def call(
        self, method: str, path: str, query_string: bytes, body: bytes, exchange: Exchange
    ) -> tuple[int, Any]:
        methods = self._handlers.get(path)
        if methods is None:
            raise NotFound(f"no such admin endpoint {path}")
        handler = methods.get(method)
        if handler is None:
            allowed = ", ".join(sorted(methods))
            raise MethodNotAllowed(f"{method} is not allowed on {path}; use {allowed}")
        query = parse_qs(query_string.decode("latin-1"))
        return await handler(AdminCall(method, path, query, body, exchange))
