"""The edge's request id and W3C trace context: kept when the client sends them, made when not."""

from __future__ import annotations

import re
from typing import Any

from failwell.api.exchange import exchange

TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-01$")


def scope(*headers: tuple[bytes, bytes]) -> dict[str, Any]:
    return {"headers": list(headers), "path": "/v1/chat/completions"}


def test_a_new_trace_has_valid_unique_ids() -> None:
    seen = set()
    for _ in range(200):
        ex = exchange(scope())
        match = TRACEPARENT.match(ex.upstream_headers["traceparent"])
        assert match is not None, ex.upstream_headers["traceparent"]
        trace, span = match.groups()
        assert trace != "0" * 32 and span != "0" * 16
        seen.add(trace)
        assert ex.upstream_headers["x-request-id"] == ex.request_id
    assert len(seen) == 200


def test_the_clients_ids_pass_through() -> None:
    parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    ex = exchange(
        scope(
            (b"x-request-id", b"client-id-1"),
            (b"traceparent", parent.encode()),
            (b"tracestate", b"vendor=x"),
        )
    )
    assert ex.request_id == "client-id-1"
    assert ex.upstream_headers == {
        "traceparent": parent,
        "tracestate": "vendor=x",
        "x-request-id": "client-id-1",
    }


def test_an_unusable_request_id_is_replaced() -> None:
    ex = exchange(scope((b"x-request-id", b"has space")))
    assert ex.request_id != "has space" and re.fullmatch(r"[0-9a-f]{20}", ex.request_id)


def test_all_zero_ids_are_never_sent(monkeypatch: Any) -> None:
    monkeypatch.setattr("failwell.api.exchange._bits", lambda bits: 0)
    parent = exchange(scope()).upstream_headers["traceparent"]
    assert parent == "00-" + "0" * 31 + "1-" + "0" * 15 + "1-01"
