"""A fleet of real processes: nginx in front of three ``failwell serve`` gateways sharing one
redis-server, a real model server behind them, under load through nginx.

The primary model is killed → the gateway that sees it fail opens its breaker and the other two
skip the replica before they get a single request; a gateway is SIGKILLed → nginx routes around
it; a flag flipped on one gateway is obeyed by the others; Redis is SIGKILLed → every gateway
keeps answering on its own state, and a flag flipped meanwhile reaches the others once Redis is
back. Delays are asserted generously (the machine is shared); the measured propagation delays
are printed (``-s``).
"""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
import urllib.request
from pathlib import Path
from typing import Any

import redis as redis_client

from failwell.demo.procs import ManagedProcess
from failwell.log.records import parse_line
from failwell.testing.load import LoadResult, run_load
from tests.integration.conftest import (
    Gateway,
    RedisServer,
    Stack,
    free_port,
    http_json,
    light_ranker,
    metric_value,
    wait_until,
)

INPUT = {"user_id": "u0042", "country": "DE", "category": "books"}
FALLBACK_FLAG = "tier:recommend/fallback"
OPEN = 2.0  # failwell_breaker_state of an open breaker

NGINX = """daemon off;
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/nginx-error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {dir}/nginx-body;
    proxy_temp_path {dir}/nginx-proxy;
    fastcgi_temp_path {dir}/nginx-fastcgi;
    uwsgi_temp_path {dir}/nginx-uwsgi;
    scgi_temp_path {dir}/nginx-scgi;
    upstream gateways {{
{servers}
        keepalive 16;
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://gateways;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_connect_timeout 1s;
            # an inference is safe to send again to another gateway
            proxy_next_upstream error timeout non_idempotent;
        }}
    }}
}}
"""


def body(i: int) -> dict[str, Any]:
    return {"inputs": {**INPUT, "user_id": f"u{i % 200:04d}"}}


def gateway_config(
    stack: Stack,
    name: str,
    replica: dict[str, Any],
    models: Path,
    redis: RedisServer,
    log_redis: RedisServer,
) -> dict[str, Any]:
    config = stack.config(
        backends={
            "ranker": {
                "protocol": "v2",
                "model": "ranker",
                "timeout": "250ms",
                "replicas": [replica],
                "retry": {"attempts": 1},
                "breaker": {"failure_threshold": 3, "recovery": "30s"},
                "health": False,  # breakers alone decide here, not the prober
            },
            "light": light_ranker(models),
        },
        routes={
            "recommend": {
                "input": {"user_id": "str", "country": "str", "category": "str"},
                "deadline": "500ms",
                "tiers": [
                    {"name": "primary", "backend": "ranker"},
                    {"name": "fallback", "backend": "light"},
                    {"name": "rules", "rules": "failwell.demo.rules:popular"},
                    {"name": "static", "value": {"items": [1, 2, 3]}},
                ],
            }
        },
    )
    config["gateway"]["cache"] = {"path": str(stack.tmp / f"{name}-cache.sqlite")}
    config["control"] = {"flags_path": str(stack.tmp / f"{name}-flags.json")}
    config["fleet"] = {"redis": redis.url, "instance": name, "max_reconnect": "500ms"}
    # one shared log (its own Redis: the fleet's is killed below); sync: an answer is sent
    # once its record is in the stream
    config["log"] = {
        "enabled": True,
        "backend": "redis",
        "redis_url": log_redis.url,
        "durability": "sync",
    }
    return config


def logged_ids(log_redis: RedisServer) -> set[str]:
    """The request ids the shared inference log's stream holds."""
    entries: Any = redis_client.Redis(port=log_redis.port).xrange("failwell:log:inference")
    return {json.loads(parse_line(fields[b"line"])[0].body)["request_id"] for _, fields in entries}


def start_nginx(stack: Stack, gateways: list[Gateway]) -> str:
    port = free_port()
    servers = "\n".join(
        f"        server 127.0.0.1:{gw.port} max_fails=1 fail_timeout=10s;" for gw in gateways
    )
    conf = stack.tmp / "nginx.conf"
    conf.write_text(NGINX.format(dir=stack.tmp, servers=servers, port=port))
    exe = shutil.which("nginx") or "/usr/sbin/nginx"
    proc = ManagedProcess("nginx", log_file=stack.tmp / "nginx.log")
    proc.spawn([exe, "-p", str(stack.tmp), "-c", str(conf), "-e", str(stack.tmp / "nginx.err")])
    stack.procs.append(proc)
    url = f"http://127.0.0.1:{port}/v1/predict/recommend"
    assert wait_until(lambda: _answers(url), timeout=20), proc.output(20)
    return url


def _answers(url: str) -> bool:
    try:
        return http_json(url, body(0), timeout=2) is not None
    except OSError:
        return False


