"""Canary output checks, probe thresholds (N down, M up), readiness policies, trace context."""

from __future__ import annotations

from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from failwell.api.exchange import exchange
from failwell.api.health import inference_health, readiness
from failwell.config import parse_config
from failwell.config.observe import CanaryCheck, HealthConfig
from failwell.errors import ConfigError
from failwell.gateway import Gateway
from failwell.health.canary import mismatch
from failwell.health.prober import HealthBoard, HealthProber
from failwell.resilience.breaker import Breaker, BreakerState
from failwell.resilience.retry import RetryPolicy
from failwell.routing.pool import Pool, Replica
from failwell.testing import FakeAdapter, FakeClock


def test_canary_checks() -> None:
    exact = CanaryCheck(inputs={}, expect={"items": [1, 2], "score": 0.5}, tolerance=0.01)
    assert mismatch(exact, {"items": [1, 2], "score": 0.505}) is None
    assert "differ" in (mismatch(exact, {"items": [2, 1], "score": 0.5}) or "")
    assert mismatch(exact, {"items": [1, 2], "score": 0.6}) is not None
    ranged = CanaryCheck(inputs={}, range={"score": (0.0, 1.0)}, keys=("score",))
    assert mismatch(ranged, {"score": [0.1, 0.9]}) is None
    assert "outside" in (mismatch(ranged, {"score": [0.1, 1.5]}) or "")
    assert "missing keys" in (mismatch(ranged, {"other": 1}) or "")
    assert mismatch(CanaryCheck(inputs={}), "anything") is None


async def _never(request: object, timeout: float) -> object:
    raise AssertionError("not called")


def test_probe_thresholds_tell_a_hiccup_from_an_outage() -> None:
    replica = Replica("a", FakeAdapter(_never), Breaker())  # type: ignore[arg-type]
    pools = {"m": Pool("m", [replica], RetryPolicy(1, 0, 0), 1.0)}
    board = HealthBoard(CollectorRegistry())
    board.bind(pools)
    prober = HealthProber(board, CollectorRegistry())
    cfg = HealthConfig(down_after=3, up_after=2)
    health = board.get("m", "a")
    for _ in range(2):
        prober.record(health, "timeout", cfg)
    assert replica.healthy  # a hiccup
    prober.record(health, None, cfg)
    prober.record(health, "timeout", cfg)
    prober.record(health, "timeout", cfg)
    assert replica.healthy  # the pass in between reset the count
    prober.record(health, "timeout", cfg)
    assert not replica.healthy and not replica.available()
    prober.record(health, None, cfg)
    assert not replica.healthy
    prober.record(health, None, cfg)
    assert replica.healthy
    health.canary = False  # a failing canary keeps it out whatever liveness says
    prober.record(health, None, cfg)
    assert not replica.healthy


def _gateway(fallback_only_ready: bool) -> Gateway:
    return Gateway(
        parse_config(
            {
                "gateway": {"cache": {"path": ":memory:"}},
                "backends": {"m": {"protocol": "v2", "replicas": [{"url": "http://h:1"}]}},
                "routes": {
                    "r": {
                        "input": {"x": "str"},
                        "slo": {"fallback_only_ready": fallback_only_ready},
                        "tiers": [{"name": "p", "backend": "m"}, {"name": "s", "value": 1}],
                    }
                },
            },
            resolve=False,
        )
    )


def test_readiness_needs_tier_one_unless_fallback_only_is_accepted() -> None:
    for accepted in (False, True):
        gw = _gateway(accepted)
        assert readiness(gw.routes, gw.cache, gw.readiness_checks)[0] is True
        gw.pools["m"].replicas[0].healthy = False
        ok, detail = readiness(gw.routes, gw.cache, gw.readiness_checks)
        assert ok is accepted
        check = detail["checks"]["route:r"]
        assert check.get("fallback_only", False) is accepted
        assert detail["status"] == ("degraded" if accepted else "not_ready")
        assert detail["degraded_routes"] == ["r"]
        # A global balancer asks for tier 1 everywhere, whatever the route accepts.
        assert readiness(gw.routes, gw.cache, gw.readiness_checks, tier1=True)[0] is False


