"""The OpenAI chat-completions wire format, as much of it as failwell reads.

failwell validates only what it needs (``model``, ``messages``, ``stream``, ``stream_options``,
the shape of ``tools``, the types of the sampling fields) and forwards every other field as
the client sent it: the request travels the tier chain as the decoded body without ``model``,
and an upstream answer travels back whole. What a request needs of a tier (``tools``,
``vision``) is read off it once (``needs``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import msgspec

from failwell.errors import (
    InvalidInput,
    UpstreamContextLength,
    UpstreamRefused,
    UpstreamRejected,
)
from failwell.protocols.invalid import invalid_from_msgspec

MAX_MESSAGES = 1024
TOOLS = "tools"
VISION = "vision"
NO_NEEDS: frozenset[str] = frozenset()
_TOOLS = frozenset({TOOLS})
_VISION = frozenset({VISION})
_BOTH = frozenset({TOOLS, VISION})
_VISUAL_PARTS = frozenset({"image_url", "input_image", "image"})


class ContentPart(msgspec.Struct, forbid_unknown_fields=False):
    type: str


class Message(msgspec.Struct, forbid_unknown_fields=False):
    role: Literal["system", "user", "assistant", "tool", "developer", "function"]
    content: str | list[ContentPart] | None = None


class StreamOptions(msgspec.Struct, forbid_unknown_fields=False):
    include_usage: bool = False


class Tool(msgspec.Struct, forbid_unknown_fields=False):
    type: str


class ChatRequest(msgspec.Struct, forbid_unknown_fields=False):
    """The fields failwell checks; the others pass through unread."""

    model: str
    messages: list[Message]
    stream: bool = False
    stream_options: StreamOptions | None = None
    tools: list[Tool] | None = None
    tool_choice: str | dict[str, Any] | None = None
    n: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    stop: str | list[str] | None = None
    seed: int | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    user: str | None = None


# OpenAI's error codes (``error.code``), read as data, never from the message text.
CONTEXT_CODES = frozenset({"context_length_exceeded", "string_above_max_length"})
POLICY_CODES = frozenset({"content_filter", "content_policy_violation", "safety"})
CALLER_STATUSES = frozenset({400, 422})  # the caller's request was refused as it is


class _ErrorDetail(msgspec.Struct):
    code: str | int | None = None


class _ErrorBody(msgspec.Struct):
    error: _ErrorDetail | str | None = None


_error_body = msgspec.json.Decoder(_ErrorBody).decode
_check = msgspec.json.Decoder(ChatRequest).decode
_raw = msgspec.json.Decoder(dict[str, Any]).decode


def decode_request(body: bytes) -> tuple[str, bool, dict[str, Any]]:
    """(route name, stream?, the body without ``model``) of a chat request; InvalidInput names
    the field that is wrong."""
    try:
        req = _check(body)
        inputs = _raw(body)
    except msgspec.DecodeError as exc:
        raise invalid_from_msgspec(exc) from None
    if not req.messages:
        raise InvalidInput("messages: at least one message is required", field="messages")
    if len(req.messages) > MAX_MESSAGES:
        raise InvalidInput(f"messages: at most {MAX_MESSAGES} messages", field="messages")
    if req.stream_options is not None and not req.stream:
        raise InvalidInput(
            "stream_options: only allowed with stream: true", field="stream_options", status=400
        )
    del inputs["model"]
    return req.model, req.stream, inputs


def needs(inputs: Mapping[str, Any]) -> frozenset[str]:
    """What a request needs of the tier that answers it: ``tools`` when it offers tools,
    ``vision`` when a message holds an image part."""
    tools = bool(inputs.get("tools"))
    for message in inputs.get("messages") or ():
        content = message.get("content") if isinstance(message, Mapping) else None
        if isinstance(content, list) and any(
            isinstance(p, Mapping) and p.get("type") in _VISUAL_PARTS for p in content
        ):
            return _BOTH if tools else _VISION
    return _TOOLS if tools else NO_NEEDS


def text_of(content: Any) -> str:
    """The text of a message's content: a string, or the text parts of a list of parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            p["text"]
            for p in content
            if isinstance(p, Mapping) and p.get("type") == "text" and isinstance(p.get("text"), str)
        )
    return ""


def is_completion(outputs: Any) -> bool:
    """Whether ``outputs`` is a whole chat completion (an upstream's answer, or a cached one)."""
    return isinstance(outputs, dict) and isinstance(outputs.get("choices"), list)


def reply_text(outputs: Any) -> tuple[str, str]:
    """(content, finish reason) of a non-model tier's answer: ``{"content": ...}``, a string,
    or any other value as JSON text."""
    if isinstance(outputs, dict) and isinstance(outputs.get("content"), str):
        return outputs["content"], outputs.get("finish_reason") or "stop"
    if isinstance(outputs, str):
        return outputs, "stop"
    return msgspec.json.encode(outputs).decode(), "stop"


def completion(request_id: str, created: int, model: str, outputs: Any) -> dict[str, Any]:
    """The chat completion answering with a non-model tier's ``outputs``: no tokens counted."""
    content, finish = reply_text(outputs)
    return {
        "id": f"chatcmpl-{request_id}",
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": finish,
                "logprobs": None,
            }
        ],
        "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
    }


def usage_of(outputs: Any) -> tuple[int, int] | None:
    """(prompt, completion) tokens an upstream counted, when its answer says."""
    if not isinstance(outputs, dict):
        return None
    usage = outputs.get("usage")
    if not isinstance(usage, dict):
        return None
    prompt, done = usage.get("prompt_tokens"), usage.get("completion_tokens")
    if type(prompt) is not int or type(done) is not int:
        return None
    return prompt, done


def check_completion(answer: Any) -> str | None:
    """Why an upstream's decoded answer is not a usable chat completion, or None. A choice
    may carry content, tool calls or a refusal; content null with tool calls is an answer."""
    if not is_completion(answer) or not answer["choices"]:
        return "no choices"
    choice = answer["choices"][0]
    message = choice.get("message") if isinstance(choice, dict) else None
    if not isinstance(message, dict):
        return "a choice without a message"
    if (
        isinstance(message.get("content"), str)
        or message.get("tool_calls")
        or message.get("function_call")
        or isinstance(message.get("refusal"), str)
    ):
        return None
    return "a message without content, tool calls or refusal"


def classify(exc: UpstreamRejected) -> UpstreamRejected:
    """What an upstream's 4xx means for the chain, from its status and ``error.code``: over the
    context window (or 413) → the next tier may answer; a content-policy rejection or the
    caller's invalid request (400, 422) → back to the caller as the upstream said it; any
    other 4xx (401, 403, 404: the backend's key or model name) → the next tier."""
    try:
        detail = _error_body(exc.body).error
    except msgspec.DecodeError:
        detail = None
    code = detail.code if isinstance(detail, _ErrorDetail) else None
    meaning: type[UpstreamRejected]
    if code in CONTEXT_CODES or exc.status == 413:
        meaning = UpstreamContextLength
    elif code in POLICY_CODES or exc.status in CALLER_STATUSES:
        meaning = UpstreamRefused
    else:
        return exc
    return meaning(
        exc.message, status=exc.status, body=exc.body, backend=exc.backend, replica=exc.replica
    )
