"""One structured log line per finished request, when ``gateway.access_log`` is on (it costs
CPU on the hot path, so it is opt-in): request id, route, tier, status, latency."""

from __future__ import annotations

from failwell.contracts import Exchange
from failwell.observe.logging import log


def request_logger(ex: Exchange) -> None:
    answer = ex.answer
    log.info(
        "request",
        request_id=ex.request_id,
        traceparent=ex.upstream_headers.get("traceparent"),
        path=ex.path,
        front_end=ex.front_end,
        route=ex.route,
        status=ex.status,
        error=ex.error,
        tier=answer.tier if answer else None,
        backend=answer.backend if answer else None,
        replica=answer.replica if answer else None,
        model_version=answer.model_version if answer else None,
        latency_ms=round(answer.latency * 1000, 3) if answer else None,
        caller=ex.caller,
    )
