"""The request path's tallies expose exactly what prometheus_client's own Counter, Gauge and
Histogram expose for the same updates, so dashboards, alerts and KEDA queries read the same."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from failwell.observe.family import counter, gauge, histogram
from failwell.observe.tally import CounterTally, GaugeTally, HistogramTally

C = counter("failwell_t_requests", "Requests.", "route", "tier")
G = gauge("failwell_t_in_flight", "In flight.", "route")
H = histogram("failwell_t_seconds", "Seconds.", "route", buckets=(0.001, 0.01, 0.1, 1.0))
LATENCIES = (0.0, 0.001, 0.0011, 0.01, 0.05, 0.1, 0.99, 1.0, 2.5, 30.0)


def test_same_exposition_as_prometheus_client() -> None:
    ours, theirs = CollectorRegistry(), CollectorRegistry()
    c, g, h = CounterTally(C, ours), GaugeTally(G, ours), HistogramTally(H, ours)
    pc, pg, ph = C.counter(theirs), G.gauge(theirs), H.histogram(theirs)
    for i, seconds in enumerate(LATENCIES):
        route = "a" if i % 3 else "b"
        c.inc((route, "primary"))
        pc.labels(route, "primary").inc()
        h.observe((route,), seconds)
        ph.labels(route).observe(seconds)
    c.inc(("a", "static"), 2.5)
    pc.labels("a", "static").inc(2.5)
    level = g.child(("a",))
    for _ in range(3):
        level.inc()
        pg.labels("a").inc()
    level.dec()
    pg.labels("a").dec()
    g.child(("b",)).set(7)
    pg.labels("b").set(7)
    assert generate_latest(ours) == generate_latest(theirs)
    assert ours.get_sample_value("failwell_t_seconds_bucket", {"route": "a", "le": "0.01"}) == 2


def test_a_counter_never_falls() -> None:
    c = CounterTally(C, CollectorRegistry())
    with pytest.raises(ValueError, match="failwell_t_requests"):
        c.inc(("a", "b"), -1)
    assert c.values == {}


def test_a_name_is_registered_once() -> None:
    registry = CollectorRegistry()
    CounterTally(C, registry)
    with pytest.raises(ValueError, match="Duplicated"):
        C.counter(registry)
