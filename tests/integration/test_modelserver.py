"""The demo model server as a real process on 127.0.0.1, broken for real through /_control.

Servers listen on ``--port 0`` and report their port in the ``READY`` line, so parallel runs
cannot collide. Every wait is bounded; every process is stopped by its fixture.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import re
import signal
import socket
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import openai
import pytest

from failwell.demo.models import Ranker
from failwell.demo.procs import ManagedProcess, ProcessStartError
from failwell.demo.stack import modelserver_cmd
from failwell.demo.train import train

START = 60.0
SHORT = 0.5
INFER = "/v2/models/ranker/infer"


def tensors(user_id: str = "u0042", country: str = "DE", category: str = "books") -> dict[str, Any]:
    return {
        "id": "req-1",
        "inputs": [
            {"name": n, "datatype": "BYTES", "shape": [1], "data": [v]}
            for n, v in (("user_id", user_id), ("country", country), ("category", category))
        ],
    }


@dataclass
class Server:
    proc: ManagedProcess
    port: int

    def call(
        self, method: str, path: str, body: Any = None, timeout: float = 5.0
    ) -> tuple[int, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            data = body if body is None or isinstance(body, bytes) else json.dumps(body).encode()
            conn.request(method, path, body=data, headers={"content-type": "application/json"})
            resp = conn.getresponse()
            return resp.status, resp.read()
        finally:
            conn.close()

    def json(
        self, method: str, path: str, body: Any = None, timeout: float = 5.0
    ) -> tuple[int, Any]:
        status, payload = self.call(method, path, body, timeout)
        return status, json.loads(payload)

    def control(self, **fault: Any) -> dict[str, Any]:
        status, state = self.json("POST", "/_control", fault)
        assert status == 200, state
        return dict(state)


def start_server(*args: str, name: str = "modelserver") -> Server:
    proc = ManagedProcess(name).start(modelserver_cmd(0, *args), ready_line="READY", timeout=START)
    assert proc.ready_output is not None
    return Server(proc, int(proc.ready_output.split()[1]))


def our_children() -> list[str]:
    """Command lines of live child processes of this test process that this module starts."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (FileNotFoundError, ProcessLookupError):
            continue
        state, ppid = stat[0], int(stat[1])
        ours = "failwell.demo.modelserver" in cmdline or "time.sleep(60)" in cmdline
        if ppid == os.getpid() and state != "Z" and ours:
            found.append(cmdline)
    return found


@pytest.fixture(scope="module", autouse=True)
def no_leftovers() -> Iterator[None]:
    """Set up first, torn down last: after the module, none of its processes may live on."""
    yield
    assert our_children() == []


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train(tmp_path_factory.mktemp("models"), seed=0).model_dir


@pytest.fixture(scope="module")
def ranker(model_dir: Path) -> Iterator[Server]:
    server = start_server("--model-dir", str(model_dir), name="ranker")
    yield server
    assert server.proc.stop() == 0


@pytest.fixture(scope="module")
def chat() -> Iterator[Server]:
    server = start_server("--chat-model", "demo-large", "--label", "east-1", name="chat")
    yield server
    assert server.proc.stop() == 0


@pytest.fixture(scope="module")
def echo() -> Iterator[Server]:
    server = start_server("--name", "echo", name="echo")
    yield server
    assert server.proc.stop() == 0


@pytest.fixture
def broken_ranker(ranker: Server) -> Iterator[Server]:
    """The ranker server, healed after the test whatever it broke."""
    yield ranker
    ranker.control(mode="ok")


@pytest.fixture
def broken_chat(chat: Server) -> Iterator[Server]:
    yield chat
    chat.control(mode="ok")


def openai_client(server: Server, timeout: float = 5.0) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=f"http://127.0.0.1:{server.port}/v1", api_key="x", timeout=timeout, max_retries=0
    )


# -- Open Inference Protocol v2 -------------------------------------------------------------


def test_health_and_metadata(ranker: Server, model_dir: Path) -> None:
    assert ranker.json("GET", "/v2/health/live") == (200, {"live": True})
    assert ranker.json("GET", "/v2/health/ready") == (200, {"ready": True})
    assert ranker.call("GET", "/v2/models/ranker/ready")[0] == 200
    status, meta = ranker.json("GET", "/v2/models/ranker")
    assert status == 200 and meta["versions"] == [Ranker(model_dir).version]
    assert [i["name"] for i in meta["inputs"]] == ["user_id", "country", "category"]
    assert ranker.json("GET", "/v2/models/nope")[0] == 404
    assert ranker.call("POST", "/v2/models/nope/infer", tensors())[0] == 404


