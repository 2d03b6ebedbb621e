"""Managed replicas with real processes: the gateway starts demo model servers itself, replaces
the ones SIGKILLed or SIGSTOPped under load without a failed request, promotes a warm standby,
quarantines a crash-looping command, and adopts or stops its replicas after being SIGKILLed."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import time
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from failwell.supervisor import runstate
from failwell.supervisor.process import ReplicaProcess, start_time
from failwell.testing.load import LoadResult, run_load
from tests.integration.conftest import PY, Gateway, Stack, http_json, metric_value, wait_until

FIGURES = Path(__file__).resolve().parents[2] / ".failwell" / "supervisor-figures.json"


@pytest.fixture(autouse=True)
def no_replica_left(tmp_path: Path) -> Iterator[None]:
    """Replicas outlive a gateway killed with SIGKILL by design: whatever a failed test left
    running (recorded in the run state files) is stopped here."""
    yield
    for state in (tmp_path / "replicas").glob("*.replicas.json"):
        for recorded in runstate.read(state):
            process = ReplicaProcess.adopt(recorded.pid, recorded.started)
            if process is not None:
                process.signal(signal.SIGKILL)


def port_range(size: int = 8) -> tuple[int, int]:
    """A run of free loopback ports (bound once to check)."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            first = int(s.getsockname()[1])
        if first + size > 65000:
            continue
        if all(bindable(p) for p in range(first, first + size)):
            return first, first + size - 1
    raise RuntimeError("no run of free ports")


