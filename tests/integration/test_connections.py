"""A connection's life under the gateway's protocol (``api/protocol.py``), over raw sockets:
the keep-alive timeout closes a connection idle since its last answer and never one still in
use, pipelined requests are answered in order, and ``Expect: 100-continue`` is honoured."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import numpy as np
import pytest

from tests.integration.conftest import Gateway, Stack
from tests.integration.test_large_bodies import Answers, assert_sums, connect, request

KEEP_ALIVE = 5.0  # uvicorn's timeout_keep_alive, which failwell serve keeps
LIVE = b"GET /health/live HTTP/1.1\r\nhost: x\r\n\r\n"


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    stack = Stack(tmp_path_factory.mktemp("connections"))
    config = stack.config(
        backends={"sums": {"protocol": "python", "target": "failwell.testing.models:RowSums"}},
        routes={
            "rows": {
                "tensors": {"inputs": {"x": {"datatype": "FP32", "shape": [-1, -1]}}},
                "tiers": [{"name": "primary", "backend": "sums"}],
            }
        },
    )
    try:
        yield stack.gateway(config)
    finally:
        stack.close()


def closed_after(sock: socket.socket, limit: float) -> float:
    """Seconds until the server closes ``sock`` (at most ``limit``); no bytes may come first."""
    sock.settimeout(limit)
    started = time.monotonic()
    assert sock.recv(1) == b""
    return time.monotonic() - started


def test_a_busy_connection_outlives_the_keep_alive_timeout_and_an_idle_one_does_not(
    gateway: Gateway,
) -> None:
    """Requests a second apart for longer than the timeout all get answers on one connection
    (a timer armed after the first answer must not close it); once it falls idle, it is
    closed about the timeout after its last answer."""
    with connect(gateway) as sock:
        reader = Answers(sock)
        for _ in range(int(KEEP_ALIVE) + 2):
            sock.sendall(LIVE)
            assert reader.next() == (200, b'{"status":"alive"}')
            time.sleep(1.0)
        idle = closed_after(sock, KEEP_ALIVE + 10) + 1.0  # + the last sleep
    assert KEEP_ALIVE - 0.5 <= idle <= KEEP_ALIVE + 3, idle


def test_pipelined_small_requests_are_answered_in_order(gateway: Gateway) -> None:
    xs = [np.full((2, 3), float(i), np.float32) for i in range(4)]
    with connect(gateway) as sock:
        reader = Answers(sock)
        sock.sendall(LIVE + b"".join(request("rows", x, binary=i % 2 == 0) for i, x in enumerate(xs)) + LIVE)  # fmt: skip
        assert reader.next() == (200, b'{"status":"alive"}')
        for x in xs:
            status, body = reader.next()
            assert status == 200, body[:300]
            assert_sums(body, x)
        assert reader.next() == (200, b'{"status":"alive"}')


def test_expect_100_continue_gets_its_interim_answer_before_the_body(gateway: Gateway) -> None:
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    head, _, body = request("rows", x, binary=False).partition(b"\r\n\r\n")
    with connect(gateway) as sock:
        sock.sendall(head + b"\r\nexpect: 100-continue\r\n\r\n")
        interim = b""
        while b"\r\n\r\n" not in interim:
            chunk = sock.recv(4096)
            assert chunk, interim
            interim += chunk
        assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(body)
        status, answer = Answers(sock).next()
    assert status == 200, answer[:300]
    assert_sums(answer, x)