def test_v2_infer_ranks_like_the_in_process_model(ranker: Server, model_dir: Path) -> None:
    local = Ranker(model_dir)
    for user, country, category in [
        ("u0042", "DE", "books"),
        ("u0007", "JP", "games"),
        ("stranger", "XX", "garden"),
    ]:
        status, answer = ranker.json("POST", INFER, tensors(user, country, category))
        assert status == 200
        assert answer["model_name"] == "ranker" and answer["model_version"] == local.version
        assert answer["id"] == "req-1"
        (items,) = answer["outputs"]
        assert items["name"] == "items" and items["datatype"] == "INT64"
        assert items["shape"] == [10]
        assert (
            items["data"]
            == local.predict({"user_id": user, "country": country, "category": category})["items"]
        )


def test_v2_infer_with_the_triton_client(ranker: Server) -> None:
    import tritonclient.http as triton

    client = triton.InferenceServerClient(url=f"127.0.0.1:{ranker.port}")
    try:
        assert client.is_server_live() and client.is_model_ready("ranker")
        inputs = []
        for name, value in (("user_id", "u0042"), ("country", "DE"), ("category", "books")):
            tensor = triton.InferInput(name, [1], "BYTES")
            tensor.set_data_from_numpy(np.array([value.encode()], dtype=object), binary_data=False)
            inputs.append(tensor)
        result = client.infer(
            "ranker", inputs, outputs=[triton.InferRequestedOutput("items", binary_data=False)]
        )
        items = result.as_numpy("items")
        assert items is not None and items.shape == (10,)
    finally:
        client.close()


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"{}",
        {"inputs": [{"name": "user_id", "datatype": "BYTES", "shape": [1], "data": ["u1"]}]},
        tensors()
        | {
            "inputs": [
                *tensors()["inputs"][:2],
                {"name": "category", "datatype": "INT64", "shape": [1], "data": [3]},
            ]
        },
        tensors()
        | {
            "inputs": [
                *tensors()["inputs"][:2],
                {"name": "category", "datatype": "BYTES", "shape": [2], "data": ["books", "music"]},
            ]
        },
    ],
)
def test_v2_bad_input_is_400(ranker: Server, body: Any) -> None:
    status, answer = ranker.json("POST", INFER, body)
    assert status == 400 and isinstance(answer["error"], str)


def test_echo_model_returns_its_inputs(echo: Server) -> None:
    body = {
        "inputs": [
            {"name": "x", "datatype": "FP32", "shape": [2, 2], "data": [1.0, 2.0, 3.0, 4.5]},
            {"name": "s", "datatype": "BYTES", "shape": [1], "data": ["hi"]},
        ]
    }
    status, answer = echo.json("POST", "/v2/models/echo/infer", body)
    assert status == 200 and answer["model_name"] == "echo"
    assert answer["outputs"] == body["inputs"]


# -- faults ---------------------------------------------------------------------------------


def test_control_reports_mode_and_counts_inference_requests(broken_ranker: Server) -> None:
    before = broken_ranker.json("GET", "/_control")[1]
    broken_ranker.call("POST", INFER, tensors())
    broken_ranker.call("GET", "/v2/health/live")
    state = broken_ranker.control(mode="slow", delay_ms=5)
    assert state["mode"] == "slow" and state["delay_ms"] == 5
    assert state["requests"] == before["requests"] + 1
    assert broken_ranker.json("POST", "/_control", {"mode": "explode"})[0] == 400


def test_error_mode_answers_the_status_but_health_stays_up(broken_ranker: Server) -> None:
    broken_ranker.control(mode="error")
    status, answer = broken_ranker.json("POST", INFER, tensors())
    assert status == 500 and answer == {"error": "injected fault"}
    broken_ranker.control(mode="error", status=503)
    assert broken_ranker.call("POST", INFER, tensors())[0] == 503
    assert broken_ranker.call("GET", "/v2/health/live")[0] == 200
    assert broken_ranker.call("GET", "/v2/health/ready")[0] == 200


def test_not_ready(broken_ranker: Server) -> None:
    broken_ranker.control(ready=False)
    assert broken_ranker.json("GET", "/v2/health/ready") == (503, {"ready": False})
    assert broken_ranker.call("GET", "/v2/models/ranker/ready")[0] == 503
    assert broken_ranker.call("GET", "/v2/health/live")[0] == 200


