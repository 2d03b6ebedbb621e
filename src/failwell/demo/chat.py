"""A tiny deterministic "generative" model and the OpenAI ChatCompletion bodies it answers with.

The model is an order-2 word Markov chain over sentences generated from templates about the demo
shop (no downloads). A reply is seeded by the model name and the last user message, so the same
question always gets the same answer from the same model. Every reply starts with ``[label]`` so
tests can tell replicas apart.
"""

from __future__ import annotations

import functools
import itertools
import time
import uuid
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec
import numpy as np

from failwell.demo.data import CATEGORIES, COUNTRIES

_START, _END = "<s>", "</s>"
_TEMPLATES = (
    "the most popular {category} picks in {country} this week are {adjective} ones",
    "customers who like {category} often come back for {adjective} {category} too",
    "a {adjective} choice in {category} is a safe bet for most shoppers in {country}",
    "our {category} ranking blends your taste with what is {adjective} in {country}",
    "if you enjoyed {adjective} {category} you may like the new arrivals as well",
    "recommendations for {category} are refreshed every day from fresh clicks",
    "try filtering {category} by {adjective} items to narrow the list down",
    "shoppers in {country} rate {adjective} {category} highly this season",
)
_ADJECTIVES = ("classic", "new", "trending", "affordable", "award-winning", "handpicked")


class ChatRequestError(ValueError):
    """The chat request is malformed (answered with 400)."""


@functools.cache
def _chain() -> dict[tuple[str, str], tuple[str, ...]]:
    """(word, word) → the words that follow the pair in the corpus ("<s>" pads a start)."""
    rng = np.random.default_rng(0)
    follow: dict[tuple[str, str], list[str]] = {}
    for template, _ in itertools.product(_TEMPLATES, range(12)):
        sentence = template.format(
            category=CATEGORIES[int(rng.integers(len(CATEGORIES)))],
            country=COUNTRIES[int(rng.integers(len(COUNTRIES)))],
            adjective=_ADJECTIVES[int(rng.integers(len(_ADJECTIVES)))],
        )
        words = [_START, _START, *sentence.split(), _END]
        for a, b, c in zip(words, words[1:], words[2:], strict=False):
            follow.setdefault((a, b), []).append(c)
    return {pair: tuple(nexts) for pair, nexts in follow.items()}


@dataclass(frozen=True)
class ChatModel:
    name: str
    label: str
    sentences: int = 3
    max_sentence_words: int = 18

    def generate(self, prompt: str) -> str:
        """The model's reply text to ``prompt`` (deterministic)."""
        chain = _chain()
        rng = np.random.default_rng(zlib.crc32(f"{self.name}\0{prompt}".encode()))
        out = []
        for _ in range(self.sentences):
            state, words = (_START, _START), list[str]()
            while len(words) < self.max_sentence_words:
                options = chain[state]
                word = options[int(rng.integers(len(options)))]
                if word == _END:
                    break
                words.append(word)
                state = (state[1], word)
            text = " ".join(words)
            out.append(text[:1].upper() + text[1:] + ".")
        topic = " ".join(prompt.split()[:8])
        lead = f'[{self.label}] About "{topic}": ' if topic else f"[{self.label}] "
        return lead + " ".join(out)


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts: [{"type": "text", "text": ...}]
        return " ".join(
            str(p.get("text", ""))
            for p in content
            if isinstance(p, Mapping) and p.get("type") == "text"
        )
    if content is None:
        return ""
    raise ChatRequestError("message content must be a string or a list of parts")


def read_messages(body: Any) -> list[tuple[str, str]]:
    """(role, text) of each message of a chat request; ChatRequestError when malformed."""
    if not isinstance(body, Mapping):
        raise ChatRequestError("the request body must be a JSON object")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise ChatRequestError("'messages' must be a non-empty list")
    out = []
    for i, message in enumerate(messages):
        if not isinstance(message, Mapping) or not isinstance(message.get("role"), str):
            raise ChatRequestError(f"messages[{i}] must be an object with a string 'role'")
        out.append((message["role"], _text(message.get("content"))))
    if not isinstance(body.get("stream", False), bool):
        raise ChatRequestError("'stream' must be true or false")
    return out


