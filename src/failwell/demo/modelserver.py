"""A standalone demo model server: Open Inference Protocol v2 and OpenAI chat, with real faults.

    python -m failwell.demo.modelserver --port P [--host 127.0.0.1] [--model-dir DIR]
        [--model-ref NAME@ALIAS --registry-config failwell.yaml]
        [--name ranker] [--chat-model NAME] [--chat-sentences N] [--label LABEL]
        [--tensor-model] [--delay-ms N] [--concurrency N] [--stream-gap-ms MS]
        [--embed-model NAME --embed-dim N]

    GET  /v2  /v2/health/live  /v2/health/ready  /v2/models/{name}  /v2/models/{name}/ready
    POST /v2/models/{name}/infer        the ranker with --model-dir, the image scorer with
                                        --tensor-model (binary tensor data too), else an echo;
                                        at most --concurrency at once (more wait their turn)
    POST /v1/chat/completions           with --chat-model; ``stream: true`` answers with Server-Sent
                                        Events, token by token, --stream-gap-ms apart
    POST /v1/embeddings                 with --embed-model and --embed-dim
    GET  /v1/models
    GET  /_control, POST /_control      fault injection (see ``faults``)
    GET  /_control/last                 the last chat request's body, as it arrived

Prints ``READY <port>`` on stdout once it accepts connections (``--port 0`` picks a free port)
and stops cleanly on SIGTERM or SIGINT. Errors are JSON: ``{"error": "..."}`` on v2 routes and
OpenAI's ``{"error": {"message", "type", ...}}`` on ``/v1`` routes.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import signal
import socket
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import msgspec
from aiohttp import web

from failwell.demo.chat import ChatModel, ChatRequestError, completion, embed, model_list
from failwell.demo.faults import Fault, FaultInjector, FaultMode
from failwell.demo.stream import stream_answer
from failwell.demo.tensormodel import ScorerModel

SHUTDOWN_TIMEOUT = 2.0
_encode = msgspec.json.Encoder().encode


class Tensor(msgspec.Struct, omit_defaults=True):
    name: str
    datatype: str
    shape: list[int]
    data: list[Any]
    parameters: dict[str, Any] | None = None


class InferRequest(msgspec.Struct):
    inputs: list[Tensor]
    id: str | None = None
    parameters: dict[str, Any] | None = None
    outputs: list[dict[str, Any]] | None = None


_decode_infer = msgspec.json.Decoder(InferRequest).decode


class V2Model(Protocol):
    name: str
    version: str

    def metadata(self) -> dict[str, Any]: ...

    def infer(self, inputs: list[Tensor]) -> list[Tensor]: ...


def _flat(data: list[Any]) -> list[Any]:
    out: list[Any] = []
    for value in data:
        out.extend(_flat(value) if isinstance(value, list) else [value])
    return out


class EchoModel:
    """Answers every input tensor back as an output."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.version = "echo"

    def metadata(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "versions": [self.version],
            "platform": "failwell-demo-echo",
            "inputs": [],
            "outputs": [],
        }

    def infer(self, inputs: list[Tensor]) -> list[Tensor]:
        return inputs


class RankerModel:
    """The primary demo ranker behind v2: BYTES user_id, country, category → INT64 items[10]."""

    FIELDS = ("user_id", "country", "category")

    def __init__(self, name: str, model_dir: Path) -> None:
        from failwell.demo.models import Ranker  # scikit-learn only when a ranker is served

        self._ranker = Ranker(model_dir)
        self.name = name
        self.version = self._ranker.version

    def metadata(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "versions": [self.version],
            "platform": "failwell-demo-sklearn",
            "inputs": [{"name": n, "datatype": "BYTES", "shape": [1]} for n in self.FIELDS],
            "outputs": [{"name": "items", "datatype": "INT64", "shape": [10]}],
        }

    def infer(self, inputs: list[Tensor]) -> list[Tensor]:
        given = {t.name: t for t in inputs}
        values: dict[str, str] = {}
        for name in self.FIELDS:
            tensor = given.get(name)
            if tensor is None:
                raise ValueError(f"missing input tensor {name!r}")
            data = _flat(tensor.data)
            if len(data) != 1 or not isinstance(data[0], str):
                raise ValueError(f"input {name!r} must hold exactly one string")
            values[name] = data[0]
        items = self._ranker.predict(values)["items"]
        return [Tensor("items", "INT64", [len(items)], items)]


