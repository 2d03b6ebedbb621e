"""A route: its input schema (decode and validate in one step) and its cache key.

A field route's schema is its ``input`` fields; a tensor route's is a ``TensorSchema``
(``routing/tensor_schema.py``), its inputs are ``Tensors`` and its cache key is a digest of
the tensors' bytes."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import msgspec
from msgspec.structs import replace

from failwell.config.fields import FieldType
from failwell.config.models import MidStream, RouteConfig, RouteKind
from failwell.contracts import Answer, Request
from failwell.errors import InvalidInput
from failwell.protocols.chat import NO_NEEDS, text_of
from failwell.protocols.chat import needs as chat_needs
from failwell.protocols.invalid import invalid_from_msgspec
from failwell.protocols.tensor import Tensors
from failwell.resilience.deadline import Deadline
from failwell.routing.chain import TierChain
from failwell.routing.streams import OpenStream
from failwell.routing.tensor_schema import TensorSchema

MAX_LIST = 100_000
_encode = msgspec.json.Encoder(order="deterministic").encode


def input_struct(route: str, schema: Mapping[str, FieldType]) -> type[msgspec.Struct]:
    fields = [(name, kind.python) for name, kind in schema.items()]
    return msgspec.defstruct(f"{route}_inputs", fields, forbid_unknown_fields=True)


_decode_any_body = msgspec.json.Decoder(dict[str, dict[str, Any]]).decode


class Route:
    def __init__(
        self,
        name: str,
        config: RouteConfig,
        chain: TierChain,
        tensors: TensorSchema | None = None,
    ) -> None:
        self.name = name
        self.config = config
        self.kind = config.kind
        self._chat = config.kind is RouteKind.CHAT
        self.schema = dict(config.input)
        self.tensors = tensors
        self.chain = chain
        self.deadline = config.deadline
        self.max_body = config.max_body
        self._key_template = config.cache.key
        if self.kind is RouteKind.PREDICT and tensors is None:
            self._inputs = inputs = input_struct(name, self.schema)
            body = msgspec.defstruct(
                f"{name}_body", [("inputs", inputs)], forbid_unknown_fields=True
            )
            self._decode_body = msgspec.json.Decoder(body).decode

    def _request(
        self, inputs: dict[str, Any], request_id: str, front_end: str, headers: dict[str, str]
    ) -> Request:
        """One request through this route's chain, with its own deadline."""
        return Request(
            self.name,
            inputs,
            Deadline(self.deadline, self.chain.clock),
            request_id,
            front_end,
            self.schema,
            headers,
            chat_needs(inputs) if self._chat else NO_NEEDS,
        )

    async def answer(
        self, inputs: dict[str, Any], request_id: str, front_end: str, headers: dict[str, str]
    ) -> Answer:
        chain = self.chain
        started = chain.clock.now()
        request = self._request(inputs, request_id, front_end, headers)
        gauge = chain.in_flight
        gauge.inc()
        try:
            return await chain.run(request, started)
        finally:
            gauge.dec()

    async def open_stream(
        self, inputs: dict[str, Any], request_id: str, front_end: str, headers: dict[str, str]
    ) -> OpenStream:
        """The answer as a stream (a chat route, ``stream: true``): the route's deadline
        bounds the time to the first chunk; the in-flight gauge falls when it ``end``s. Under
        the ``continue`` policy the stream may resume on a later tier after a failure."""
        chain = self.chain
        started = chain.clock.now()
        request = self._request(inputs, request_id, front_end, headers)
        gauge = chain.in_flight
        gauge.inc()
        policy = self.config.stream
        try:
            opened = await chain.open_stream(request, started, policy.first_token_timeout)
        except BaseException:
            gauge.dec()
            raise
        opened.gauge = gauge
        if opened.metrics is not None:
            opened.streams = opened.metrics.stream_opened(
                self.name, opened.tier, opened.answer.latency
            )
        if policy.on_failure is MidStream.CONTINUE:
            opened.resume, opened.resumes_left = self._resume, policy.max_resumes
        return opened

    async def _resume(self, request: Request, after: int) -> OpenStream:
        """A stream taking over from tier ``after``'s; its first chunk within a new deadline."""
        fresh = replace(request, deadline=Deadline(self.deadline, self.chain.clock))
        return await self.chain.resume_stream(fresh, after, self.config.stream.first_token_timeout)

    def decode_predict(self, body: bytes) -> dict[str, Any]:
        """Decode and validate a ``{"inputs": {...}}`` body into the inputs mapping (a tensor
        route's: each input as nested lists, in the declared datatype)."""
        if self.tensors is not None:
            try:
                given = _decode_any_body(body)
            except msgspec.DecodeError as exc:
                raise invalid_from_msgspec(exc) from None
            if set(given) != {"inputs"}:
                raise InvalidInput('expected a body {"inputs": {...}}', status=400)
            return self.tensors.from_values(given["inputs"])
        try:
            parsed = self._decode_body(body)
        except msgspec.DecodeError as exc:
            raise invalid_from_msgspec(exc) from None
        return msgspec.structs.asdict(parsed.inputs)  # type: ignore[attr-defined]

    def validate(self, inputs: Mapping[str, Any]) -> dict[str, Any]:
        """Validate inputs given as Python values (the in-process API) like a decoded body."""
        if self.kind is RouteKind.CHAT:
            if not isinstance(inputs.get("messages"), list):
                raise InvalidInput("messages: expected a list of messages", field="messages")
            return dict(inputs)
        if self.tensors is not None:
            if type(inputs) is Tensors:
                return self.tensors.check(inputs)
            return self.tensors.from_values(inputs)
        if self.kind is RouteKind.EMBEDDINGS:
            if not isinstance(inputs.get("input"), str | list):
                raise InvalidInput("input: expected a string or a list", field="input")
            return dict(inputs)
        try:
            parsed = msgspec.convert(dict(inputs), self._inputs)
        except msgspec.ValidationError as exc:
            raise invalid_from_msgspec(exc) from None
        return msgspec.structs.asdict(parsed)

    def cache_key(self, request: Request) -> str:
        inputs = request.inputs
        if type(inputs) is Tensors:
            if self._key_template is None:
                return f"{self.name}\x1ftensors:{inputs.digest()}"
            fields = {name: Tensors({name: t}).digest() for name, t in inputs.items()}
        elif self.kind is RouteKind.CHAT:
            messages = inputs.get("messages", [])
            fields = {
                "messages": _encode(messages).decode(),
                "prompt": next(
                    (
                        text_of(m.get("content"))
                        for m in reversed(messages)
                        if m.get("role") == "user"
                    ),
                    "",
                ),
            }
        elif self.kind is RouteKind.EMBEDDINGS:
            fields = {"input": _encode(inputs.get("input")).decode()}
        else:
            fields = inputs
        if self._key_template is not None:
            key = self._key_template.format_map(fields)  # a tensor: its digest
        elif self.kind is RouteKind.CHAT:
            key = fields["messages"]
        elif self.kind is RouteKind.EMBEDDINGS:
            key = _encode(inputs).decode()  # the options (dimensions, format) shape the answer
        else:
            key = "|".join(f"{k}={inputs[k]}" for k in self.schema)
        if len(key) > 200:
            key = "sha256:" + hashlib.sha256(key.encode()).hexdigest()
        return f"{self.name}\x1f{key}"
