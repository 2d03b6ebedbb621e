"""Who gets in and how much they may take, against a real gateway process: missing, invalid and
expired keys, scopes, admin and metrics scopes, a flood from one key next to a quiet one, a
slow-body client, oversized headers and deep JSON, shedding with 503 + Retry-After."""

from __future__ import annotations

import concurrent.futures
import json
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.integration.conftest import Gateway, Stack, metric_value

KEYS = {
    "app": "app-key-0123456789abcdef",
    "other": "other-key-0123456789abcd",
    "ops": "ops-key-0123456789abcdef",
    "old": "old-key-0123456789abcdef",
    "chatter": "chat-key-0123456789abcde",
    "batch": "batch-key-0123456789abcd",
}
PREDICT = json.dumps({"inputs": {"user_id": "u1"}}).encode()
CHAT = json.dumps({"model": "chat", "messages": [{"role": "user", "content": "hi"}]}).encode()


def call(
    url: str,
    body: bytes | None = None,
    key: str | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], Any]:
    h = {"content-type": "application/json", **(headers or {})}
    if key is not None:
        h["authorization"] = f"Bearer {KEYS.get(key, key)}"
    req = urllib.request.Request(url, data=body, headers=h, method="POST" if body else "GET")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            raw = resp.read()
            status, hdrs = resp.status, dict(resp.headers)
    except urllib.error.HTTPError as err:
        raw = err.read()
        status, hdrs = err.code, dict(err.headers)
    try:
        payload = json.loads(raw) if raw else None
    except ValueError:
        payload = raw.decode(errors="replace")
    return status, {k.lower(): v for k, v in hdrs.items()}, payload


def secured_config(stack: Stack) -> dict[str, Any]:
    config = stack.config(
        backends={
            "echo": {
                "protocol": "python",
                "target": "failwell.testing.models:Echo",
                "workers": 8,
            },
            "slow": {
                "protocol": "python",
                "target": "failwell.testing.models:Echo",
                "args": {"delay": 0.5},
                "workers": 8,
            },
        },
        routes={
            "recommend": {
                "input": {"user_id": "str"},
                "tiers": [{"name": "primary", "backend": "echo"}],
            },
            "heavy": {
                "input": {"user_id": "str"},
                "deadline": "5s",
                "admission": {"concurrency": {"limit": 2, "queue": 1, "queue_timeout": "50ms"}},
                "tiers": [{"name": "primary", "backend": "slow"}],
            },
            "chat": {"kind": "chat", "tiers": [{"name": "static", "value": {"content": "hi"}}]},
        },
    )
    every = ["predict:*"]
    flood_rate = {"rate": 2, "burst": 5}
    config["security"] = {
        "keys": [
            {"name": "app", "secret": KEYS["app"], "scopes": every, "rate": flood_rate},
            {"name": "other", "secret": KEYS["other"], "scopes": every, "rate": flood_rate},
            {"name": "ops", "secret": KEYS["ops"], "scopes": ["admin", "metrics"]},
            {"name": "old", "secret": KEYS["old"], "scopes": every, "expires": "2020-01-01"},
            {"name": "chatter", "secret": KEYS["chatter"], "scopes": ["predict:chat"]},
            {"name": "batch", "secret": KEYS["batch"], "scopes": every, "priority": "batch"},
        ],
        "limits": {"body_timeout": "1s", "max_headers": 50, "max_json_depth": 16},
    }
    return config


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    stack = Stack(tmp_path_factory.mktemp("security"))
    try:
        yield stack.gateway(secured_config(stack))
    finally:
        stack.close()


def test_health_stays_open(gateway: Gateway) -> None:
    for path in ("/health/live", "/health/ready", "/v2/health/live"):
        assert call(gateway.url + path)[0] == 200


def test_missing_invalid_and_expired_keys_get_401(gateway: Gateway) -> None:
    url = gateway.predict_url("recommend")
    status, headers, body = call(url, PREDICT)
    assert status == 401 and body["error"]["type"] == "unauthorized"
    assert headers["www-authenticate"].startswith("Bearer")
    assert call(url, PREDICT, key="not-a-real-key-at-all")[0] == 401
    status, _, body = call(url, PREDICT, key="old")
    assert status == 401 and "expired" in body["error"]["message"]
    status, _, _ = call(url, PREDICT, headers={"x-api-key": KEYS["app"]})
    assert status == 200


def test_key_without_the_routes_scope_gets_403(gateway: Gateway) -> None:
    status, _, body = call(gateway.predict_url("recommend"), PREDICT, key="chatter")
    assert status == 403 and "predict:recommend" in body["error"]["message"]
    assert call(gateway.url + "/v2/models/recommend", key="chatter")[0] == 403
    assert call(gateway.url + "/v1/chat/completions", CHAT, key="chatter")[0] == 200
    assert call(gateway.url + "/v1/chat/completions", CHAT, key="ops")[0] == 403