def test_malformed_mode_answers_200_with_an_undecodable_body(broken_ranker: Server) -> None:
    broken_ranker.control(mode="malformed")
    status, payload = broken_ranker.call("POST", INFER, tensors())
    assert status == 200
    with pytest.raises(json.JSONDecodeError):
        json.loads(payload)


def test_close_mode_drops_the_connection(broken_ranker: Server) -> None:
    broken_ranker.control(mode="close")

    async def post() -> None:
        timeout = aiohttp.ClientTimeout(total=5)
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.post(f"http://127.0.0.1:{broken_ranker.port}{INFER}", json=tensors()) as resp,
        ):
            await resp.read()

    with pytest.raises(aiohttp.ClientConnectionError):
        asyncio.run(post())
    with pytest.raises((http.client.HTTPException, ConnectionError)):
        broken_ranker.call("POST", INFER, tensors())
    assert broken_ranker.call("GET", "/v2/health/live")[0] == 200


def test_hang_mode_times_out_while_health_answers(broken_ranker: Server) -> None:
    broken_ranker.control(mode="hang")
    outcome: list[BaseException] = []

    def hung_call() -> None:
        try:
            broken_ranker.call("POST", INFER, tensors(), timeout=2.0)
        except BaseException as exc:
            outcome.append(exc)

    caller = threading.Thread(target=hung_call)
    caller.start()
    time.sleep(0.2)  # the hung request is in flight
    assert broken_ranker.call("GET", "/v2/health/live", timeout=1.0)[0] == 200
    assert broken_ranker.json("GET", "/_control", timeout=1.0)[1]["mode"] == "hang"
    caller.join(5.0)
    assert not caller.is_alive()
    assert len(outcome) == 1 and isinstance(outcome[0], TimeoutError)
    with pytest.raises(TimeoutError):
        broken_ranker.call("POST", INFER, tensors(), timeout=SHORT)


def test_slow_mode_answers_after_the_delay(broken_ranker: Server) -> None:
    broken_ranker.control(mode="slow", delay_ms=300)
    started = time.monotonic()
    status, answer = broken_ranker.json("POST", INFER, tensors())
    assert time.monotonic() - started >= 0.3
    assert status == 200 and len(answer["outputs"][0]["data"]) == 10


# -- OpenAI-compatible chat -----------------------------------------------------------------


def test_chat_completion_with_the_openai_client(chat: Server) -> None:
    with openai_client(chat) as client:
        reply = client.chat.completions.create(
            model="demo-large", messages=[{"role": "user", "content": "Any good books?"}]
        )
        again = client.chat.completions.create(
            model="demo-large", messages=[{"role": "user", "content": "Any good books?"}]
        )
        models = [m.id for m in client.models.list()]
    assert reply.object == "chat.completion" and reply.model == "demo-large"
    content = reply.choices[0].message.content
    assert content is not None and content.startswith("[east-1] ")
    assert reply.choices[0].finish_reason == "stop"
    assert reply.usage is not None and reply.usage.completion_tokens > 0
    assert again.choices[0].message.content == content
    assert models == ["demo-large"]


def test_chat_errors_reach_the_openai_client(broken_chat: Server) -> None:
    with openai_client(broken_chat, timeout=SHORT) as client:
        with pytest.raises(openai.NotFoundError):
            client.chat.completions.create(
                model="gpt-9", messages=[{"role": "user", "content": "x"}]
            )
        with pytest.raises(openai.BadRequestError):
            client.chat.completions.create(model="demo-large", messages=[])
        broken_chat.control(mode="error")
        with pytest.raises(openai.InternalServerError):
            client.chat.completions.create(
                model="demo-large", messages=[{"role": "user", "content": "x"}]
            )
        broken_chat.control(mode="hang")
        with pytest.raises(openai.APITimeoutError):
            client.chat.completions.create(
                model="demo-large", messages=[{"role": "user", "content": "x"}]
            )


def test_no_chat_without_a_chat_model(echo: Server) -> None:
    status, answer = echo.json(
        "POST", "/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}]}
    )
    assert status == 404 and answer["error"]["code"] == "model_not_found"


# -- process life cycle ---------------------------------------------------------------------


