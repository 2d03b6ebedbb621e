"""Real processes on 127.0.0.1: demo model servers and the gateway itself."""

from __future__ import annotations

import asyncio
import gc
import io
import json
import re
import signal
import socket
import ssl
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml

from failwell.demo.procs import ManagedProcess
from failwell.demo.redisserver import redis_answers
from failwell.demo.train import train
from failwell.testing.load import LoadResult, run_load

PY = sys.executable


# Debian's Chromium, headless, with the flags that keep it off the network (the machine has none)
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def launch_chromium(playwright: Any) -> Any:
    """A real headless Chromium driven by Playwright (its own browser download is not used)."""
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(check: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
    ends = time.monotonic() + timeout
    while time.monotonic() < ends:
        if check():
            return True
        time.sleep(interval)
    return check()


def http_json(url: str, data: Any = None, timeout: float = 5.0) -> Any:
    body = None if data is None else json.dumps(data).encode()
    req = urllib.request.Request(url, data=body, headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return json.loads(resp.read())
    except urllib.error.HTTPError as exc:  # the same error, its body named in the message
        raw = exc.read()
        message = f"{exc.msg}: {raw[:500]!r}"
        raise urllib.error.HTTPError(
            exc.url, exc.code, message, exc.headers, io.BytesIO(raw)
        ) from None


def metric_value(text: str, name: str, **labels: str) -> float | None:
    """The value of one sample in a Prometheus text exposition."""
    for line in text.splitlines():
        if not line.startswith(name + "{"):
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', line[len(name) : line.rindex("}") + 1]))
        if all(found.get(k) == v for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return None


class ModelServer:
    def __init__(self, stack: Stack, label: str, args: list[str]) -> None:
        self.stack, self.label, self.args = stack, label, args
        self.port = free_port()
        self.proc = self._start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _start(self) -> ManagedProcess:
        proc = ManagedProcess(f"modelserver-{self.label}")
        cmd = [
            PY,
            "-m",
            "failwell.demo.modelserver",
            "--port",
            str(self.port),
            "--label",
            self.label,
            *self.args,
        ]
        proc.start(cmd, ready_line="READY", timeout=60)
        self.stack.procs.append(proc)
        return proc

    def replica(self, zone: str = "east", priority: int = 0) -> dict[str, Any]:
        return {"url": self.url, "zone": zone, "priority": priority, "name": self.label}

    def kill(self) -> None:
        self.proc.kill(signal.SIGKILL)
        self.proc.wait(5)

    def signal(self, sig: int) -> None:
        self.proc.kill(sig)

    def restart(self) -> None:
        self.proc.stop(grace=1)
        self.proc = self._start()

    def control(self, mode: str, **params: Any) -> Any:
        return http_json(f"{self.url}/_control", {"mode": mode, **params})

    def requests(self) -> int:
        return int(http_json(f"{self.url}/_control")["requests"])


def light_ranker(models: Path) -> dict[str, Any]:
    """The demo's lighter ranker, in-process: the usual tier 2 of a recommend route."""
    return {
        "protocol": "python",
        "target": "failwell.demo.models:LightRanker",
        "args": {"model_dir": str(models)},
    }


def openai_backend(server: ModelServer, model: str, **extra: Any) -> dict[str, Any]:
    """An OpenAI-protocol backend on one demo model server (a 2 s timeout unless ``extra``
    says otherwise)."""
    return {
        "protocol": "openai",
        "model": model,
        "timeout": "2s",
        "replicas": [server.replica()],
        **extra,
    }


class Gateway:
    def __init__(self, proc: ManagedProcess, port: int, config_path: Path) -> None:
        self.proc, self.port, self.config_path = proc, port, config_path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def predict_url(self, route: str) -> str:
        return f"{self.url}/v1/predict/{route}"

    def metrics(self) -> str:
        with urllib.request.urlopen(f"{self.url}/metrics", timeout=5) as resp:
            body: bytes = resp.read()
            return body.decode()


class RedisServer:
    def __init__(self, proc: ManagedProcess, port: int) -> None:
        self.proc, self.port = proc, port

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"


class Stack:
    """Starts real processes for one test and stops every one of them afterwards."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.procs: list[ManagedProcess] = []

    def model_server(
        self, *, model_dir: Path | None = None, chat_model: str | None = None, label: str = "m"
    ) -> ModelServer:
        args: list[str] = []
        if model_dir is not None:
            args += ["--model-dir", str(model_dir)]
        if chat_model is not None:
            args += ["--chat-model", chat_model]
        return ModelServer(self, label, args)

    def config(
        self, backends: dict[str, Any], routes: dict[str, Any], **gateway: Any
    ) -> dict[str, Any]:
        port = free_port()
        gw = {
            "listen": f"127.0.0.1:{port}",
            "cache": {"path": str(self.tmp / "cache.sqlite")},
            **gateway,
        }
        return {"gateway": gw, "backends": backends, "routes": routes}

    def gateway(
        self, config: dict[str, Any], name: str = "gateway", args: tuple[str, ...] = ()
    ) -> Gateway:
        path = self.tmp / f"{name}.yaml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        port = int(config["gateway"]["listen"].rsplit(":", 1)[1])
        proc = ManagedProcess(name, log_file=self.tmp / f"{name}.log")
        proc.start(
            [PY, "-m", "failwell", "serve", "--config", str(path), *args],
            ready_url=f"http://127.0.0.1:{port}/health/live",
            timeout=60,
        )
        self.procs.append(proc)
        return Gateway(proc, port, path)

    def gateway_process(
        self, config: dict[str, Any], name: str, ready_url: str, pki: dict[str, Path]
    ) -> ManagedProcess:
        """A gateway whose readiness is checked over HTTPS with the test's client certificate."""
        path = self.tmp / f"{name}.yaml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        proc = ManagedProcess(name, log_file=self.tmp / f"{name}.log")
        proc.spawn([PY, "-m", "failwell", "serve", "--config", str(path)])
        self.procs.append(proc)
        context = ssl.create_default_context(cafile=str(pki["ca"]))
        context.load_cert_chain(str(pki["client"]), str(pki["client_key"]))

        def ready() -> bool:
            try:
                with urllib.request.urlopen(ready_url, context=context, timeout=1) as resp:
                    return int(resp.status) == 200
            except (OSError, ValueError):
                return False

        if not wait_until(ready, timeout=60, interval=0.2):
            raise RuntimeError(f"{name} did not answer on {ready_url}: {proc.output(20)}")
        return proc

    def redis(self, *args: str, port: int | None = None) -> RedisServer:
        """A real redis-server on a free loopback port (or ``port``, to start one again where a
        killed one was), stopped with the stack."""
        port = port or free_port()
        proc = ManagedProcess(f"redis-{port}", log_file=self.tmp / f"redis-{port}.log")
        proc.spawn(
            [
                "redis-server",
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.tmp),
                *args,
            ]
        )
        self.procs.append(proc)
        if not wait_until(lambda: redis_answers(port), timeout=20):
            raise RuntimeError(f"redis-server did not answer on port {port}: {proc.output(20)}")
        return RedisServer(proc, port)

    def close(self) -> None:
        for proc in reversed(self.procs):
            proc.stop(grace=2)


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    s = Stack(tmp_path)
    try:
        yield s
    finally:
        s.close()


@pytest.fixture(scope="session")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo models, trained once per test session from generated data."""
    out = tmp_path_factory.mktemp("models")
    train(out, seed=0)
    return out


@contextmanager
def background_load(
    url: str, body: Callable[[int], Any], concurrency: int = 6
) -> Iterator[LoadResult]:
    """Clients posting ``body(i)`` to ``url`` until the block ends (at most 120 s); yields the
    records as they arrive."""
    result = LoadResult()
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()

    async def clients() -> None:
        await run_load(url, body, concurrency=concurrency, duration=120, stop=stop, sink=result)
        await asyncio.sleep(0.25)  # let the closed connections' transports finish closing

    def run() -> None:
        loop.run_until_complete(clients())
        loop.run_until_complete(loop.shutdown_asyncgens())

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield result
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(timeout=15)
        loop.close()
        gc.collect()  # a leaked socket warns here, in this test, not in a later one