def test_admin_and_metrics_need_their_scopes(gateway: Gateway) -> None:
    assert call(gateway.url + "/admin/status", key="app")[0] == 403
    assert call(gateway.url + "/admin/status")[0] == 401
    status, _, body = call(gateway.url + "/admin/status", key="ops")
    assert status == 200 and "recommend" in body["routes"]
    assert call(gateway.url + "/metrics", key="app")[0] == 403
    status, _, text = call(gateway.url + "/metrics", key="ops")
    assert status == 200 and "failwell_admission_refused" in text
    assert KEYS["ops"] not in gateway.proc.output()


def test_a_flood_from_one_key_does_not_starve_another(gateway: Gateway) -> None:
    url = gateway.predict_url("recommend")
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        flood = list(pool.map(lambda _: call(url, PREDICT, key="app"), range(40)))
    codes = [s for s, _, _ in flood]
    assert codes.count(429) >= 30, codes  # burst 5 + 2/s over the flood's short life
    limited = next(h for s, h, _ in flood if s == 429)
    assert int(limited["retry-after"]) >= 1
    quiet = [call(url, PREDICT, key="other")[0] for _ in range(4)]
    assert quiet == [200] * 4


def test_overload_is_shed_with_503_and_retry_after(gateway: Gateway) -> None:
    url = gateway.predict_url("heavy")
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: call(url, PREDICT, key="batch"), range(8)))
    codes = sorted(s for s, _, _ in results)
    assert codes.count(200) >= 2 and codes.count(503) >= 4, codes
    shed = next(h for s, h, b in results if s == 503)
    assert int(shed["retry-after"]) >= 1
    _, _, text = call(gateway.url + "/metrics", key="ops")
    assert (metric_value(text, "failwell_admission_refused_total", route="heavy") or 0) >= 4


def _raw(gateway: Gateway, data: bytes, wait: float = 0.0, rest: bytes = b"") -> bytes:
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=10) as sock:
        sock.sendall(data)
        if wait:
            time.sleep(wait)
        if rest:
            sock.sendall(rest)
        chunks = []
        while True:
            try:
                chunk = sock.recv(65536)
            except (ConnectionResetError, TimeoutError):
                break
            if not chunk:
                break
            chunks.append(chunk)
            if b"\r\n\r\n" in b"".join(chunks):
                break
        return b"".join(chunks)


def test_a_slow_body_client_is_cut_off(gateway: Gateway) -> None:
    head = (
        b"POST /v1/predict/recommend HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
        b"authorization: Bearer " + KEYS["other"].encode() + b"\r\ncontent-length: 100\r\n\r\n"
    )
    started = time.monotonic()
    answer = _raw(gateway, head + b'{"inputs"')  # ... and never the rest
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert time.monotonic() - started < 8


def test_too_many_headers_and_deep_json(gateway: Gateway) -> None:
    many = {f"x-h{i}": "v" for i in range(60)}
    assert call(gateway.predict_url("recommend"), PREDICT, key="other", headers=many)[0] == 431
    deep = {"model": "chat", "messages": [], "junk": json.loads("[" * 200 + "]" * 200)}
    status, _, body = call(gateway.url + "/v1/chat/completions", json.dumps(deep).encode(), "other")
    assert status == 400 and "nested" in body["error"]["message"]


def test_admin_calls_are_audited_and_drain_works(gateway: Gateway, tmp_path: Path) -> None:
    assert call(gateway.url + "/admin/drain", b"{}", key="ops")[0] == 200
    try:
        assert call(gateway.url + "/health/ready")[0] == 503
        status, headers, _ = call(gateway.predict_url("recommend"), PREDICT, key="other")
        assert status == 503 and "retry-after" in headers
    finally:
        assert call(gateway.url + "/admin/undrain", b"{}", key="ops")[0] == 200
    assert call(gateway.predict_url("recommend"), PREDICT, key="other")[0] in (200, 429)


def test_keys_rotate_with_a_config_reload(gateway: Gateway) -> None:
    original = gateway.config_path.read_text()
    config = yaml.safe_load(original)
    fresh = "fresh-key-0123456789abcdef"
    config["security"]["keys"].append({"name": "fresh", "secret": fresh, "scopes": ["predict:*"]})
    url = gateway.predict_url("recommend")
    assert call(url, PREDICT, key=fresh)[0] == 401
    gateway.config_path.write_text(yaml.safe_dump(config))
    try:
        # the file watcher may apply it first; then the admin call finds it unchanged
        status, _, body = call(gateway.url + "/admin/config/reload", b"{}", key="ops")
        assert status == 200 and body["result"] in ("applied", "unchanged")
        assert call(url, PREDICT, key=fresh)[0] == 200
        gateway.config_path.write_text("routes: {}\n")
        status, _, body = call(gateway.url + "/admin/config/reload", b"{}", key="ops")
        assert status == 422 and body["result"] == "rejected" and body["issues"]
        assert call(url, PREDICT, key=fresh)[0] == 200  # a bad file changes nothing
    finally:
        gateway.config_path.write_text(original)
    assert call(gateway.url + "/admin/config/reload", b"{}", key="ops")[0] == 200
    assert call(url, PREDICT, key=fresh)[0] == 401  # revoked