def bindable(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def server_command(label: str = "r") -> list[str]:
    return [PY, "-m", "failwell.demo.modelserver", "--port", "{port}", "--label", label]


def managed_config(stack: Stack, command: list[str], **managed: Any) -> dict[str, Any]:
    ports = managed.pop("ports", None) or list(port_range())
    return stack.config(
        backends={
            "echo": {
                "protocol": "v2",
                "model": "ranker",
                "timeout": "300ms",
                "retry": {"attempts": 3, "backoff": "2ms", "max_backoff": "10ms"},
                "breaker": {"failure_threshold": 2, "recovery": "1s"},
                "health": {"interval": "250ms", "timeout": "200ms", "down_after": 2},
                "managed": {
                    "command": command,
                    "ports": ports,
                    "log_dir": str(stack.tmp / "replicas"),
                    "start_timeout": "30s",
                    "drain": "2s",
                    "stop_grace": "2s",
                    "autoscale": {"enabled": False},
                    **managed,
                },
            }
        },
        routes={
            "echo": {
                "input": {"x": "str"},
                "deadline": "1s",
                "tiers": [
                    {"name": "primary", "backend": "echo"},
                    {"name": "static", "value": {"x": "static"}},
                ],
            }
        },
    )


def supervisor(gw: Gateway) -> dict[str, Any]:
    doc: dict[str, Any] = http_json(f"{gw.url}/admin/supervisor")["echo"]
    return doc


def pids(gw: Gateway, state: str = "serving") -> list[int]:
    return [r["pid"] for r in supervisor(gw)["replicas"] if r["state"] == state]


def settled(gw: Gateway, serving: int, standby: int = 0) -> bool:
    doc = supervisor(gw)
    states = [r["state"] for r in doc["replicas"]]
    return (
        states.count("serving") == serving
        and states.count("standby") == standby
        and (len(states) == serving + standby)
    )


def gone(gw: Gateway, pid: int) -> bool:
    return pid not in pids(gw)


def alive(pid: int) -> bool:
    return start_time(pid) is not None


def record(name: str, value: Any) -> None:
    FIGURES.parent.mkdir(exist_ok=True)
    figures = json.loads(FIGURES.read_text()) if FIGURES.exists() else {}
    figures[name] = value
    FIGURES.write_text(json.dumps(figures, indent=2))


def body(i: int) -> dict[str, Any]:
    return {"inputs": {"x": f"v{i}"}}


def test_sigkill_and_sigstop_under_load_fail_no_request(stack: Stack) -> None:
    config = managed_config(
        stack, server_command(), min=2, max=3, standby=1, restart={"backoff": "200ms"}
    )
    gw = stack.gateway(config)
    assert wait_until(lambda: settled(gw, 2, 1), timeout=60, interval=0.2), supervisor(gw)
    detect: list[float] = []
    replaced: list[float] = []

    def break_replicas() -> None:
        for n, sig in enumerate([signal.SIGKILL, signal.SIGSTOP, signal.SIGKILL, signal.SIGSTOP]):
            victim = pids(gw)[0]
            os.kill(victim, sig)
            hit = time.monotonic()
            assert wait_until(partial(gone, gw, victim), timeout=10, interval=0.01)
            detect.append(time.monotonic() - hit)
            assert wait_until(lambda: settled(gw, 2, 1), timeout=30, interval=0.05), (
                n,
                supervisor(gw),
            )
            replaced.append(time.monotonic() - hit)
            time.sleep(0.3)

    async def scenario() -> LoadResult:
        result = LoadResult()
        stop = asyncio.Event()
        load = asyncio.create_task(
            run_load(
                gw.predict_url("echo"), body, concurrency=6, duration=60, stop=stop, sink=result
            )
        )
        await asyncio.sleep(0.5)
        await asyncio.to_thread(break_replicas)
        await asyncio.sleep(0.5)
        stop.set()
        await load
        return result

    result = asyncio.run(scenario())
    assert len(result) > 200
    assert result.failed == [], result.failed[:3]
    tiers = result.tiers()
    record(
        "sigkill_sigstop_under_load",
        {
            "requests": len(result),
            "failed": len(result.failed),
            "by_tier": dict(tiers),
            "detect_s": [round(d, 3) for d in detect],
            "back_to_2_serving_1_standby_s": [round(r, 3) for r in replaced],
        },
    )
    # A SIGKILLed replica is seen by its exit (tick 0.1 s); a SIGSTOPped one by 2 failed
    # liveness probes (interval 0.25 s, timeout 0.2 s), and a standby takes its place at once.
    assert max(detect) < 2.0, detect
    assert tiers["primary"] / len(result) > 0.9, tiers


def test_dead_replica_replaced_within_backoff(stack: Stack) -> None:
    config = managed_config(stack, server_command(), min=2, max=2, restart={"backoff": "500ms"})
    gw = stack.gateway(config)
    assert wait_until(lambda: settled(gw, 2), timeout=60, interval=0.2), supervisor(gw)
    victim = pids(gw)[0]
    os.kill(victim, signal.SIGKILL)
    hit = time.monotonic()
    assert wait_until(lambda: victim not in pids(gw), timeout=5, interval=0.01)
    gone = time.monotonic() - hit
    assert wait_until(lambda: settled(gw, 2), timeout=30, interval=0.02), supervisor(gw)
    back = time.monotonic() - hit
    ready = metric_value(gw.metrics(), "failwell_managed_ready_seconds_sum", backend="echo")
    count = metric_value(gw.metrics(), "failwell_managed_ready_seconds_count", backend="echo")
    assert ready is not None and count == 3
    record(
        "replace_dead_replica",
        {"detect_s": round(gone, 3), "serving_again_s": round(back, 3), "backoff_s": 0.5,
         "mean_start_to_ready_s": round(ready / count, 3)},
    )  # fmt: skip
    # The backoff (0.5 s) plus one start of the server (well under 10 s on a busy machine).
    assert gone < 1.0
    assert back < 0.5 + 10.0
    events = [e["event"] for e in supervisor(gw)["events"]]
    assert "replica_failed" in events and "replica_serving" in events


def test_crash_looping_command_is_quarantined_with_an_alert(stack: Stack) -> None:
    crash = [PY, "-c", "import sys; print('model missing', flush=True); sys.exit(3)", "{port}"]
    config = managed_config(
        stack, crash, min=2, max=2, restart={"backoff": "50ms", "crash_loop": 4, "window": "30s"}
    )
    gw = stack.gateway(config)
    assert wait_until(lambda: supervisor(gw)["quarantined"], timeout=30, interval=0.1)
    doc = supervisor(gw)
    failures = doc["failures_in_window"]
    assert failures >= 4
    time.sleep(1.0)  # quarantined: no more starts
    assert supervisor(gw)["failures_in_window"] == failures
    assert supervisor(gw)["replicas"] == []
    feed = http_json(f"{gw.url}/dashboard/feed")
    assert {"alert": "failwell_replica_crash_loop", "backend": "echo", "severity": "page"} in (
        feed["alerts"]["firing"]
    )
    recent = [a for a in feed["alerts"]["recent"] if a["alert"] == "failwell_replica_crash_loop"]
    assert recent and recent[0]["state"] == "firing"
    assert metric_value(gw.metrics(), "failwell_managed_quarantined", backend="echo") == 1
    logs = list((stack.tmp / "replicas").glob("echo-*.log"))
    assert logs and "model missing" in logs[0].read_text()
    # The route still answers, from its later tier.
    answer = http_json(gw.predict_url("echo"), {"inputs": {"x": "a"}})
    assert answer["tier"] == "static"
    released = http_json(f"{gw.url}/admin/supervisor/release", {"backend": "echo"})
    assert released["quarantined"] is False


def test_gateway_sigkill_then_restart_adopts_or_stops_replicas(stack: Stack) -> None:
    ports = list(port_range())
    config = managed_config(stack, server_command("a"), min=2, max=2, ports=ports)
    gw = stack.gateway(config, name="gw1")
    assert wait_until(lambda: settled(gw, 2), timeout=60, interval=0.2), supervisor(gw)
    first = sorted(pids(gw))
    gw.proc.kill(signal.SIGKILL)
    gw.proc.wait(5)
    assert all(alive(p) for p in first)  # replicas outlive the gateway: the next one adopts

    gw2 = stack.gateway(config, name="gw2")
    assert wait_until(lambda: settled(gw2, 2), timeout=30, interval=0.1), supervisor(gw2)
    assert sorted(pids(gw2)) == first
    assert all(r["adopted"] for r in supervisor(gw2)["replicas"])
    assert http_json(gw2.predict_url("echo"), {"inputs": {"x": "a"}})["tier"] == "primary"

    # Killed again, and restarted with another command: the old replicas are stopped, not kept.
    gw2.proc.kill(signal.SIGKILL)
    gw2.proc.wait(5)
    changed = managed_config(stack, server_command("b"), min=2, max=2, ports=ports)
    changed["gateway"]["listen"] = config["gateway"]["listen"]
    gw3 = stack.gateway(changed, name="gw3")
    assert wait_until(lambda: not any(alive(p) for p in first), timeout=15, interval=0.1)
    assert wait_until(lambda: settled(gw3, 2), timeout=60, interval=0.2), supervisor(gw3)
    second = pids(gw3)
    assert not set(second) & set(first)

    # A clean stop leaves no replica and no port bound.
    gw3.proc.stop(grace=15)
    assert wait_until(lambda: not any(alive(p) for p in second), timeout=10, interval=0.1)
    assert all(bindable(p) for p in range(ports[0], ports[1] + 1))


def test_autoscaler_adds_replicas_under_load_and_removes_them_after(stack: Stack) -> None:
    """A short ramp: 20 ms of service time per request, closed-loop load of 8 then none; the
    desired count goes up to max, every added replica serves, then it comes back to min."""
    autoscale = {
        "target_in_flight": 1.5,
        "interval": "500ms",
        "up_window": "1s",
        "down_window": "3s",
        "up_cooldown": "1s",
        "down_cooldown": "2s",
    }
    config = managed_config(
        stack, [*server_command(), "--delay-ms", "20"], min=2, max=4, autoscale=autoscale
    )
    gw = stack.gateway(config)
    assert wait_until(lambda: settled(gw, 2), timeout=60, interval=0.2), supervisor(gw)

    async def ramp() -> LoadResult:
        result = LoadResult()
        await run_load(gw.predict_url("echo"), body, concurrency=8, duration=8, sink=result)
        return result

    result = asyncio.run(ramp())
    doc = supervisor(gw)
    ups = [d for d in doc["decisions"] if d["direction"] == "up"]
    assert ups, doc
    assert max(d["to"] for d in ups) == 4
    assert result.failed == []
    assert wait_until(lambda: settled(gw, 2), timeout=30, interval=0.2), supervisor(gw)
    doc = supervisor(gw)
    downs = [d for d in doc["decisions"] if d["direction"] == "down"]
    assert downs and "in flight per replica" in downs[0]["reason"]
    text = gw.metrics()
    assert metric_value(text, "failwell_autoscale_decisions_total", direction="up") is not None
    # Decide-to-serving: from the first scale-up to each replica it added serving.
    events = list(reversed(doc["events"]))
    first_up = next(e for e in events if e["event"] == "scale" and e["direction"] == "up")
    served = [
        e["at"] - first_up["at"]
        for e in events
        if e["event"] == "replica_serving" and e["at"] > first_up["at"]
    ]
    record(
        "autoscale_ramp",
        {
            "requests": len(result),
            "failed": len(result.failed),
            "decisions": [
                {k: d[k] for k in ("direction", "from", "to", "reason")}
                for d in reversed(doc["decisions"])
            ],
            "decide_to_serving_s": [round(s, 3) for s in served],
        },
    )


def test_a_replica_failing_its_canaries_is_replaced(stack: Stack) -> None:
    config = managed_config(stack, server_command(), min=2, max=2, restart={"backoff": "200ms"})
    config["routes"]["echo"]["canary"] = {
        "interval": "300ms",
        "down_after": 2,
        "checks": [{"inputs": {"x": "c"}, "expect": {"x": "c"}}],
    }
    gw = stack.gateway(config)
    assert wait_until(lambda: settled(gw, 2), timeout=60, interval=0.2), supervisor(gw)
    victim = supervisor(gw)["replicas"][0]
    http_json(f"http://127.0.0.1:{victim['port']}/_control", {"mode": "error", "status": 500})
    assert wait_until(partial(gone, gw, victim["pid"]), timeout=10, interval=0.05)
    failed = next(e for e in supervisor(gw)["events"] if e["event"] == "replica_failed")
    assert failed["reason"] == "canary" and failed["replica"] == victim["name"]
    assert wait_until(lambda: settled(gw, 2), timeout=30, interval=0.1), supervisor(gw)
    text = gw.metrics()
    assert metric_value(text, "failwell_managed_replica_failures_total", reason="canary") == 1


def test_a_reload_keeps_serving_replicas_and_rolls_a_changed_command(stack: Stack) -> None:
    ports = list(port_range())
    config = managed_config(stack, server_command("a"), min=2, max=2, ports=ports)
    gw = stack.gateway(config)
    assert wait_until(lambda: settled(gw, 2), timeout=60, interval=0.2), supervisor(gw)
    first = sorted(pids(gw))

    def reload(new: dict[str, Any]) -> Any:
        gw.config_path.write_text(json.dumps(new))
        return http_json(f"{gw.url}/admin/config/reload", {})

    async def during(action: Any) -> LoadResult:
        result = LoadResult()
        stop = asyncio.Event()
        load = asyncio.create_task(
            run_load(
                gw.predict_url("echo"), body, concurrency=4, duration=60, stop=stop, sink=result
            )
        )
        await asyncio.sleep(0.3)
        await asyncio.to_thread(action)
        await asyncio.sleep(0.3)
        stop.set()
        await load
        return result

    # Another timeout rebuilds the backend's pool: the same processes serve in the new pool.
    config["backends"]["echo"]["timeout"] = "400ms"
    result = asyncio.run(during(lambda: reload(config)))
    assert result.failed == [] and result.tiers()["primary"] == len(result)
    assert sorted(pids(gw)) == first

    # Another command: replicas are replaced one at a time, a new one serving before an old
    # one leaves.
    changed = managed_config(stack, server_command("b"), min=2, max=2, ports=ports)
    changed["gateway"] = config["gateway"]
    changed["backends"]["echo"]["timeout"] = "400ms"

    def roll() -> None:
        reload(changed)
        assert wait_until(
            lambda: settled(gw, 2) and not set(pids(gw)) & set(first), timeout=60, interval=0.1
        ), supervisor(gw)

    result = asyncio.run(during(roll))
    assert result.failed == []
    assert result.tiers()["primary"] == len(result)
