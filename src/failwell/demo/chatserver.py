"""The demo model server's OpenAI endpoints: chat completions (streamed too), embeddings,
the model list, and the last chat request as it arrived."""

from __future__ import annotations

import msgspec
from aiohttp import web

from failwell.demo.chat import ChatModel, ChatRequestError, completion, embed, model_list
from failwell.demo.faults import FaultInjector
from failwell.demo.responses import json_response as _json
from failwell.demo.responses import openai_error as _openai_error
from failwell.demo.responses import openai_fault as _openai_fault
from failwell.demo.stream import stream_answer


class ChatServer:
    """/v1/chat/completions, /v1/embeddings, /v1/models and /_control/last."""

    def __init__(self, chat: ChatModel | None, faults: FaultInjector, gap: float = 0.015) -> None:
        self.chat, self.faults, self.gap = chat, faults, gap
        self.last_chat = b""  # the last chat request's body as it arrived (GET /_control/last)
        self.embedder: tuple[str, int] | None = None  # (model name, dimension)

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post("/v1/chat/completions", self.chat_completions),
            web.post("/v1/embeddings", self.embeddings),
            web.get("/v1/models", self.models),
            web.get("/_control/last", self.last_request),
        ]

    async def chat_completions(self, request: web.Request) -> web.StreamResponse:
        if self.chat is None:
            return _openai_error("this server has no chat model", 404, code="model_not_found")
        body = self.last_chat = await request.read()
        faulty = await self.faults.apply(request, _openai_fault)
        if faulty is not None:
            return faulty
        try:
            parsed = msgspec.json.decode(body)
        except msgspec.DecodeError as exc:
            return _openai_error(f"the body is not JSON: {exc}")
        model = parsed.get("model") if isinstance(parsed, dict) else None
        if model is not None and model != self.chat.name:
            return _openai_error(
                f"The model `{model}` does not exist.", 404, code="model_not_found"
            )
        try:
            answer = completion(self.chat, parsed)
        except ChatRequestError as exc:
            return _openai_error(str(exc))
        if not parsed.get("stream"):
            return _json(answer)
        self.faults.streams_open += 1
        try:
            return await stream_answer(request, answer, parsed, self.faults.fault, self.gap)
        finally:
            self.faults.streams_open -= 1

    async def embeddings(self, request: web.Request) -> web.StreamResponse:
        if self.embedder is None:
            return _openai_error("this server has no embeddings model", 404, code="model_not_found")
        name, dimension = self.embedder
        body = await request.read()
        faulty = await self.faults.apply(request, _openai_fault)
        if faulty is not None:
            return faulty
        try:
            parsed = msgspec.json.decode(body)
            if isinstance(parsed, dict) and parsed.get("model") not in (None, name):
                return _openai_error(f"The model `{parsed['model']}` does not exist.", 404)
            return _json(embed(name, dimension, parsed))
        except (msgspec.DecodeError, ChatRequestError) as exc:
            return _openai_error(str(exc))

    async def models(self, request: web.Request) -> web.Response:
        return _json(model_list([self.chat.name] if self.chat else []))

    async def last_request(self, request: web.Request) -> web.Response:
        return _json({"body": self.last_chat.decode("utf-8", "replace")})
