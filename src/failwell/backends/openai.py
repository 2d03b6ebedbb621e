"""OpenAI-compatible chat completions (vLLM, TGI, llama.cpp, Ollama, hosted APIs)."""

from __future__ import annotations

from typing import Any

import msgspec

from failwell.backends.http import HttpUpstream
from failwell.contracts import Request, Result
from failwell.errors import UpstreamMalformed


class _Message(msgspec.Struct):
    content: str | None = None


class _Choice(msgspec.Struct):
    message: _Message
    finish_reason: str | None = None


class _Completion(msgspec.Struct):
    choices: list[_Choice]
    model: str | None = None


_decode = msgspec.json.Decoder(_Completion).decode
_encode = msgspec.json.Encoder().encode

# Sampling parameters passed through to the upstream when the caller sets them.
PASSTHROUGH = (
    "temperature",
    "top_p",
    "max_tokens",
    "stop",
    "seed",
    "presence_penalty",
    "frequency_penalty",
)


class OpenAIAdapter:
    def __init__(
        self,
        http: HttpUpstream,
        base_url: str,
        model: str,
        replica: str,
        version: str | None = None,
    ) -> None:
        self._http = http
        self._url = f"{base_url}/v1/chat/completions"
        self._model = model
        self._replica = replica
        self._version = version

    async def call(self, request: Request, timeout: float) -> Result:
        inputs = request.inputs
        body: dict[str, Any] = {"model": self._model, "messages": inputs["messages"]}
        for key in PASSTHROUGH:
            if inputs.get(key) is not None:
                body[key] = inputs[key]
        payload = await self._http.post(
            self._url, _encode(body), timeout, self._replica, request.headers
        )
        try:
            completion = _decode(payload)
            choice = completion.choices[0]
        except (msgspec.DecodeError, IndexError) as exc:
            raise UpstreamMalformed(
                f"not a chat completion: {exc}", backend=self._http.backend, replica=self._replica
            ) from None
        if choice.message.content is None:
            raise UpstreamMalformed(
                "chat completion without content", backend=self._http.backend, replica=self._replica
            )
        outputs = {
            "content": choice.message.content,
            "finish_reason": choice.finish_reason or "stop",
        }
        return Result(outputs, completion.model or self._version)

    async def close(self) -> None:
        await self._http.close()