def _max_tokens(body: Mapping[str, Any]) -> int | None:
    value = body.get("max_completion_tokens", body.get("max_tokens"))
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ChatRequestError("'max_tokens' must be a positive integer")
    return value


def _tool_call(body: Mapping[str, Any], prompt: str) -> dict[str, Any] | None:
    """A call of the request's first function tool, when it offers tools (the caller checks
    that the last message is not a tool's result: the model then answers in text)."""
    tools = body.get("tools")
    if not isinstance(tools, list) or not tools or not isinstance(tools[0], Mapping):
        return None
    function = tools[0].get("function")
    name = str(function.get("name", "lookup")) if isinstance(function, Mapping) else "lookup"
    arguments = msgspec.json.encode({"query": prompt}).decode()
    call_id = f"call_{zlib.crc32(prompt.encode()):08x}"
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def completion(model: ChatModel, body: Any) -> dict[str, Any]:
    """The ChatCompletion answering a chat request body (a parsed JSON object). With ``tools``
    the model first calls the first tool (content null, finish reason ``tool_calls``); once
    the last message is the tool's result, it answers about that result in text. When the last
    message is an assistant's partial answer, the model continues it: its own answer from the
    word after as many words as the partial one has (a space first)."""
    messages = read_messages(body)
    prompt = next((text for role, text in reversed(messages) if role == "user"), "")
    answering_tool = messages[-1][0] == "tool"
    if answering_tool:
        prompt = messages[-1][1]
    prompt_tokens = sum(len(text.split()) for _, text in messages)
    # A final assistant message is a partial answer to continue (a gateway resuming a stream).
    said = messages[-1][1] if messages[-1][0] == "assistant" else ""
    call = None if answering_tool or said else _tool_call(body, prompt)
    if call is not None:
        message: dict[str, Any] = {"role": "assistant", "content": None, "tool_calls": [call]}
        return _completion(model, message, "tool_calls", prompt_tokens, 8)
    words = model.generate(prompt).split()[len(said.split()) :]
    limit = _max_tokens(body)
    finish = "stop"
    if limit is not None and len(words) > limit:
        words, finish = words[:limit], "length"
    content = " ".join(words)
    message = {"role": "assistant", "content": " " + content if said and content else content}
    return _completion(model, message, finish, prompt_tokens, len(words))


def _completion(
    model: ChatModel, message: dict[str, Any], finish: str, prompt_tokens: int, tokens: int
) -> dict[str, Any]:
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model.name,
        "system_fingerprint": model.label,
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": tokens,
            "total_tokens": prompt_tokens + tokens,
        },
    }


def model_list(names: Sequence[str]) -> dict[str, Any]:
    """The body of ``GET /v1/models``."""
    return {
        "object": "list",
        "data": [
            {"id": n, "object": "model", "created": 0, "owned_by": "failwell-demo"} for n in names
        ],
    }


def embed(name: str, dimension: int, body: Any) -> dict[str, Any]:
    """The embeddings answer for a request body: one deterministic unit vector per input text
    (seeded by the model name and the text), ``dimension`` long."""
    if not isinstance(body, Mapping):
        raise ChatRequestError("the request body must be a JSON object")
    given = body.get("input")
    texts = [given] if isinstance(given, str) else given
    if not isinstance(texts, list) or not texts:
        raise ChatRequestError("'input' must be a string or a non-empty list")
    data = []
    for i, text in enumerate(texts):
        rng = np.random.default_rng(zlib.crc32(f"{name}\0{text}".encode()))
        vector = rng.normal(size=dimension)
        vector /= np.linalg.norm(vector)
        data.append({"object": "embedding", "index": i, "embedding": vector.round(6).tolist()})
    tokens = sum(len(str(t).split()) for t in texts)
    return {
        "object": "list",
        "data": data,
        "model": name,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }
