"""Upstream errors classified, not lumped, on real processes with the official openai client:
a content-policy 400 goes back as the upstream said it and is never routed around; another
400 goes back and does not count against the replica; context length exceeded moves to the
next tier; a silent primary hands over after one attempt; a 429 cools the replica down for its
Retry-After and the request moves on at once."""

from __future__ import annotations

import time
from typing import Any

import openai
import pytest

from tests.integration.conftest import ModelServer, Stack, openai_backend

MESSAGES: Any = [{"role": "user", "content": "Any good books?"}]


def errors_config(stack: Stack, large: ModelServer, small: ModelServer) -> dict[str, Any]:
    return stack.config(
        backends={
            "large": openai_backend(
                large,
                "demo-large",
                retry={"attempts": 3},
                breaker={"failure_threshold": 2, "recovery": "60s"},
            ),
            "small": openai_backend(small, "demo-small"),
        },
        routes={
            "chat": {
                "kind": "chat",
                "deadline": "10s",
                "tiers": [
                    {"name": "primary", "backend": "large"},
                    {"name": "fallback", "backend": "small"},
                    {"name": "static", "value": {"content": "unavailable"}},
                ],
            }
        },
    )


def test_upstream_errors_are_classified(stack: Stack) -> None:
    large = stack.model_server(chat_model="demo-large", label="large")
    small = stack.model_server(chat_model="demo-small", label="small")
    gw = stack.gateway(errors_config(stack, large, small))
    client = openai.OpenAI(base_url=f"{gw.url}/v1", api_key="unused", max_retries=0, timeout=15)

    def tier() -> str:
        raw = client.chat.completions.with_raw_response.create(model="chat", messages=MESSAGES)
        return raw.headers["x-failwell-tier"]

    # A content-policy rejection: back to the caller as the upstream said it, never routed around.
    large.control("error", status=400, code="content_filter")
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(model="chat", messages=MESSAGES)
    assert refused.value.code == "content_filter"
    assert refused.value.body["message"] == "injected fault"  # type: ignore[index]
    # Any other 400: the caller's request, returned; twice, and the breaker (threshold 2) stays shut.
    large.control("error", status=400)
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="chat", messages=MESSAGES)
    assert small.requests() == 0
    large.control("ok")
    assert tier() == "primary"

    # Over the primary's context window: the next tier may answer.
    large.control("error", status=400, code="context_length_exceeded")
    assert tier() == "fallback"

    # A silent primary (one replica, 2 s per attempt, 3 attempts): one attempt, then tier 2.
    large.control("hang")
    before = large.requests()
    started = time.monotonic()
    assert tier() == "fallback"
    took = time.monotonic() - started
    assert 1.9 < took < 3.5, took
    assert large.requests() == before + 1

    # 429: the replica cools down for Retry-After; the request moves on at once.
    large.control("error", status=429, retry_after=30)
    before = large.requests()
    started = time.monotonic()
    assert tier() == "fallback"
    assert time.monotonic() - started < 1.0
    assert tier() == "fallback"
    assert large.requests() == before + 1  # cooling down: not asked again
