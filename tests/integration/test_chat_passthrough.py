"""Chat through failwell as the official openai client sends it: every field reaches the
upstream as sent (only ``model`` substituted), the upstream's answer comes back whole (tool
calls with content null, usage, system fingerprint), a tier that cannot honour a request is
skipped with its reason, and token usage shows in the metrics and the inference log."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

import openai
import pytest

from failwell.log.query import Filter, select
from failwell.log.segments import SegmentLog
from tests.integration.conftest import (
    Gateway,
    ModelServer,
    Stack,
    http_json,
    metric_value,
    openai_backend,
)

IMAGE = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGNgYGD4DwABBAEAfbLI3wAAAABJRU5ErkJggg=="
TOOLS: Any = [
    {
        "type": "function",
        "function": {
            "name": "find_books",
            "description": "Search the shop's books.",
            "parameters": {
                "type": "object",
                "properties": {"query": {"type": "string"}},
                "required": ["query"],
            },
        },
    }
]


def passthrough_config(stack: Stack, large: ModelServer, **extra: Any) -> dict[str, Any]:
    return stack.config(
        backends={"large": openai_backend(large, "demo-large", retry={"attempts": 1})},
        routes={
            "chat": {
                "kind": "chat",
                "deadline": "5s",
                "tiers": [
                    {"name": "primary", "backend": "large"},
                    {"name": "static", "value": {"content": "unavailable"}},
                ],
            }
        },
        **extra,
    )


def client(gw: Gateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gw.url}/v1", api_key="unused", max_retries=0, timeout=10)


def upstream_saw(server: ModelServer) -> dict[str, Any]:
    return json.loads(http_json(f"{server.url}/_control/last")["body"])  # type: ignore[no-any-return]


def test_tool_call_round_trip_and_image_part_pass_through(stack: Stack) -> None:
    large = stack.model_server(chat_model="demo-large", label="large")
    log_dir = stack.tmp / "log"
    config = passthrough_config(stack, large)
    config["log"] = {"enabled": True, "path": str(log_dir), "durability": "sync"}
    gw = stack.gateway(config)
    messages: Any = [
        {"role": "system", "content": "You help people find books."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Which books are like the one on this cover?"},
                {"type": "image_url", "image_url": {"url": IMAGE, "detail": "low"}},
            ],
        },
    ]
    sent: dict[str, Any] = {
        "tools": TOOLS,
        "tool_choice": "auto",
        "temperature": 0.25,
        "top_p": 0.5,
        "n": 1,
        "user": "reader-42",
        "seed": 7,
        "logprobs": False,
        "parallel_tool_calls": False,
        "response_format": {"type": "text"},
        "metadata": {"ticket": "T-1"},
    }
    raw = client(gw).chat.completions.with_raw_response.create(
        model="chat", messages=messages, **sent
    )
    reply = raw.parse()
    assert raw.headers["x-failwell-tier"] == "primary"
    body = json.loads(raw.text)
    assert body["failwell"]["tier"] == "primary" and body["failwell"]["backend"] == "large"

    seen = upstream_saw(large)
    assert seen["model"] == "demo-large"
    assert seen["messages"] == messages  # the image part arrived as the client sent it
    assert {k: seen[k] for k in sent} == sent  # every field, verbatim
    assert "stream" not in seen or seen["stream"] is False

    # The answer is the upstream's: a tool call with content null, usage, the model that answered.
    assert reply.model == "demo-large"
    assert reply.system_fingerprint == "large"
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    call = choice.message.tool_calls[0]
    assert call.function.name == "find_books"
    assert reply.usage is not None and reply.usage.prompt_tokens > 0
    first_usage = reply.usage

    # The tool's result goes back; the model answers in text.
    messages += [
        choice.message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "Dune; Hyperion; Foundation"},
    ]
    reply = client(gw).chat.completions.create(model="chat", messages=messages, tools=TOOLS)
    seen = upstream_saw(large)
    assert seen["messages"] == messages
    assert seen["messages"][-1]["tool_call_id"] == call.id
    assert reply.choices[0].message.content and "[large]" in reply.choices[0].message.content
    assert reply.choices[0].finish_reason == "stop"
    assert reply.usage is not None

    # Usage per route, tier and backend: what the upstream counted, summed.
    text = gw.metrics()
    labels = {"route": "chat", "tier": "primary", "backend": "large"}
    prompt = metric_value(text, "failwell_tokens_total", kind="prompt", **labels)
    done = metric_value(text, "failwell_tokens_total", kind="completion", **labels)
    assert prompt == first_usage.prompt_tokens + reply.usage.prompt_tokens
    assert done == first_usage.completion_tokens + reply.usage.completion_tokens

    usages = [f.get("usage") for f in select(SegmentLog(str(log_dir), "inference"), Filter())]
    assert usages[-1] == {
        "prompt_tokens": reply.usage.prompt_tokens,
        "completion_tokens": reply.usage.completion_tokens,
    }


def test_a_tier_that_cannot_honour_tools_is_skipped_with_its_reason(stack: Stack) -> None:
    large = stack.model_server(chat_model="demo-large", label="large")
    gw = stack.gateway(passthrough_config(stack, large))
    large.control("error", status=503)
    messages: Any = [{"role": "user", "content": "find me a book"}]
    # Without tools the static text answers ...
    raw = client(gw).chat.completions.with_raw_response.create(model="chat", messages=messages)
    assert raw.headers["x-failwell-tier"] == "static"
    assert raw.parse().model == "static"
    # ... with tools it cannot, and says so: never a silent text answer to a tool-calling turn.
    with pytest.raises(openai.APIStatusError) as info:
        client(gw).chat.completions.create(model="chat", messages=messages, tools=TOOLS)
    assert info.value.status_code == 503
    tiers = info.value.body["tiers"]  # type: ignore[index]
    assert [(t["tier"], t["error"]) for t in tiers] == [
        ("primary", "status"),
        ("static", "unsupported"),
    ]
    assert "tools" in tiers[1]["message"]


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"stream": "yes"}, 422, "stream"),
        ({"stream_options": {"include_usage": True}}, 400, "stream_options"),
        ({"tools": ["find_books"]}, 422, "tools[0]"),
        ({"tools": {"type": "function"}}, 422, "tools"),
        (
            {"messages": [{"role": "user", "content": [{"text": "no type"}]}]},
            422,
            "messages[0].content",
        ),
    ],
)
def test_bad_chat_fields_are_named(
    stack: Stack, body: dict[str, Any], status: int, field: str
) -> None:
    large = stack.model_server(chat_model="demo-large", label="large")
    gw = stack.gateway(passthrough_config(stack, large))
    request = {"model": "chat", "messages": [{"role": "user", "content": "hi"}], **body}
    req = urllib.request.Request(
        f"{gw.url}/v1/chat/completions",
        data=json.dumps(request).encode(),
        headers={"content-type": "application/json"},
    )
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(req, timeout=5)
    assert info.value.code == status
    error = json.loads(info.value.read())["error"]
    assert error["param"].startswith(field)