def tier(gw: Gateway) -> str | None:
    req = urllib.request.Request(
        gw.predict_url("recommend"),
        data=json.dumps(body(1)).encode(),
        headers={"content-type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=5) as resp:
        found: str | None = resp.headers.get("x-failwell-tier")
        return found


def sample(gw: Gateway, name: str, **labels: str) -> float:
    return metric_value(gw.metrics(), name, **labels) or 0.0


def breaker_open(gw: Gateway) -> bool:
    return sample(gw, "failwell_breaker_state", backend="ranker", replica="m1") == OPEN


def unlabelled(gw: Gateway, name: str) -> float | None:
    """The value of a sample without labels."""
    for line in gw.metrics().splitlines():
        if line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
    return None


def fleet_up(gw: Gateway) -> bool:
    return unlabelled(gw, "failwell_fleet_up") == 1.0


def set_flag(gw: Gateway, on: bool) -> None:
    http_json(f"{gw.url}/admin/flags", {"target": FALLBACK_FLAG, "on": on})


def load(url: str, seconds: float, action: Any = None, at: float = 1.0) -> LoadResult:
    async def run() -> LoadResult:
        result = LoadResult()
        task = asyncio.create_task(
            run_load(url, body, concurrency=4, duration=seconds, sink=result)
        )
        if action is not None:
            await asyncio.sleep(at)
            await asyncio.to_thread(action)
        await task
        return result

    return asyncio.run(run())


def test_three_gateways_one_redis_under_load(stack: Stack, models: Path) -> None:
    redis, log_redis = stack.redis(), stack.redis()
    model = stack.model_server(model_dir=models, label="m1")
    gateways = [
        stack.gateway(
            gateway_config(stack, name, model.replica(), models, redis, log_redis),
            name,
            ("--workers", "1"),  # three machines' gateways (test_workers.py: many per machine)
        )
        for name in ("gw1", "gw2", "gw3")
    ]
    gw1, gw2, gw3 = gateways
    assert wait_until(lambda: all(fleet_up(gw) for gw in gateways), timeout=20)
    url = start_nginx(stack, gateways)

    warm = load(url, 1.5)
    assert warm.failed == [] and warm.share("primary") > 0.9, warm.tiers()

    # The primary model dies. Only gw1 is asked: it opens its breaker; gw2 and gw3, asked
    # nothing, skip the replica from then on.
    model.kill()
    asked = [tier(gw1) for _ in range(10)]
    assert asked[-1] == "fallback", asked
    assert breaker_open(gw1)
    assert wait_until(lambda: breaker_open(gw2) and breaker_open(gw3), timeout=5)
    delays = []
    for gw in (gw2, gw3):
        count = sample(gw, "failwell_fleet_propagation_seconds_count", kind="breaker")
        total = sample(gw, "failwell_fleet_propagation_seconds_sum", kind="breaker")
        assert count >= 1
        delays.append(total / count)
    print(f"breaker propagation gw1 → gw2, gw3: {[f'{d * 1000:.2f} ms' for d in delays]}")
    assert max(delays) < 1.0  # aim ≤ 100 ms; generous on a shared machine
    skipped = load(url, 1.5)
    assert skipped.failed == [] and skipped.tiers().keys() == {"fallback"}, skipped.tiers()

    # A flag flipped on gw1 is obeyed by gw2 and gw3.
    set_flag(gw1, False)
    assert wait_until(lambda: tier(gw2) == "rules" and tier(gw3) == "rules", timeout=5)

    # gw3 is SIGKILLed under load: nginx routes around it.
    killed = load(url, 3.0, action=lambda: gw3.proc.kill(signal.SIGKILL), at=1.0)
    assert killed.failed == [], len(killed.failed)
    assert killed.tiers().keys() == {"rules"}
    # nothing acknowledged is lost from the shared log, gw3's answers before its death included
    acked = {r.request_id or "" for r in killed.records if r.status == 200}
    assert "" not in acked and len(acked) > 50
    missing = acked - logged_ids(log_redis)
    assert not missing, sorted(missing)[:5]

    # Redis is SIGKILLed under load: every gateway keeps answering on its own state.
    def kill_redis() -> None:
        redis.proc.kill(signal.SIGKILL)
        redis.proc.wait(5)

    no_redis = load(url, 3.0, action=kill_redis, at=1.0)
    assert no_redis.failed == [], len(no_redis.failed)
    assert wait_until(lambda: not fleet_up(gw1) and not fleet_up(gw2), timeout=5)
    ready = http_json(f"{gw1.url}/health/ready")  # 200: cut off from Redis, still in rotation
    fleet = ready["checks"]["fleet"]
    assert {k: fleet[k] for k in ("ok", "up", "instance", "name")} == {
        "ok": True,
        "up": False,
        "instance": "gw1",
        "name": "default",
    }
    set_flag(gw2, True)  # while Redis is down: gw1 does not hear of it yet
    assert tier(gw2) == "fallback" and tier(gw1) == "rules"

    # Redis comes back (empty): both reconnect and reconcile, the newer flag change wins.
    stack.redis(port=redis.port)
    assert wait_until(lambda: fleet_up(gw1) and fleet_up(gw2), timeout=20)
    assert wait_until(lambda: tier(gw1) == "fallback", timeout=5)
    after = load(url, 1.5)
    assert after.failed == [] and after.tiers().keys() == {"fallback"}, after.tiers()
    assert (unlabelled(gw1, "failwell_fleet_reconnects_total") or 0) >= 1
