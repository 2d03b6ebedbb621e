"""Fuzzing with Hypothesis: the config loader and each front end's decoder (predict, v2, chat)
only ever raise their own errors, and the whole edge — limits, keys, decoders — answers every
generated request without a 5xx. ``FUZZED`` counts the inputs run (printed with ``-s``)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from failwell.api.app import App
from failwell.config import parse_config
from failwell.errors import ConfigError, InvalidInput
from failwell.gateway import Gateway
from failwell.protocols.chat import decode_request
from failwell.protocols.v2codec import decode_infer_request
from failwell.testing.asgi import asgi_call

FUZZED: Counter[str] = Counter()
SCHEMA = {"user_id": "str", "n": "int", "w": "list[float]", "ok": "bool"}
KEY = "fuzz-key-0123456789abcdef"
CONFIG: dict[str, Any] = {
    "gateway": {"cache": {"path": ":memory:"}, "max_body": "64KiB"},
    "routes": {
        "recommend": {
            "input": SCHEMA,
            "admission": {"concurrency": {"limit": 4}},
            "tiers": [{"name": "static", "value": {"items": [1]}}],
        },
        "chat": {"kind": "chat", "tiers": [{"name": "static", "value": {"content": "hi"}}]},
    },
    "security": {"keys": [{"name": "fuzz", "secret": KEY, "scopes": ["predict:*", "admin"]}]},
}
FAST = settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


def _mutations() -> st.SearchStrategy[Any]:
    """Valid-looking predict bodies with a field or two wrong, and arbitrary JSON."""
    good = st.fixed_dictionaries(
        {
            "user_id": st.text(max_size=10),
            "n": st.integers(),
            "w": st.lists(st.floats()),
            "ok": st.booleans(),
        }
    )
    broken = st.dictionaries(st.sampled_from([*SCHEMA, "x"]), json_values, max_size=5)
    return st.one_of(good, broken).map(lambda inputs: {"inputs": inputs}) | json_values


@pytest.fixture(scope="module")
def route() -> Any:
    return Gateway(parse_config(CONFIG)).routes["recommend"]


@FAST
@given(body=st.binary(max_size=200) | _mutations().map(lambda v: json.dumps(v).encode()))
def test_predict_decoder(route: Any, body: bytes) -> None:
    FUZZED["predict decoder"] += 1
    with contextlib.suppress(InvalidInput):
        route.decode_predict(body)


chat_bodies = st.fixed_dictionaries(
    {
        "model": st.text(max_size=5) | json_values,
        "messages": st.lists(
            st.fixed_dictionaries(
                {"role": st.sampled_from(["user", "bot"]), "content": json_values}
            ),
            max_size=3,
        )
        | json_values,
    },
    optional={"stream": json_values, "temperature": json_values, "stop": json_values},
)


@FAST
@given(body=st.binary(max_size=200) | chat_bodies.map(lambda v: json.dumps(v).encode()))
def test_chat_decoder(body: bytes) -> None:
    FUZZED["chat decoder"] += 1
    with contextlib.suppress(InvalidInput):
        decode_request(body)


tensors = st.fixed_dictionaries(
    {
        "name": st.sampled_from([*SCHEMA, "x"]) | json_values,
        "datatype": st.sampled_from(["BYTES", "INT64", "FP64", "BOOL", "FP16", "XX"]) | json_values,
        "shape": st.lists(st.integers(-2, 5), max_size=3) | json_values,
        "data": json_values,
    },
    optional={"parameters": st.fixed_dictionaries({"binary_data_size": st.integers(-1, 64)})},
)
v2_bodies = st.fixed_dictionaries({"inputs": st.lists(tensors, max_size=4) | json_values})


@FAST
@given(
    body=st.binary(max_size=200) | v2_bodies.map(lambda v: json.dumps(v).encode()),
    tail=st.binary(max_size=40),
    header_length=st.none() | st.integers(-5, 400),
)
def test_v2_decoder(body: bytes, tail: bytes, header_length: int | None) -> None:
    FUZZED["v2 decoder"] += 1
    with contextlib.suppress(InvalidInput):
        decode_infer_request(body + tail, header_length, SCHEMA)


def _config_mutations() -> st.SearchStrategy[Any]:
    keys = st.sampled_from(["gateway", "backends", "routes", "security", "extra"])
    return st.dictionaries(keys, json_values, max_size=4).map(lambda over: {**CONFIG, **over})


@FAST
@given(data=_config_mutations() | json_values)
def test_config_loader(data: Any) -> None:
    FUZZED["config loader"] += 1
    try:
        parse_config(data, env={}, resolve=False)
    except ConfigError as exc:
        assert exc.issues


@pytest.fixture(scope="module")
def edge() -> Iterator[tuple[asyncio.AbstractEventLoop, App]]:
    loop = asyncio.new_event_loop()
    app = App(Gateway(parse_config(CONFIG)))
    loop.run_until_complete(app.gateway.start())
    try:
        yield loop, app
    finally:
        loop.run_until_complete(app.gateway.close())
        loop.close()


PATHS = [
    "/v1/predict/recommend",
    "/v1/predict/nope",
    "/v1/chat/completions",
    "/v2/models/recommend/infer",
    "/v2/models/recommend",
    "/admin/status",
    "/admin/drain",
    "/metrics",
    "/health/ready",
    "/openapi.json",
]
auth_headers = st.sampled_from(
    [
        [],
        [(b"authorization", b"Bearer " + KEY.encode())],
        [(b"x-api-key", KEY.encode())],
        [(b"authorization", b"Bearer wrong")],
        [(b"authorization", b"Basic x")],
    ]
)
any_body = st.one_of(
    st.binary(max_size=300),
    _mutations().map(lambda v: json.dumps(v).encode()),
    chat_bodies.map(lambda v: json.dumps({**v, "model": "chat"}).encode()),
    v2_bodies.map(lambda v: json.dumps(v).encode()),
    st.integers(1, 60).map(lambda d: b'{"inputs":' + b"[" * d + b"]" * d + b"}"),
)


@settings(max_examples=600, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    method=st.sampled_from(["GET", "POST", "PUT"]),
    path=st.sampled_from(PATHS) | st.text(max_size=20).map(lambda p: "/" + p),
    auth=auth_headers,
    extra=st.lists(
        st.tuples(st.binary(min_size=1, max_size=10), st.binary(max_size=30)), max_size=4
    ),
    body=any_body,
)
def test_the_edge_never_answers_5xx(
    edge: tuple[asyncio.AbstractEventLoop, App],
    method: str,
    path: str,
    auth: list[tuple[bytes, bytes]],
    extra: list[tuple[bytes, bytes]],
    body: bytes,
) -> None:
    loop, app = edge
    app.gateway.guard.draining = False
    headers = [(k.lower(), v) for k, v in extra] + auth
    response = loop.run_until_complete(asgi_call(app, method, path, headers, body, chunk=7))
    FUZZED["edge requests"] += 1
    assert response.status < 500, (method, path, response)


def test_report_fuzzed_counts() -> None:
    print(json.dumps({"fuzzed_inputs_without_5xx": dict(FUZZED), "total": sum(FUZZED.values())}))