def test_traceparent_is_started_or_propagated() -> None:
    ex = exchange({"path": "/", "headers": []})
    version, trace, span, flags = ex.upstream_headers["traceparent"].split("-")
    assert (version, len(trace), len(span), flags) == ("00", 32, 16, "01")
    given = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    ex = exchange({"path": "/", "headers": [(b"traceparent", given.encode())]})
    assert ex.upstream_headers["traceparent"] == given


def test_spans_follow_the_request_trace_when_opentelemetry_is_configured() -> None:
    pytest.importorskip("opentelemetry.sdk")
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from failwell.contracts import Answer
    from failwell.observe.tracing import span_observer

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    observe = span_observer()
    assert observe is not None
    ex = exchange({"path": "/v1/predict/r", "headers": []})
    ex.route, ex.status, ex.front_end = "r", 200, "predict"
    ex.answer = Answer({}, "primary", "full", "m", "v3", 0.004, 0)
    observe(ex)
    (span,) = exporter.get_finished_spans()
    trace_id = ex.upstream_headers["traceparent"].split("-")[1]
    assert format(span.context.trace_id, "032x") == trace_id
    assert span.attributes is not None and span.attributes["failwell.tier"] == "primary"
    assert span.end_time is not None and span.start_time is not None
    assert span.end_time - span.start_time == 4_000_000


def test_canary_inputs_are_checked_against_the_route_at_load() -> None:
    data = {
        "backends": {"m": {"protocol": "v2", "replicas": [{"url": "http://h:1"}]}},
        "routes": {
            "r": {
                "input": {"x": "str", "n": "int"},
                "canary": {"checks": [{"inputs": {"x": 1, "extra": True}}]},
                "tiers": [{"name": "rules", "rules": "failwell.demo.rules:popular"}],
            }
        },
        "alerts": {"webhook": "not-a-url"},
    }
    with pytest.raises(ConfigError) as err:
        parse_config(data, resolve=False)
    assert "alerts.webhook: expected an http:// or https:// URL" in str(err.value)
    data["alerts"] = {}
    with pytest.raises(ConfigError) as err:
        parse_config(data, resolve=False)
    text = str(err.value)
    assert "routes.r.canary: tier 1 is not a model tier" in text
    assert "routes.r.canary.checks[0].inputs.n: missing" in text
    assert "routes.r.canary.checks[0].inputs.extra: not in the route's input" in text
    assert "routes.r.canary.checks[0].inputs.x: expected str" in text


def test_http_backends_are_probed_by_default_and_false_turns_it_off() -> None:
    def backend(**extra: Any) -> Any:
        config = parse_config(
            {
                "backends": {"m": {"protocol": "v2", "replicas": [{"url": "http://h:1"}], **extra}},
                "routes": {"r": {"input": {"x": "str"}, "tiers": [{"name": "p", "backend": "m"}]}},
            },
            resolve=False,
        )
        return config.backends["m"].health

    assert backend().enabled and backend().interval == 2.0
    assert not backend(health=False).enabled
    assert backend(health={"interval": "1s", "timeout": "200ms"}).interval == 1.0


def test_a_half_open_replica_is_not_in_rotation_until_it_passes() -> None:
    clock = FakeClock()
    breaker = Breaker(1, 5.0, 1, clock)
    replica = Replica("a", FakeAdapter(_never), breaker)  # type: ignore[arg-type]
    breaker.record_failure()
    clock.advance(6.0)
    assert breaker.state is BreakerState.HALF_OPEN
    assert replica.available() and not replica.serving()  # it may take the probe call
    assert breaker.acquire()
    breaker.record_success()
    assert replica.serving()


def test_inference_health_without_a_canary_is_unknown_never_healthy() -> None:
    gw = _gateway(True)
    ok, detail = inference_health(gw.health.canaries, gw.routes)
    assert ok and detail["status"] == "unknown"
    assert detail["routes"]["r"]["status"] == "unknown"
