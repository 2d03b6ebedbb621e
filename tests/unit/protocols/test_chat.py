"""The chat wire codec: what failwell checks, what it passes through, what a request needs."""

from __future__ import annotations

import json
from typing import Any

import pytest

from failwell.errors import InvalidInput, UpstreamContextLength, UpstreamRefused, UpstreamRejected
from failwell.protocols.chat import (
    check_completion,
    classify,
    decode_request,
    needs,
    text_of,
    usage_of,
)


def body(**fields: Any) -> bytes:
    return json.dumps(
        {"model": "chat", "messages": [{"role": "user", "content": "hi"}], **fields}
    ).encode()


def test_every_field_but_model_passes_through_unread() -> None:
    route, stream, inputs = decode_request(
        body(logprobs=True, top_logprobs=2, response_format={"type": "json_object"}, x_vendor=[1])
    )
    assert (route, stream) == ("chat", False)
    assert inputs == {
        "messages": [{"role": "user", "content": "hi"}],
        "logprobs": True,
        "top_logprobs": 2,
        "response_format": {"type": "json_object"},
        "x_vendor": [1],
    }


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"stream": 1}, "stream"),
        ({"stream_options": {"include_usage": True}}, "stream_options"),
        ({"stream": True, "stream_options": "usage"}, "stream_options"),
        ({"tools": [3]}, "tools[0]"),
        ({"tool_choice": 5}, "tool_choice"),
        ({"n": "two"}, "n"),
        ({"messages": []}, "messages"),
        ({"messages": [{"role": "user", "content": [{"text": "x"}]}]}, "messages[0].content"),
    ],
)
def test_bad_fields_are_named(fields: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidInput) as info:
        decode_request(body(**fields))
    assert info.value.field is not None and info.value.field.startswith(field)
    assert info.value.status in (400, 422)


def test_needs_tools_and_vision() -> None:
    image = {"type": "image_url", "image_url": {"url": "data:,"}}
    text = {"role": "user", "content": "x"}
    assert needs({"messages": [text]}) == frozenset()
    assert needs({"messages": [text], "tools": []}) == frozenset()
    assert needs({"messages": [text], "tools": [{"type": "function"}]}) == {"tools"}
    assert needs({"messages": [{"role": "user", "content": [image]}]}) == {"vision"}
    both = {"messages": [{"role": "user", "content": [image]}], "tools": [{"type": "function"}]}
    assert needs(both) == {"tools", "vision"}


def test_text_of_content_parts() -> None:
    assert text_of("a") == "a"
    assert (
        text_of(
            [{"type": "text", "text": "a"}, {"type": "image_url"}, {"type": "text", "text": "b"}]
        )
        == "ab"
    )
    assert text_of(None) == ""


def completion(message: dict[str, Any]) -> dict[str, Any]:
    return {
        "choices": [{"index": 0, "message": message}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 4},
    }


def test_a_completion_may_carry_content_tool_calls_or_a_refusal() -> None:
    assert check_completion(completion({"content": "x"})) is None
    assert check_completion(completion({"content": None, "tool_calls": [{"id": "c"}]})) is None
    assert check_completion(completion({"content": None, "refusal": "no"})) is None
    assert check_completion(completion({"content": None})) is not None
    assert check_completion({"choices": []}) is not None
    assert check_completion({"object": "error"}) is not None
    assert usage_of(completion({"content": "x"})) == (3, 4)
    assert usage_of({"usage": {"prompt_tokens": "3", "completion_tokens": 4}}) is None


@pytest.mark.parametrize(
    ("status", "error", "meaning"),
    [
        (
            400,
            {"code": "context_length_exceeded", "type": "invalid_request_error"},
            UpstreamContextLength,
        ),
        (413, {"code": None}, UpstreamContextLength),
        (400, {"code": "content_filter", "type": "invalid_request_error"}, UpstreamRefused),
        (400, {"code": None, "type": "invalid_request_error"}, UpstreamRefused),
        (422, {"code": 422}, UpstreamRefused),
        (404, {"code": "model_not_found"}, UpstreamRejected),
        (401, {"code": "invalid_api_key"}, UpstreamRejected),
    ],
)
def test_upstream_4xx_are_classified_by_status_and_code(
    status: int, error: dict[str, Any], meaning: type[UpstreamRejected]
) -> None:
    body = json.dumps({"error": {"message": "whatever the text says", **error}}).encode()
    got = classify(UpstreamRejected("4xx", status=status, body=body, backend="b", replica="r"))
    assert type(got) is meaning
    assert (got.status, got.body, got.backend, got.replica) == (status, body, "b", "r")


def test_an_error_body_that_is_not_json_is_classified_by_status() -> None:
    assert type(classify(UpstreamRejected("x", status=400, body=b"<html>"))) is UpstreamRefused
    assert type(classify(UpstreamRejected("x", status=403, body=b"<html>"))) is UpstreamRejected
