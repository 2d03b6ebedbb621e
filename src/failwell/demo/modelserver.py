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

import msgspec
from aiohttp import web

from failwell.demo.chat import ChatModel
from failwell.demo.chatserver import ChatServer
from failwell.demo.faults import Fault, FaultInjector, FaultMode
from failwell.demo.responses import json_response as _json
from failwell.demo.responses import v2_error as _v2_error
from failwell.demo.tensormodel import ScorerModel
from failwell.demo.tensorserver import TensorServer
from failwell.demo.v2models import EchoModel, RankerModel
from failwell.demo.v2server import V2Server

SHUTDOWN_TIMEOUT = 2.0


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


class ModelServer:
    """One server: the v2 endpoints (a field or a tensor model), the OpenAI ones, and the
    fault control shared by both."""

    def __init__(self, v2: V2Server, chat: ChatServer, faults: FaultInjector) -> None:
        self.v2, self.chat, self.faults = v2, chat, faults

    def routes(self) -> list[web.RouteDef]:
        return [
            *self.v2.routes(),
            *self.chat.routes(),
            web.get("/_control", self.get_control),
            web.post("/_control", self.set_control),
        ]

    async def get_control(self, request: web.Request) -> web.Response:
        state = self.faults.state()
        if isinstance(self.v2, TensorServer):
            state["model"] = self.v2.state()
        return _json(state)

    async def set_control(self, request: web.Request) -> web.Response:
        try:
            self.faults.fault = Fault.parse(msgspec.json.decode(await request.read()))
        except (msgspec.DecodeError, ValueError) as exc:
            return _v2_error(str(exc))
        return _json(self.faults.state())


def build_app(options: ServerOptions, faults: FaultInjector, label: str) -> web.Application:
    """The aiohttp application for ``options`` (loads the ranker when a model dir is given)."""
    v2: V2Server
    if options.tensor_model:
        v2 = TensorServer(ScorerModel(options.name), faults)
    elif options.model_ref is not None:
        from failwell.registry.serving import checkout_ref

        path, version = checkout_ref(options.registry_config, options.model_ref)
        ranker = RankerModel(options.name, path)
        ranker.version = version
        v2 = V2Server(ranker, faults)
    elif options.model_dir is not None:
        v2 = V2Server(RankerModel(options.name, options.model_dir), faults)
    else:
        v2 = V2Server(EchoModel(options.name), faults)
    if options.concurrency:
        v2.slots = asyncio.Semaphore(options.concurrency)
    chat = None
    if options.chat_model is not None:
        chat = ChatModel(options.chat_model, label, sentences=options.chat_sentences)
    app = web.Application(client_max_size=64 * 1024 * 1024)
    chat_server = ChatServer(chat, faults, options.stream_gap_ms / 1000)
    if options.embed_model is not None:
        chat_server.embedder = (options.embed_model, options.embed_dim)
    app.add_routes(ModelServer(v2, chat_server, faults).routes())
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
