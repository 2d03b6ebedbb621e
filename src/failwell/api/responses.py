"""The one place where failwell errors become HTTP responses, and answer headers are made."""

from __future__ import annotations

from typing import Any

import msgspec

from failwell.contracts import Answer
from failwell.errors import (
    AllTiersFailed,
    CallerError,
    FailwellError,
    InvalidInput,
    Overloaded,
    RateLimited,
    Unauthorized,
    UpstreamRefused,
)

encode = msgspec.json.Encoder().encode
_decode_object = msgspec.json.Decoder(dict[str, Any]).decode
Headers = list[tuple[bytes, bytes]]
JSON = (b"content-type", b"application/json")


def error_body(exc: BaseException) -> tuple[int, dict[str, Any]]:
    """Status and JSON body for any exception. Never a stack trace."""
    if isinstance(exc, CallerError):
        err: dict[str, Any] = {"type": exc.kind, "message": exc.message}
        if isinstance(exc, InvalidInput) and exc.field:
            err["field"] = exc.field
            err["param"] = exc.field  # the OpenAI clients read 'param'
        return exc.status, {"error": err}
    if isinstance(exc, UpstreamRefused):
        return exc.status, _upstream_said(exc)
    if isinstance(exc, AllTiersFailed):
        tiers = [{"tier": f.tier, "error": f.kind, "message": f.message} for f in exc.failures]
        return 503, {"error": {"type": exc.kind, "message": exc.message, "tiers": tiers}}
    if isinstance(exc, FailwellError):
        return 503, {"error": {"type": exc.kind, "message": exc.message}}
    return 500, {"error": {"type": "internal", "message": "internal error; see the gateway log"}}


def _upstream_said(exc: UpstreamRefused) -> dict[str, Any]:
    """The upstream's own error body, as it said it; failwell's shape if it was not JSON."""
    try:
        body = _decode_object(exc.body)
    except msgspec.DecodeError:
        return {"error": {"type": exc.kind, "message": exc.message}}
    return body


def error_headers(exc: BaseException) -> Headers:
    """Headers an error response carries: Retry-After when refused for load, WWW-Authenticate
    when a key is missing or wrong."""
    if isinstance(exc, RateLimited | Overloaded):
        return [JSON, (b"retry-after", str(max(1, round(exc.retry_after))).encode())]
    if isinstance(exc, Unauthorized):
        return [JSON, (b"www-authenticate", b'Bearer realm="failwell"')]
    return [JSON]


def v2_error(body: dict[str, Any]) -> dict[str, Any]:
    """The Open Inference Protocol's error shape: ``{"error": "<message>"}``."""
    err = body["error"]
    tiers = err.get("tiers")
    if tiers:
        detail = "; ".join(f"{t['tier']}: {t['error']}" for t in tiers)
        return {"error": f"{err['message']} ({detail})"}
    return {"error": err["message"]}


def labels(answer: Answer) -> dict[str, Any]:
    """The ``failwell`` field of an OpenAI-shaped answer: tier, quality, backend, version."""
    return {
        "tier": answer.tier,
        "quality": answer.quality,
        "backend": answer.backend,
        "model_version": answer.model_version,
    }


# An answer's labels as the ``failwell`` field's bytes and as headers, made once per
# (tier, quality, backend, version): a route answers from a handful of them. Bounded: an
# upstream may name a new version in every answer.
_MADE_MAX = 1024
_made: dict[tuple[str, str, str, str | None], tuple[bytes, Headers]] = {}


def _labels_made(answer: Answer) -> tuple[bytes, Headers]:
    key = (answer.tier, answer.quality, answer.backend, answer.model_version)
    made = _made.get(key)
    if made is None:
        if len(_made) >= _MADE_MAX:
            _made.clear()
        field = b',"failwell":%s}' % encode(labels(answer))
        head = [
            JSON,
            (b"x-failwell-tier", answer.tier.encode()),
            (b"x-failwell-quality", answer.quality.encode()),
            (b"x-failwell-backend", answer.backend.encode()),
        ]
        made = _made[key] = (field, head)
    return made


def with_labels(outputs: dict[str, Any], answer: Answer) -> bytes:
    """``outputs`` (a non-empty JSON object) encoded with the ``failwell`` field spliced in,
    rather than copied: an upstream's answer is also cached and logged as it came."""
    return encode(outputs)[:-1] + _labels_made(answer)[0]


def answer_headers(answer: Answer, request_id: str) -> Headers:
    """A new list (a front end may change it): the content type, the answer's labels and the
    request id."""
    return [*_labels_made(answer)[1], (b"x-request-id", request_id.encode())]
