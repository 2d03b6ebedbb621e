"""The OpenAI embeddings wire format: what failwell checks of a request, and the answer of a
tier that is not a model.

A request travels the tier chain as the client sent it, without ``model``; failwell checks
``input`` (a string, a list of strings, a list of token ids, or a list of token-id lists) and
the types of ``encoding_format``, ``dimensions`` and ``user``; every other field passes through.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from failwell.errors import InvalidInput
from failwell.protocols.invalid import invalid_from_msgspec

MAX_INPUTS = 2048


class EmbeddingsRequest(msgspec.Struct, forbid_unknown_fields=False):
    model: str
    input: str | list[str | int | list[int]]  # one kind per list: checked after decoding
    encoding_format: Literal["float", "base64"] | None = None
    dimensions: int | None = None
    user: str | None = None


_check = msgspec.json.Decoder(EmbeddingsRequest).decode
_raw = msgspec.json.Decoder(dict[str, Any]).decode


def decode_request(body: bytes) -> tuple[str, dict[str, Any]]:
    """(route name, the body without ``model``); InvalidInput names the field that is wrong."""
    try:
        req = _check(body)
        inputs = _raw(body)
    except msgspec.DecodeError as exc:
        raise invalid_from_msgspec(exc) from None
    given = req.input
    if isinstance(given, list):
        if not given:
            raise InvalidInput("input: at least one input is required", field="input")
        if len(given) > MAX_INPUTS:
            raise InvalidInput(f"input: at most {MAX_INPUTS} inputs", field="input")
        kind = type(given[0])
        if any(type(item) is not kind for item in given):
            raise InvalidInput(
                "input: a list of strings, of token ids, or of token-id lists, not a mix",
                field="input",
            )
    del inputs["model"]
    return req.model, inputs


def count(inputs: dict[str, Any]) -> int:
    """How many embeddings the request asks for."""
    given = inputs.get("input")
    if isinstance(given, list) and given and not isinstance(given[0], int):
        return len(given)
    return 1


def check_answer(answer: Any, dimension: int | None) -> str | None:
    """Why an upstream's decoded answer is not a usable embeddings list, or None."""
    if not isinstance(answer, dict) or not isinstance(answer.get("data"), list):
        return "no data"
    if not answer["data"]:
        return "no embeddings"
    for item in answer["data"]:
        vector = item.get("embedding") if isinstance(item, dict) else None
        if isinstance(vector, str):  # base64, as asked: its size is not checked
            continue
        if not isinstance(vector, list):
            return "an item without an embedding"
        if dimension is not None and len(vector) != dimension:
            return f"an embedding of {len(vector)} dimensions, not {dimension}"
    return None


def is_embeddings(outputs: Any) -> bool:
    return isinstance(outputs, dict) and isinstance(outputs.get("data"), list)


def embeddings(model: str, outputs: Any, inputs: dict[str, Any]) -> dict[str, Any]:
    """The answer of a tier that is not a model: ``outputs`` (one vector, or ``{"embedding":
    [...]}``) for every input, no tokens counted."""
    vector = outputs.get("embedding") if isinstance(outputs, dict) else outputs
    data = [{"object": "embedding", "index": i, "embedding": vector} for i in range(count(inputs))]
    return {
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": 0, "total_tokens": 0},
    }
