"""Each fault kind, injected into a real gateway in front of a real model server, through the
admin API and the CLI; flags that survive a restart; network faults through the fault proxy."""

from __future__ import annotations

import copy
import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from failwell.cli.main import app as cli
from failwell.demo.procs import ManagedProcess
from tests.integration.conftest import (
    PY,
    Gateway,
    Stack,
    free_port,
    http_json,
    metric_value,
    wait_until,
)
from tests.integration.test_failover import ranker_config

INPUT = {"inputs": {"user_id": "u0042", "country": "DE", "category": "books"}}


def ask(gw: Gateway, route: str = "recommend") -> str:
    req = urllib.request.Request(
        gw.predict_url(route),
        data=json.dumps(INPUT).encode(),
        headers={"content-type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=5) as resp:
        assert resp.status == 200
        return str(resp.headers["x-failwell-tier"])


def admin(gw: Gateway, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(
        gw.url + path, data=data, method=method, headers={"content-type": "application/json"}
    )
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def fallbacks(gw: Gateway, error: str, route: str = "recommend") -> float:
    total = 0.0
    for line in gw.metrics().splitlines():
        if (
            line.startswith("failwell_fallbacks_total{")
            and f'error="{error}"' in line
            and 'from_tier="primary"' in line
            and f'route="{route}"' in line
        ):
            total += float(line.rsplit(" ", 1)[1])
    return total


def config(stack: Stack, replicas: list[dict[str, Any]], models: Path) -> dict[str, Any]:
    cfg = ranker_config(stack, replicas, models, None, "150ms", "80ms")
    # A high threshold keeps the breaker closed, so each request meets the fault itself.
    cfg["backends"]["ranker"]["breaker"] = {"failure_threshold": 1000, "recovery": "1s"}
    cfg["control"] = {"flags_path": str(stack.tmp / "flags.json")}
    return cfg


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory, models: Path) -> Iterator[Rig]:
    """Two model servers and one gateway: route ``recommend`` in front of both, route
    ``proxied`` in front of the first through a standalone fault proxy. Shared by the tests
    below, which clear their faults when they end."""
    stack = Stack(tmp_path_factory.mktemp("faults"))
    try:
        a = stack.model_server(model_dir=models, label="east-1")
        b = stack.model_server(model_dir=models, label="east-2")
        listen, control = free_port(), free_port()
        proxy = ManagedProcess("fault-proxy")
        stack.procs.append(proxy)
        proxy.start(
            [
                PY,
                "-m",
                "failwell.drills.proxy",
                "--upstream",
                f"127.0.0.1:{a.port}",
                "--listen",
                f"127.0.0.1:{listen}",
                "--control",
                f"127.0.0.1:{control}",
            ],
            ready_line="READY",
            timeout=30,
        )
        cfg = config(stack, [a.replica(), b.replica()], models)
        behind_proxy = {"url": f"http://127.0.0.1:{listen}", "name": "east-1"}
        cfg["backends"]["ranker-proxied"] = {
            **cfg["backends"]["ranker"],
            "replicas": [behind_proxy],
        }
        route = copy.deepcopy(cfg["routes"]["recommend"])
        route["tiers"][0]["backend"] = "ranker-proxied"
        cfg["routes"]["proxied"] = route
        yield Rig(stack.gateway(cfg), f"http://127.0.0.1:{control}/_control")
    finally:
        stack.close()


@dataclass
class Rig:
    gateway: Gateway
    proxy_control: str


@pytest.mark.parametrize(
    ("fault", "error"),
    [
        ({"kind": "error", "status": 503}, "status"),
        ({"kind": "drop"}, "unavailable"),
        ({"kind": "malformed"}, "malformed"),
        ({"kind": "hang"}, "timeout"),
        (
            {"kind": "latency", "latency": "100ms", "jitter": "20ms", "distribution": "uniform"},
            "timeout",
        ),
    ],
)
def test_each_fault_kind_falls_back_for_its_reason(
    rig: Rig, fault: dict[str, Any], error: str
) -> None:
    gateway = rig.gateway
    assert ask(gateway) == "primary"
    before = fallbacks(gateway, error)
    status, body = admin(gateway, "POST", "/admin/faults", {"backend": "ranker", **fault})
    assert status == 201, body
    assert {ask(gateway) for _ in range(3)} == {"fallback"}
    assert fallbacks(gateway, error) >= before + 3
    assert ask(gateway, "proxied") == "primary"  # another backend on the same server
    assert admin(gateway, "DELETE", "/admin/faults")[1]["cleared"] == [body["fault"]["id"]]
    assert ask(gateway) == "primary"


def test_small_latency_slows_but_keeps_tier_one(rig: Rig) -> None:
    gw = rig.gateway
    label = 'failwell_faults_injected_total{backend="ranker",kind="latency"}'
    before = metric_value(gw.metrics(), label.split("{")[0], kind="latency") or 0.0
    admin(gw, "POST", "/admin/faults", {"kind": "latency", "backend": "ranker", "latency": "30ms"})
    assert {ask(gw) for _ in range(3)} == {"primary"}
    assert metric_value(gw.metrics(), label.split("{")[0], kind="latency") == before + 3
    admin(gw, "DELETE", "/admin/faults")


def test_faults_expire_and_replica_faults_spare_the_others(rig: Rig) -> None:
    gw = rig.gateway
    before = fallbacks(gw, "unavailable")
    status, _ = admin(
        gw, "POST", "/admin/faults", {"kind": "drop", "backend": "ranker", "replica": "east-1"}
    )
    assert status == 201
    # Retries go to the other replica: tier 1 still answers every time.
    assert {ask(gw) for _ in range(6)} == {"primary"}
    assert fallbacks(gw, "unavailable") == before
    admin(gw, "POST", "/admin/faults", {"kind": "error", "backend": "ranker", "duration": "1s"})
    assert ask(gw) == "fallback"
    assert wait_until(lambda: len(admin(gw, "GET", "/admin/faults")[1]["faults"]) == 1, 5)
    assert ask(gw) == "primary"
    admin(gw, "DELETE", "/admin/faults")


def test_cli_drives_faults_and_flags_and_flags_survive_a_restart(
    stack: Stack, models: Path
) -> None:
    server = stack.model_server(model_dir=models, label="east-1")
    cfg = config(stack, [server.replica()], models)
    gw = stack.gateway(cfg)
    runner = CliRunner()
    url = ["--gateway", gw.url]
    got = runner.invoke(
        cli, ["fault", "add", "error", "--backend", "ranker", "--duration", "30s", *url]
    )
    assert got.exit_code == 0 and "added f1" in got.output, got.output
    got = runner.invoke(cli, ["fault", "list", *url])
    assert "f1" in got.output and "error" in got.output and "ranker" in got.output
    assert ask(gw) == "fallback"
    assert "cleared f1" in runner.invoke(cli, ["fault", "clear", *url]).output
    got = runner.invoke(cli, ["fault", "add", "error", "--backend", "nope", *url])
    assert got.exit_code == 1 and "unknown backend" in got.output
    got = runner.invoke(cli, ["fault", "flag", "tier:recommend/primary", "off", *url])
    assert got.exit_code == 0, got.output
    assert ask(gw) == "fallback"
    gw.proc.stop(grace=1)
    gw = stack.gateway(cfg, name="gateway-again")
    assert ask(gw) == "fallback"
    assert (
        "off  tier:recommend/primary"
        in runner.invoke(cli, ["fault", "flags", *url[:1], gw.url]).output
    )
    runner.invoke(cli, ["fault", "flag", "tier:recommend/primary", "on", "--gateway", gw.url])
    assert ask(gw) == "primary"


@pytest.mark.parametrize(
    ("fault", "error"),
    [
        ({"blackhole": True}, "timeout"),
        ({"reset": True}, "unavailable"),
        ({"latency": 0.2}, "timeout"),
        ({"bandwidth": 500}, "timeout"),
    ],
)
def test_network_faults_through_the_proxy(rig: Rig, fault: dict[str, Any], error: str) -> None:
    gw, control = rig.gateway, rig.proxy_control
    before = fallbacks(gw, error, "proxied")
    assert ask(gw, "proxied") == "primary"
    assert http_json(control, fault)[next(iter(fault))] == fault[next(iter(fault))]
    assert {ask(gw, "proxied") for _ in range(3)} == {"fallback"}
    assert fallbacks(gw, error, "proxied") >= before + 3
    assert ask(gw) == "primary"  # the same server, not through the proxy
    http_json(control, {})
    assert wait_until(lambda: ask(gw, "proxied") == "primary", 5)


def test_the_canary_drill_runs_inside_the_gateway_and_reports_in_metrics(stack: Stack) -> None:
    cfg = stack.config(
        backends={"echo": {"protocol": "python", "target": "failwell.testing.models:Echo"}},
        routes={
            "r": {
                "input": {"x": "str"},
                "tiers": [
                    {"name": "primary", "backend": "echo"},
                    {"name": "rules", "rules": "failwell.testing.models:constant_rule"},
                    {"name": "static", "value": {"items": []}},
                ],
            }
        },
    )
    cfg["control"] = {
        "flags_path": ":memory:",
        "canary_drill": {
            "enabled": True,
            "route": "r",
            "share": 0.5,
            "every": "1s",
            "duration": "800ms",
            "first_after": "0s",
        },
    }
    gw = stack.gateway(cfg)
    tiers: set[str] = set()

    def passed() -> bool:
        tiers.add(ask_route(gw, "r"))
        text = gw.metrics()
        return (metric_value(text, "failwell_canary_drill_runs_total", result="pass") or 0) >= 1

    assert wait_until(passed, 10, interval=0.02)
    assert tiers == {"primary", "rules"}
    text = gw.metrics()
    assert (metric_value(text, "failwell_canary_drill_requests_total", outcome="answered") or 0) > 0
    assert metric_value(text, "failwell_canary_drill_last_pass", route="r") == 1.0


def ask_route(gw: Gateway, route: str) -> str:
    req = urllib.request.Request(
        gw.predict_url(route),
        data=json.dumps({"inputs": {"x": "1"}}).encode(),
        headers={"content-type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=5) as resp:
        return str(resp.headers["x-failwell-tier"])