@dataclass(frozen=True)
class ServerOptions:
    port: int
    host: str = "127.0.0.1"
    model_dir: Path | None = None
    name: str = "ranker"
    chat_model: str | None = None
    chat_sentences: int = 3
    label: str | None = None
    model_ref: str | None = None  # NAME@ALIAS or NAME@VERSION from the registry
    registry_config: Path = Path("failwell.yaml")
    tensor_model: bool = False  # serve the image scorer (tensors, batches, binary data)
    delay_ms: int = 0  # service time of every inference (the "slow" fault from the start)
    concurrency: int = 0  # inferences served at once; more queue (0: no limit)
    stream_gap_ms: int = 15  # between streamed chunks
    embed_model: str | None = None
    embed_dim: int = 8


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(status=status, body=_encode(data), content_type="application/json")


def _v2_error(message: str, status: int = 400) -> web.Response:
    return _json({"error": message}, status)


def _openai_error(
    message: str, status: int = 400, kind: str = "invalid_request_error", code: str | None = None
) -> web.Response:
    return _json({"error": {"message": message, "type": kind, "param": None, "code": code}}, status)


V2_FAULT_BODY = _encode({"error": "injected fault"})


def _v2_fault(fault: Fault) -> bytes:
    return V2_FAULT_BODY


def _openai_fault(fault: Fault) -> bytes:
    """OpenAI's error shape; a 4xx is the caller's (invalid_request_error), else server_error."""
    kind = "invalid_request_error" if 400 <= fault.status < 500 else "server_error"
    error = {"message": "injected fault", "type": kind, "param": None, "code": fault.code}
    return _encode({"error": error})