def test_sigterm_stops_the_server_cleanly_with_a_hung_request() -> None:
    server = start_server()
    try:
        server.control(mode="hang")
        outcome: list[BaseException] = []

        def hung_call() -> None:
            try:
                server.call("POST", "/v2/models/ranker/infer", {"inputs": []}, 10.0)
            except (TimeoutError, ConnectionError, http.client.HTTPException) as exc:
                outcome.append(exc)

        hung = threading.Thread(target=hung_call)
        hung.start()
        time.sleep(0.2)
        assert server.proc.stop(grace=5.0) == 0
        hung.join(5.0)
        assert not hung.is_alive() and len(outcome) == 1  # dropped, not answered
    finally:
        server.proc.stop()


def test_sigstop_freezes_the_server_and_sigcont_thaws_it() -> None:
    server = start_server()
    try:
        server.proc.kill(signal.SIGSTOP)
        with pytest.raises(TimeoutError):
            server.call("GET", "/v2/health/live", timeout=SHORT)
        server.proc.kill(signal.SIGCONT)
        assert server.call("GET", "/v2/health/live")[0] == 200
    finally:
        server.proc.stop()


def test_a_server_that_cannot_load_its_model_fails_to_start(tmp_path: Path) -> None:
    proc = ManagedProcess("broken")
    with pytest.raises(ProcessStartError, match="cannot load the model"):
        proc.start(
            modelserver_cmd(0, "--model-dir", str(tmp_path)), ready_line="READY", timeout=START
        )
    assert not proc.alive() and proc.returncode == 1


def test_a_busy_port_fails_to_start(echo: Server) -> None:
    proc = ManagedProcess("second")
    with pytest.raises(ProcessStartError, match="cannot listen"):
        proc.start(modelserver_cmd(echo.port), ready_line="READY", timeout=START)


def test_ready_url_waits_for_an_http_answer() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with ManagedProcess("by-url") as proc:
        proc.start(
            modelserver_cmd(port),
            ready_url=f"http://127.0.0.1:{port}/v2/health/live",
            timeout=START,
        )
        assert proc.alive()


# -- ManagedProcess on plain Python children ------------------------------------------------


def python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def gone(pid: int) -> bool:
    """True once ``pid`` is dead (a zombie nobody reaped counts as dead)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def wait_gone(pid: int, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while not gone(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def test_a_child_that_never_gets_ready_is_killed_at_the_timeout() -> None:
    proc = ManagedProcess("sleeper")
    started = time.monotonic()
    with pytest.raises(ProcessStartError, match=re.escape("did not print 'READY' within 0.5s")):
        proc.start(
            python("import time; print('warming up'); time.sleep(60)"),
            ready_line="READY",
            timeout=0.5,
        )
    assert time.monotonic() - started < 5
    assert not proc.alive() and "warming up" in proc.output()


def test_a_child_that_exits_early_reports_its_output() -> None:
    proc = ManagedProcess("quitter")
    with pytest.raises(ProcessStartError, match=r"exited with code 3(.|\n)*no such luck"):
        proc.start(
            python("import sys; print('no such luck'); sys.exit(3)"),
            ready_line="READY",
            timeout=START,
        )


def test_stop_kills_the_whole_process_group() -> None:
    code = (
        "import subprocess, sys, time\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        "print('READY', child.pid, flush=True)\n"
        "time.sleep(60)\n"
    )
    proc = ManagedProcess("parent").start(python(code), ready_line="READY", timeout=START)
    assert proc.ready_output is not None
    grandchild = int(proc.ready_output.split()[1])
    assert not gone(grandchild)
    proc.stop(grace=2.0)
    assert not proc.alive()
    assert wait_gone(grandchild)


def test_stop_escalates_to_sigkill_when_sigterm_is_ignored() -> None:
    code = (
        "import signal, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "print('READY', flush=True)\n"
        "time.sleep(60)\n"
    )
    proc = ManagedProcess("stubborn").start(python(code), ready_line="READY", timeout=START)
    assert proc.stop(grace=0.3) == -signal.SIGKILL
    assert proc.stop() == -signal.SIGKILL  # stopping twice is fine


def test_a_chatty_child_never_blocks_on_its_pipe(tmp_path: Path) -> None:
    log = tmp_path / "chatty.log"
    code = "import sys\nfor i in range(50000): print('line', i)\nprint('READY', flush=True)\n"
    with ManagedProcess("chatty", log_file=log) as proc:
        proc.start(python(code), ready_line="READY", timeout=START)
        assert proc.wait(10) == 0
    assert proc.output(1) == "READY"
    assert log.read_text().count("\n") == 50001
