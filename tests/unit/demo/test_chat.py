"""The demo chat model, its ChatCompletion bodies, and the model server's fault settings."""

from __future__ import annotations

from typing import Any

import openai.types.chat
import pytest

from failwell.demo.chat import ChatModel, ChatRequestError, completion, model_list
from failwell.demo.faults import Fault, FaultMode

LARGE = ChatModel("demo-large", "east-1", sentences=3)
SMALL = ChatModel("demo-small", "west-1", sentences=1)


def ask(text: str, **extra: Any) -> dict[str, Any]:
    return {"model": "demo-large", "messages": [{"role": "user", "content": text}], **extra}


def test_replies_are_deterministic_and_labelled() -> None:
    reply = LARGE.generate("What should I read?")
    assert reply == LARGE.generate("What should I read?")
    assert reply.startswith('[east-1] About "What should I read?": ')
    assert reply != LARGE.generate("Something else")
    assert SMALL.generate("What should I read?").startswith("[west-1]")
    assert len(SMALL.generate("hi").split()) < len(LARGE.generate("hi").split())


def test_completion_is_a_valid_chat_completion() -> None:
    body = completion(LARGE, ask("hello there"))
    parsed = openai.types.chat.ChatCompletion.model_validate(body)
    assert parsed.object == "chat.completion" and parsed.model == "demo-large"
    assert parsed.choices[0].message.role == "assistant"
    assert parsed.choices[0].message.content == LARGE.generate("hello there")
    assert parsed.choices[0].finish_reason == "stop"
    assert parsed.usage is not None and parsed.usage.prompt_tokens == 2
    assert parsed.usage.total_tokens == parsed.usage.prompt_tokens + parsed.usage.completion_tokens


def test_completion_answers_the_last_user_message() -> None:
    body = completion(
        LARGE,
        {
            "messages": [
                {"role": "user", "content": "first"},
                {"role": "assistant", "content": "ok"},
                {"role": "user", "content": [{"type": "text", "text": "second"}]},
            ]
        },
    )
    assert body["choices"][0]["message"]["content"] == LARGE.generate("second")


def test_max_tokens_truncates_with_finish_reason_length() -> None:
    body = completion(LARGE, ask("hi", max_tokens=3))
    assert len(body["choices"][0]["message"]["content"].split()) == 3
    assert body["choices"][0]["finish_reason"] == "length"


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ([], "JSON object"),
        ({}, "non-empty list"),
        ({"messages": []}, "non-empty list"),
        ({"messages": [{"content": "hi"}]}, "role"),
        ({"messages": [{"role": "user", "content": 5}]}, "content"),
        (ask("hi", stream="yes"), "stream"),
        (ask("hi", max_tokens=0), "max_tokens"),
    ],
)
def test_bad_chat_requests_are_rejected(body: Any, problem: str) -> None:
    with pytest.raises(ChatRequestError, match=problem):
        completion(LARGE, body)


def test_model_list() -> None:
    assert model_list(["demo-large"])["data"][0]["id"] == "demo-large"


def test_fault_parse_defaults_and_values() -> None:
    assert Fault.parse({}) == Fault(FaultMode.OK, 0, 500, True)
    assert Fault.parse({"mode": "slow", "delay_ms": 250}) == Fault(FaultMode.SLOW, 250)
    assert Fault.parse({"mode": "error", "status": 503}).status == 503
    assert Fault.parse({"ready": False}).ready is False


@pytest.mark.parametrize(
    "body",
    [
        [],
        {"mode": "explode"},
        {"mode": "ok", "colour": "red"},
        {"delay_ms": -1},
        {"delay_ms": 1.5},
        {"delay_ms": True},
        {"status": 42},
        {"ready": "yes"},
    ],
)
def test_fault_parse_rejects_bad_bodies(body: Any) -> None:
    with pytest.raises(ValueError):
        Fault.parse(body)
