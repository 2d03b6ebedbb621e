"""Large request bodies, read by the gateway straight into one buffer (``api/bodyreader.py``),
over raw sockets so every way a client can deliver them is tried: in small pieces, followed on
the same connection by more requests (pipelined), chunked, cut off, too slow, too large. The
route's in-process model sums each row, so a wrong byte anywhere shows in the answer."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import tritonclient.http as triton

from tests.integration.conftest import Gateway, Stack

ROWS = 64


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    stack = Stack(tmp_path_factory.mktemp("bodies"))
    config = stack.config(
        backends={"sums": {"protocol": "python", "target": "failwell.testing.models:RowSums"}},
        routes={
            "rows": {
                "tensors": {"inputs": {"x": {"datatype": "FP32", "shape": [-1, -1]}}},
                "max_body": "4MiB",
                "deadline": "5s",
                "tiers": [{"name": "primary", "backend": "sums"}],
            },
            "small": {
                "tensors": {"inputs": {"x": {"datatype": "FP32", "shape": [-1, -1]}}},
                "max_body": "100KiB",
                "tiers": [{"name": "primary", "backend": "sums"}],
            },
        },
    )
    config["security"] = {"limits": {"body_timeout": "1s"}}
    try:
        yield stack.gateway(config)
    finally:
        stack.close()


def request(route: str, x: np.ndarray[Any, Any], binary: bool, chunked: bool = False) -> bytes:
    tensor = triton.InferInput("x", list(x.shape), "FP32")
    tensor.set_data_from_numpy(x, binary_data=binary)
    asked = triton.InferRequestedOutput("score", binary_data=False)  # read back as JSON
    body: bytes
    body, length = triton.InferenceServerClient.generate_request_body([tensor], [asked])
    head = (
        f"POST /v2/models/{route}/infer HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
    )
    if length is not None:
        head += f"inference-header-content-length: {length}\r\n"
    if not chunked:
        return f"{head}content-length: {len(body)}\r\n\r\n".encode() + body
    pieces = [body[i : i + 50_000] for i in range(0, len(body), 50_000)]
    framed = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces) + b"0\r\n\r\n"
    return f"{head}transfer-encoding: chunked\r\n\r\n".encode() + framed


def batch(columns: int, seed: int = 0) -> np.ndarray[Any, Any]:
    return np.random.default_rng(seed).normal(size=(ROWS, columns)).astype(np.float32)


class Answers:
    """HTTP responses (Content-Length framed) read one after the other from a socket."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock, self.data = sock, b""

    def _fill(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed after {self.data[:200]!r}")
        self.data += chunk

    def next(self) -> tuple[int, bytes]:
        while b"\r\n\r\n" not in self.data:
            self._fill()
        head, _, rest = self.data.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        length = next(int(v) for k, _, v in (ln.partition(b":") for ln in lines[1:]) if k.lower() == b"content-length")  # fmt: skip
        self.data = rest
        while len(self.data) < length:
            self._fill()
        body, self.data = self.data[:length], self.data[length:]
        return int(lines[0].split()[1]), body


def read_answer(sock: socket.socket) -> tuple[int, bytes]:
    return Answers(sock).next()


def sums(body: bytes) -> np.ndarray[Any, Any]:
    doc = json.loads(body)
    score = next(o for o in doc["outputs"] if o["name"] == "score")
    return np.asarray(score["data"], dtype=np.float32).reshape(score["shape"])[:, 0]


def connect(gw: Gateway) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", gw.port), timeout=10)
    sock.settimeout(10)
    return sock


def assert_sums(body: bytes, x: np.ndarray[Any, Any]) -> None:
    assert np.allclose(sums(body), x.sum(axis=1), rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_a_large_body_in_small_pieces_arrives_whole(gateway: Gateway, binary: bool) -> None:
    x = batch(2048)  # 512 KiB in binary, ~1.3 MB as JSON
    raw = request("rows", x, binary)
    with connect(gateway) as sock:
        for at in range(0, len(raw), 8192):
            sock.sendall(raw[at : at + 8192])
            if at % (64 * 8192) == 0:
                time.sleep(0.01)  # let the gateway catch up: many reads, not one
        status, body = read_answer(sock)
    assert status == 200, body[:300]
    assert_sums(body, x)


def test_requests_right_behind_a_large_body_on_one_connection(gateway: Gateway) -> None:
    """Two large bodies and a small one written at once (pipelined), then one more: each
    answered, in order, from its own bytes."""
    xs = [batch(300, 1), batch(1500, 2), batch(4, 3), batch(1024, 4)]  # 75 KiB: one read
    with connect(gateway) as sock:
        reader = Answers(sock)
        sock.sendall(b"".join(request("rows", x, binary=True) for x in xs[:3]))
        answers = [reader.next() for _ in range(3)]
        sock.sendall(request("rows", xs[3], binary=False))
        answers.append(reader.next())
    for (status, body), x in zip(answers, xs, strict=True):
        assert status == 200, body[:300]
        assert_sums(body, x)


def test_a_chunked_large_body_is_read_as_it_comes(gateway: Gateway) -> None:
    x = batch(2048, 5)
    with connect(gateway) as sock:
        sock.sendall(request("rows", x, binary=True, chunked=True))
        status, body = read_answer(sock)
    assert status == 200, body[:300]
    assert_sums(body, x)


def test_a_client_gone_mid_body_or_too_slow_leaves_the_gateway_serving(gateway: Gateway) -> None:
    raw = request("rows", batch(2048, 6), binary=True)
    with connect(gateway) as sock:
        sock.sendall(raw[: len(raw) // 2])  # and goes away
    started = time.monotonic()
    with connect(gateway) as sock:
        sock.sendall(raw[: len(raw) // 2])  # and waits
        status, body = read_answer(sock)
    assert status == 408, body[:300]
    assert time.monotonic() - started < 8
    x = batch(2048, 7)
    with connect(gateway) as sock:
        sock.sendall(request("rows", x, binary=True))
        status, body = read_answer(sock)
    assert status == 200, body[:300]
    assert_sums(body, x)


def test_a_body_over_the_routes_limit_is_413_before_it_is_read(gateway: Gateway) -> None:
    raw = request("small", batch(2048, 8), binary=True)  # 512 KiB, the route takes 100 KiB
    head = raw[: raw.index(b"\r\n\r\n") + 4]
    with connect(gateway) as sock:
        sock.sendall(head + raw[len(head) : len(head) + 1000])
        status, body = read_answer(sock)
    assert status == 413, body[:300]
    assert b"100" in body or b"102400" in body


def test_response_framing_on_one_connection(gateway: Gateway) -> None:
    """Whole responses go out head and body in one write (``api/cycle.py``); what is not a
    plain whole response keeps its framing: HEAD has no body, a large answer is written after
    its head, ``Connection: close`` and HTTP/1.0 close after the answer."""
    with connect(gateway) as sock:
        reader = Answers(sock)
        sock.sendall(b"HEAD /health/live HTTP/1.1\r\nhost: x\r\n\r\n")
        head = b""
        while b"\r\n\r\n" not in head:
            head += sock.recv(4096)
        first, _, rest = head.partition(b"\r\n\r\n")
        assert first.startswith(b"HTTP/1.1 200") and b"content-length" in first.lower()
        assert rest == b""  # no body after the head of a HEAD
        x = np.random.default_rng(5).normal(size=(20_000, 1)).astype(np.float32)
        sock.sendall(request("rows", x, binary=True))
        status, body = reader.next()
        assert status == 200 and len(body) > 64 * 1024, body[:300]  # over cycle.JOIN_BELOW
        assert_sums(body, x)
        sock.sendall(b"GET /health/live HTTP/1.1\r\nhost: x\r\n\r\n")
        assert reader.next() == (200, b'{"status":"alive"}')
    for ask in (b"GET /health/live HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
                b"GET /health/live HTTP/1.0\r\n\r\n"):  # fmt: skip
        with connect(gateway) as sock:
            sock.sendall(ask)
            data = b""
            while chunk := sock.recv(4096):  # to the server's close
                data += chunk
            head, _, body = data.partition(b"\r\n\r\n")
            assert b"connection: close" in head.lower() and body == b'{"status":"alive"}'