class ModelServer:
    """The request handlers, over one v2 model, an optional chat model and the fault state."""

    def __init__(
        self,
        v2: V2Model | ScorerModel,
        chat: ChatModel | None,
        faults: FaultInjector,
        gap: float = 0.015,
    ) -> None:
        self.v2, self.chat, self.faults, self.gap = v2, chat, faults, gap
        self.last_chat = b""  # the last chat request's body as it arrived (GET /_control/last)
        self.embedder: tuple[str, int] | None = None  # (model name, dimension)
        self.slots: asyncio.Semaphore | None = None  # --concurrency: v2 inferences at once

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/v2", self.server_metadata),
            web.get("/v2/health/live", self.live),
            web.get("/v2/health/ready", self.ready),
            web.get("/v2/models/{name}", self.model_metadata),
            web.get("/v2/models/{name}/versions/{version}", self.model_metadata),
            web.get("/v2/models/{name}/ready", self.model_ready),
            web.get("/v2/models/{name}/versions/{version}/ready", self.model_ready),
            web.post("/v2/models/{name}/infer", self.infer),
            web.post("/v2/models/{name}/versions/{version}/infer", self.infer),
            web.post("/v1/chat/completions", self.chat_completions),
            web.post("/v1/embeddings", self.embeddings),
            web.get("/v1/models", self.models),
            web.get("/_control", self.get_control),
            web.get("/_control/last", self.last_request),
            web.post("/_control", self.set_control),
        ]

    async def server_metadata(self, request: web.Request) -> web.Response:
        return _json({"name": "failwell-demo-modelserver", "version": "1", "extensions": []})

    async def live(self, request: web.Request) -> web.Response:
        return _json({"live": True})

    async def ready(self, request: web.Request) -> web.Response:
        ready = self.faults.fault.ready
        return _json({"ready": ready}, 200 if ready else 503)

    def _unknown(self, request: web.Request) -> web.Response | None:
        name = request.match_info["name"]
        version = request.match_info.get("version")
        if name != self.v2.name:
            return _v2_error(f"unknown model {name!r}", 404)
        if version is not None and version != self.v2.version:
            return _v2_error(f"unknown version {version!r} of model {name!r}", 404)
        return None

    async def model_metadata(self, request: web.Request) -> web.Response:
        return self._unknown(request) or _json(self.v2.metadata())

    async def model_ready(self, request: web.Request) -> web.Response:
        ready = self.faults.fault.ready
        return self._unknown(request) or _json(
            {"name": self.v2.name, "ready": ready}, 200 if ready else 503
        )

    async def infer(self, request: web.Request) -> web.StreamResponse:
        if self.slots is None:
            return await self._infer(request)
        async with self.slots:  # like a model server's queue: the service time is waited in it
            return await self._infer(request)

    async def _infer(self, request: web.Request) -> web.StreamResponse:
        unknown = self._unknown(request)
        if unknown is not None:
            return unknown
        body = await request.read()
        faulty = await self.faults.apply(request, _v2_fault)
        if faulty is not None:
            return faulty
        header_length = request.headers.get("Inference-Header-Content-Length")
        if isinstance(self.v2, ScorerModel):
            return self._infer_tensors(body, header_length)
        if header_length is not None:
            return _v2_error("binary tensor data is not supported; send JSON tensors")
        try:
            parsed = _decode_infer(body)
            outputs = self.v2.infer(parsed.inputs)
        except (msgspec.DecodeError, ValueError) as exc:
            return _v2_error(f"bad inference request: {exc}")
        answer: dict[str, Any] = {"model_name": self.v2.name, "model_version": self.v2.version}
        if parsed.id is not None:
            answer["id"] = parsed.id
        answer["outputs"] = outputs
        return _json(answer)

    def _infer_tensors(self, body: bytes, header_length: str | None) -> web.Response:
        assert isinstance(self.v2, ScorerModel)
        try:
            length = None if header_length is None else int(header_length)
            payload, out_length = self.v2.answer(body, length)
        except (msgspec.DecodeError, ValueError, KeyError, TypeError) as exc:
            return _v2_error(f"bad inference request: {exc}")
        if out_length is None:
            return web.Response(body=payload, content_type="application/json")
        headers = {"Inference-Header-Content-Length": str(out_length)}
        return web.Response(body=payload, content_type="application/octet-stream", headers=headers)

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

    async def get_control(self, request: web.Request) -> web.Response:
        state = self.faults.state()
        if isinstance(self.v2, ScorerModel):
            state["model"] = self.v2.state()
        return _json(state)

    async def last_request(self, request: web.Request) -> web.Response:
        return _json({"body": self.last_chat.decode("utf-8", "replace")})

    async def set_control(self, request: web.Request) -> web.Response:
        try:
            self.faults.fault = Fault.parse(msgspec.json.decode(await request.read()))
        except (msgspec.DecodeError, ValueError) as exc:
            return _v2_error(str(exc))
        return _json(self.faults.state())


def build_app(options: ServerOptions, faults: FaultInjector, label: str) -> web.Application:
    """The aiohttp application for ``options`` (loads the ranker when a model dir is given)."""
    v2: V2Model | ScorerModel
    if options.tensor_model:
        v2 = ScorerModel(options.name)
    elif options.model_ref is not None:
        from failwell.registry.serving import checkout_ref

        path, version = checkout_ref(options.registry_config, options.model_ref)
        v2 = RankerModel(options.name, path)
        v2.version = version
    elif options.model_dir is not None:
        v2 = RankerModel(options.name, options.model_dir)
    else:
        v2 = EchoModel(options.name)
    chat = None
    if options.chat_model is not None:
        chat = ChatModel(options.chat_model, label, sentences=options.chat_sentences)
    app = web.Application(client_max_size=64 * 1024 * 1024)
    server = ModelServer(v2, chat, faults, options.stream_gap_ms / 1000)
    if options.embed_model is not None:
        server.embedder = (options.embed_model, options.embed_dim)
    if options.concurrency:
        server.slots = asyncio.Semaphore(options.concurrency)
    app.add_routes(server.routes())
    return app


