"""Optional OpenTelemetry spans: one ``failwell.request`` span per finished request, when the
OpenTelemetry SDK is importable and a tracer provider is configured (for example by running
under ``opentelemetry-instrument`` with ``OTEL_*`` variables). Without it nothing is loaded
and nothing is paid.

The span's parent is the request's ``traceparent`` (the caller's, or the one the edge started),
so the gateway's span and the model server's spans share one trace id."""

from __future__ import annotations

import sys
from typing import Any

from failwell.contracts import Exchange


def span_observer() -> Any | None:
    """An observer emitting spans, or None when OpenTelemetry is absent or not configured.

    A configured tracer provider means the SDK is loaded already (``opentelemetry-instrument``
    or the caller set it up): without the SDK in ``sys.modules`` nothing is imported here."""
    if "opentelemetry.sdk.trace" not in sys.modules:
        return None
    try:
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
    except ImportError:
        return None
    if not isinstance(trace.get_tracer_provider(), TracerProvider):
        return None
    tracer = trace.get_tracer("failwell")
    propagator = TraceContextTextMapPropagator()
    error = trace.Status(trace.StatusCode.ERROR)

    def observe(ex: Exchange) -> None:
        answer = ex.answer
        start = int(ex.started * 1e9)
        end = start + int(answer.latency * 1e9) if answer is not None else None
        parent = propagator.extract(ex.upstream_headers)
        attributes: dict[str, Any] = {
            "http.route": ex.path,
            "http.response.status_code": ex.status,
            "failwell.request_id": ex.request_id,
            "failwell.front_end": ex.front_end,
        }
        if ex.route is not None:
            attributes["failwell.route"] = ex.route
        if answer is not None:
            attributes |= {
                "failwell.tier": answer.tier,
                "failwell.quality": answer.quality,
                "failwell.backend": answer.backend,
                "failwell.fallbacks": len(answer.failures),
            }
            if answer.model_version:
                attributes["failwell.model_version"] = answer.model_version
        span = tracer.start_span(
            "failwell.request", context=parent, start_time=start, attributes=attributes
        )
        if ex.status >= 500:
            span.set_status(error)
        span.end(end_time=end)

    return observe
