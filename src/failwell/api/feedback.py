"""POST /v1/feedback/{route}: delayed ground truth. ``{"request_id": ..., "label": ...}`` or
``{"items": [{"request_id": ..., "label": ...}, ...]}``; answers ``{"accepted": n, "metric",
"value", "labels", "judged", "scope"}`` (``scope``: the fleet's window or this process's).
Needs the route's predict scope; logged like any request."""

from __future__ import annotations

from typing import Any

import msgspec

from failwell.api.auth import Pass
from failwell.api.http import Receive, Scope, Send, read_body, respond
from failwell.api.layers import FrontEnd
from failwell.api.limits import BodyLimits
from failwell.api.responses import JSON, encode
from failwell.contracts import Exchange
from failwell.errors import InvalidInput, MethodNotAllowed
from failwell.protocols.invalid import invalid_from_msgspec
from failwell.quality.watch import Label, QualityWatch

MAX_ITEMS = 10_000


class FeedbackItem(msgspec.Struct, forbid_unknown_fields=True):
    request_id: str
    label: Any


class FeedbackBody(msgspec.Struct, forbid_unknown_fields=True):
    request_id: str | None = None
    label: Any = msgspec.UNSET
    items: list[FeedbackItem] | None = None


_decode = msgspec.json.Decoder(FeedbackBody).decode


def labels_of(body: bytes) -> list[Label]:
    try:
        parsed = _decode(body)
    except msgspec.DecodeError as exc:
        raise invalid_from_msgspec(exc) from None
    if parsed.items is not None:
        if parsed.request_id is not None or parsed.label is not msgspec.UNSET:
            raise InvalidInput("send either request_id and label, or items", "items")
        if not parsed.items or len(parsed.items) > MAX_ITEMS:
            raise InvalidInput(f"items: expected 1 to {MAX_ITEMS} labels", "items")
        items = [Label(i.request_id, i.label) for i in parsed.items]
    else:
        if parsed.request_id is None:
            raise InvalidInput("request_id: required", "request_id")
        if parsed.label is msgspec.UNSET:
            raise InvalidInput("label: required", "label")
        items = [Label(parsed.request_id, parsed.label)]
    if any(i.label is None for i in items):
        raise InvalidInput("label: must not be null", "label")
    return items


def front_end(quality: QualityWatch, limit: BodyLimits) -> FrontEnd:
    async def serve(scope: Scope, receive: Receive, send: Send, ex: Exchange, gate: Pass) -> None:
        ex.front_end = "feedback"
        if scope["method"] != "POST":
            raise MethodNotAllowed(f"{scope['method']} is not allowed on {ex.path}; use POST")
        ex.route = route = ex.path[len("/v1/feedback/") :]
        gate.authorize(route)
        items = labels_of(await read_body(scope, receive, limit))
        ex.inputs = {"items": [{"request_id": i.request_id, "label": i.label} for i in items]}
        result = await quality.feedback(route, items)
        await respond(send, 200, encode(result), [JSON])

    return serve