def listen(host: str, port: int) -> socket.socket:
    """A listening TCP socket on host:port (port 0: any free port)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    return socket.create_server((host, port), family=family, backlog=1024)


async def serve(app: web.Application, sock: socket.socket, faults: FaultInjector) -> None:
    """Serve ``app`` on ``sock`` until SIGTERM/SIGINT; prints ``READY <port>`` once serving."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    runner = web.AppRunner(
        app, access_log=None, handler_cancellation=True, shutdown_timeout=SHUTDOWN_TIMEOUT
    )
    await runner.setup()
    try:
        await web.SockSite(runner, sock).start()
        gc.collect()
        gc.freeze()
        print(f"READY {sock.getsockname()[1]}", flush=True)
        await stop.wait()
        faults.release()
    finally:
        await runner.cleanup()


def parse_args(argv: Sequence[str] | None = None) -> ServerOptions:
    parser = argparse.ArgumentParser(
        prog="python -m failwell.demo.modelserver", description="failwell demo model server"
    )
    parser.add_argument("--port", type=int, required=True, help="port to listen on (0: any free)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--model-dir", type=Path, help="serve the trained ranker from this dir")
    parser.add_argument("--model-ref", help="serve the ranker from the registry: NAME@ALIAS")
    parser.add_argument(
        "--registry-config", type=Path, default=Path("failwell.yaml"), help="its registry: section"
    )
    parser.add_argument("--name", default="ranker", help="v2 model name")
    parser.add_argument("--chat-model", help="serve /v1/chat/completions as this model")
    parser.add_argument("--chat-sentences", type=int, default=3, help="sentences per chat reply")
    parser.add_argument("--label", help="replica label included in chat replies")
    parser.add_argument(
        "--tensor-model", action="store_true", help="serve the image scorer (FP32 batches)"
    )
    parser.add_argument(
        "--delay-ms", type=int, default=0, help="service time added to every inference"
    )
    parser.add_argument(
        "--concurrency", type=int, default=0, help="v2 inferences served at once (0: no limit)"
    )
    parser.add_argument(
        "--stream-gap-ms", type=int, default=15, help="time between streamed chunks"
    )
    parser.add_argument("--embed-model", help="serve /v1/embeddings as this model")
    parser.add_argument("--embed-dim", type=int, default=8, help="its vectors' dimension")
    args = parser.parse_args(argv)
    return ServerOptions(
        port=args.port,
        host=args.host,
        model_dir=args.model_dir,
        name=args.name,
        chat_model=args.chat_model,
        chat_sentences=args.chat_sentences,
        label=args.label,
        model_ref=args.model_ref,
        registry_config=args.registry_config,
        tensor_model=args.tensor_model,
        delay_ms=args.delay_ms,
        concurrency=max(0, args.concurrency),
        stream_gap_ms=args.stream_gap_ms,
        embed_model=args.embed_model,
        embed_dim=args.embed_dim,
    )


def _event_loop_factory() -> Callable[[], asyncio.AbstractEventLoop]:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency, but stay runnable
        return asyncio.new_event_loop
    return uvloop.new_event_loop


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_args(argv)
    try:
        sock = listen(options.host, options.port)
    except OSError as exc:
        print(
            f"modelserver: cannot listen on {options.host}:{options.port}: {exc}", file=sys.stderr
        )
        return 1
    port = sock.getsockname()[1]
    label = options.label or f"{options.chat_model or options.name}@{port}"
    faults = FaultInjector()
    if options.delay_ms:
        faults.fault = Fault(FaultMode.SLOW, options.delay_ms)
    try:
        app = build_app(options, faults, label)
    except Exception as exc:  # whatever loading the model raised, the server cannot start
        sock.close()
        print(f"modelserver: cannot load the model: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    with asyncio.Runner(loop_factory=_event_loop_factory()) as runner:
        runner.run(serve(app, sock, faults))
    return 0


if __name__ == "__main__":
    sys.exit(main())
