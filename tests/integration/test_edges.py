"""The gateway's edges: bad input gets a clear 4xx, every tier failing gets a 503 listing each
tier, the cache tier survives a restart, and `failwell check` names key paths."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.integration.conftest import Gateway, Stack, http_json


def call(
    url: str, body: bytes | None, method: str = "POST", headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], Any]:
    req = urllib.request.Request(
        url,
        data=body,
        method=method,
        headers={"content-type": "application/json", **(headers or {})},
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, dict(resp.headers), json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as err:
        payload = err.read()
        return err.code, dict(err.headers), json.loads(payload) if payload else None


def edge_config(stack: Stack, primary_url: str, **extra: Any) -> dict[str, Any]:
    return stack.config(
        backends={
            "ranker": {
                "protocol": "v2",
                "model": "ranker",
                "timeout": "200ms",
                "replicas": [{"url": primary_url}],
                "retry": {"attempts": 1},
                "breaker": {"failure_threshold": 2},
            }
        },
        routes={
            "recommend": {
                "input": {"user_id": "str", "n": "int", "weights": "list[float]"},
                "deadline": "500ms",
                "cache": {"key": "{user_id}"},
                "tiers": [
                    {"name": "primary", "backend": "ranker"},
                    {"name": "rules", "rules": "failwell.testing.models:broken_rule"},
                    {"name": "cache"},
                ],
            }
        },
        max_body="2KiB",
        **extra,
    )


GOOD = {"inputs": {"user_id": "u1", "n": 2, "weights": [0.5, 1]}}


@pytest.fixture
def echo_gateway(stack: Stack) -> tuple[Stack, Gateway, Any]:
    echo = stack.model_server(label="echo")  # no model dir: echoes its inputs
    return stack, stack.gateway(edge_config(stack, echo.url)), echo


def test_bad_requests_get_clear_4xx(echo_gateway: tuple[Stack, Gateway, Any]) -> None:
    _, gw, _ = echo_gateway
    url = gw.predict_url("recommend")
    status, _, body = call(url, b'{"inputs": {"user_id": 3, "n": 2, "weights": []}}')
    assert status == 422 and body["error"]["field"] == "inputs.user_id"
    status, _, body = call(url, b'{"inputs": {"user_id": "u", "weights": []}}')
    assert status == 422 and "n" in body["error"]["message"]
    status, _, body = call(url, b'{"inputs": {"user_id": "u", "n": 1, "weights": [], "extra": 1}}')
    assert status == 422 and "extra" in body["error"]["message"]
    status, _, body = call(url, b'{"inputs": ')
    assert status == 400 and body["error"]["type"] == "invalid_input"
    status, _, body = call(gw.predict_url("nope"), json.dumps(GOOD).encode())
    assert status == 404 and body["error"]["type"] == "unknown_route"
    status, _, body = call(
        url, json.dumps({"inputs": {**GOOD["inputs"], "user_id": "x" * 4096}}).encode()
    )
    assert status == 413 and body["error"]["type"] == "body_too_large"
    status, _, body = call(url, None, method="GET")
    assert status == 405
    status, _, _ = call(f"{gw.url}/nowhere", None, method="GET")
    assert status == 404


def test_answers_carry_tier_headers_and_request_id(
    echo_gateway: tuple[Stack, Gateway, Any],
) -> None:
    _, gw, _ = echo_gateway
    status, headers, body = call(
        gw.predict_url("recommend"), json.dumps(GOOD).encode(), headers={"x-request-id": "req-123"}
    )
    assert status == 200
    assert (
        headers["x-failwell-tier"],
        headers["x-failwell-quality"],
        headers["x-failwell-backend"],
    ) == ("primary", "full", "ranker")
    assert headers["x-request-id"] == "req-123" and body["request_id"] == "req-123"
    assert body["outputs"]["user_id"] == "u1" and body["outputs"]["weights"] == [0.5, 1.0]


def test_every_tier_failing_is_a_503_listing_each_tier(stack: Stack) -> None:
    gw = stack.gateway(edge_config(stack, "http://127.0.0.1:9"))  # nothing listens there
    status, _, body = call(gw.predict_url("recommend"), json.dumps(GOOD).encode())
    assert status == 503
    assert body["error"]["type"] == "all_tiers_failed"
    assert [(t["tier"], t["error"]) for t in body["error"]["tiers"]] == [
        ("primary", "unavailable"),
        ("rules", "rules_error"),
        ("cache", "cache_miss"),
    ]


def test_cache_tier_survives_a_restart(stack: Stack) -> None:
    echo = stack.model_server(label="echo")
    config = edge_config(stack, echo.url)
    gw = stack.gateway(config)
    status, _, fresh = call(gw.predict_url("recommend"), json.dumps(GOOD).encode())
    assert status == 200 and fresh["tier"] == "primary"
    gw.proc.stop()  # a clean stop flushes; the SQLite file keeps the answer
    echo.kill()
    gw2 = stack.gateway(config, name="gateway2")
    status, headers, stale = call(gw2.predict_url("recommend"), json.dumps(GOOD).encode())
    assert status == 200 and stale["tier"] == "cache" and headers["x-failwell-quality"] == "stale"
    assert stale["outputs"] == fresh["outputs"]


def test_readiness_reports_each_check(stack: Stack) -> None:
    echo = stack.model_server(label="echo")
    gw = stack.gateway(edge_config(stack, echo.url))
    assert http_json(f"{gw.url}/health/ready")["status"] == "ready"
    echo.kill()
    for _ in range(3):  # a few failures open the breaker of the only replica
        call(gw.predict_url("recommend"), json.dumps(GOOD).encode())
    # Tier 1 is down but later tiers answer: still ready, the route listed as degraded; a
    # global balancer's check asks for tier 1 and gets a 503.
    status, _, body = call(f"{gw.url}/health/ready", None, method="GET")
    assert status == 200 and body["status"] == "degraded"
    assert body["degraded_routes"] == ["recommend"]
    assert body["checks"]["route:recommend"]["degraded"] is True
    status, _, body = call(f"{gw.url}/health/ready?tier1=true", None, method="GET")
    assert status == 503 and body["checks"]["route:recommend"]["ok"] is False
    assert body["checks"]["cache"]["ok"] is True
    assert http_json(f"{gw.url}/health/live") == {"status": "alive"}
    status_doc = http_json(f"{gw.url}/admin/status")
    assert status_doc["backends"]["ranker"]["replicas"][0]["breaker"] == "open"
    assert [t["name"] for t in status_doc["routes"]["recommend"]["tiers"]] == [
        "primary",
        "rules",
        "cache",
    ]


def test_without_keys_an_admin_call_a_proxy_forwards_for_a_remote_client_is_refused(
    echo_gateway: tuple[Stack, Gateway, Any],
) -> None:
    # A reverse proxy on this machine connects from loopback; the client it names in
    # X-Forwarded-For is the one judged (trusted from 127.0.0.1 only).
    _, gw, _ = echo_gateway
    remote = {"x-forwarded-for": "203.0.113.5"}
    status, _, body = call(f"{gw.url}/admin/status", None, "GET", remote)
    assert status == 403 and "loopback" in body["error"]["message"]
    chain = {"x-forwarded-for": "127.0.0.1, 203.0.113.5"}  # what a client sent, then the proxy
    assert call(f"{gw.url}/admin/status", None, "GET", chain)[0] == 403
    local = {"x-forwarded-for": "127.0.0.1"}
    assert call(f"{gw.url}/admin/status", None, "GET", local)[0] == 200


def test_openapi_document_describes_routes(echo_gateway: tuple[Stack, Gateway, Any]) -> None:
    _, gw, _ = echo_gateway
    doc = http_json(f"{gw.url}/openapi.json")
    assert doc["openapi"].startswith("3.")
    assert "/v1/predict/recommend" in doc["paths"] and "/v1/chat/completions" in doc["paths"]
    assert "/v1/embeddings" in doc["paths"] and "EmbeddingsRequest" in doc["components"]["schemas"]
    schema = doc["components"]["schemas"]["recommend_inputs"]
    assert schema["required"] == ["user_id", "n", "weights"]


def test_check_command_names_key_paths(tmp_path: Path) -> None:
    bad: dict[str, Any] = {
        "backends": {"ranker": {"protocol": "v2", "replicas": [{"url": "http://127.0.0.1:1"}]}},
        "routes": {
            "recommend": {
                "input": {"user_id": "str"},
                "tiers": [
                    {"name": "primary", "backend": "ranker"},
                    {"name": "fallback", "backend": "lite"},
                ],
            }
        },
    }
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(bad))
    proc = subprocess.run(
        [sys.executable, "-m", "failwell", "check", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "routes.recommend.tiers[1].backend: unknown backend 'lite'" in proc.stderr
    assert "Traceback" not in proc.stderr
    bad["routes"]["recommend"]["tiers"][1]["backend"] = "ranker"
    path.write_text(yaml.safe_dump(bad))
    proc = subprocess.run(
        [sys.executable, "-m", "failwell", "check", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
