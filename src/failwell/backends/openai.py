"""OpenAI-compatible chat completions and embeddings (vLLM, TGI, llama.cpp, Ollama, hosted
APIs). A backend that declares a ``dimension`` is an embeddings model: it answers
``/v1/embeddings``, and a vector of another size is a malformed answer.

The request goes up as the client sent it, with ``model`` set to this backend's upstream model
name; the answer comes back whole (usage, tool calls, logprobs, system fingerprint ...).
"""

from __future__ import annotations

import time
from typing import Any

import msgspec

from failwell.backends.chatstream import ChatStream
from failwell.backends.http import HttpUpstream
from failwell.contracts import Request, Result
from failwell.errors import UpstreamMalformed, UpstreamRejected
from failwell.protocols.chat import check_completion, classify
from failwell.protocols.embeddings import check_answer as check_embeddings

_decode = msgspec.json.Decoder(dict[str, Any]).decode
_encode = msgspec.json.Encoder().encode


class OpenAIAdapter:
    def __init__(
        self,
        http: HttpUpstream,
        base_url: str,
        model: str,
        replica: str,
        version: str | None = None,
        dimension: int | None = None,
    ) -> None:
        self._http = http
        self._dimension = dimension
        path = "/v1/embeddings" if dimension is not None else "/v1/chat/completions"
        self._url = f"{base_url}{path}"
        self._model = model
        self._replica = replica
        self._version = version

    def _malformed(self, why: str) -> UpstreamMalformed:
        return UpstreamMalformed(
            f"not a usable answer: {why}", backend=self._http.backend, replica=self._replica
        )

    async def call(self, request: Request, timeout: float) -> Result:
        body = _encode({**request.inputs, "model": self._model})
        try:
            payload, _ = await self._http.exchange(  # not post: one coroutine frame fewer
                self._url, body, timeout, self._replica, request.headers
            )
        except UpstreamRejected as exc:
            raise classify(exc) from None
        try:
            answer = _decode(payload)
        except msgspec.DecodeError as exc:
            raise self._malformed(f"not JSON: {exc}") from None
        if self._dimension is not None:
            why = check_embeddings(answer, self._dimension)
        else:
            why = check_completion(answer)
        if why is not None:
            raise self._malformed(why)
        model = answer.get("model")
        return Result(answer, model if isinstance(model, str) else self._version)

    async def stream(self, request: Request, timeout: float) -> ChatStream:
        """The answer as a stream, once its first substantive chunk is in hand (within
        ``timeout`` seconds, the head included)."""
        body = _encode({**request.inputs, "model": self._model, "stream": True})
        ends = time.monotonic() + timeout
        try:
            reader = await self._http.open_stream(
                self._url, body, timeout, self._replica, request.headers
            )
        except UpstreamRejected as exc:
            raise classify(exc) from None
        stream = ChatStream(reader, self._http.backend, self._replica)
        return await stream.open(max(0.0, ends - time.monotonic()))

    async def close(self) -> None:
        await self._http.close()
