"""Freshness: model ages from the registry, config or first sight; feature ages from inputs;
both turn freshness events bad; config checks name key paths."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest
from prometheus_client import CollectorRegistry, Histogram

from failwell.config import parse_config
from failwell.config.observe import FreshnessConfig, SloConfig
from failwell.contracts import Answer, Exchange
from failwell.errors import ConfigError
from failwell.gateway import Gateway
from failwell.health.freshness import (
    ModelAgeCollector,
    ModelAges,
    RouteFreshness,
    parse_time,
)
from failwell.health.slo import RouteSlo, Sli
from failwell.observe import families
from failwell.registry import Registry
from failwell.registry.artifacts import Version
from failwell.registry.serving import RegistryModel
from failwell.registry.stores import LocalStore
from failwell.testing import FakeClock

T0 = 1_800_000_000.0  # 2027-01-15T08:00:00Z
ISO0 = dt.datetime.fromtimestamp(T0, dt.UTC).isoformat()


def exchange(
    tier: int, inputs: dict[str, Any], backend: str = "m", version: str = "v1"
) -> Exchange:
    ex = Exchange("id", {}, "/v1/predict/r", route="r", status=200, inputs=inputs)
    ex.answer = Answer({}, f"t{tier}", "q", backend, version, 0.01, tier)
    return ex


def histogram() -> Histogram:
    return families.FEATURE_AGE.histogram(CollectorRegistry())


def registry_model(version: str, created: str) -> RegistryModel:
    v = Version("m", version, "sha256:x", "file", (), created=created)
    return cast(RegistryModel, SimpleNamespace(version=v))


def test_parse_time_reads_epoch_seconds_and_iso_8601() -> None:
    assert parse_time(T0) == T0
    assert parse_time(int(T0)) == T0
    assert parse_time(ISO0) == T0
    assert parse_time(ISO0.replace("+00:00", "")) == T0  # no zone: UTC
    assert parse_time("2027-01-15T10:00:00+02:00") == T0
    assert parse_time("yesterday") is None
    assert parse_time(True) is None
    assert parse_time(None) is None


def test_model_age_sources_registry_then_config_then_first_seen() -> None:
    clock = FakeClock(T0)
    ages = ModelAges(
        {"conf": T0 - 7200}, {"reg": registry_model("v3", "2027-01-15T07:00:00+00:00")}, clock
    )
    ages.backends |= {"plain"}
    assert ages.age("reg", "m@v3") == 3600.0  # the registry's time of the serving version
    assert ages.age("conf", "anything") == 7200.0  # model_created
    ages(exchange(0, {}, "plain", "v1"))  # first sight of v1
    clock.advance(100)
    assert ages.age("plain", "v1") == 100.0
    ages(exchange(0, {}, "plain", "v2"))  # a new version starts its own count
    clock.advance(50)
    assert ages.age("plain", "v2") == 50.0
    assert ages.age("plain", "v1") == 150.0
    # a version of a registry backend other than the serving one: first sight
    assert ages.age("reg", "m@v4") == 0.0
    ages(exchange(0, {}, "cache", "v1"))  # not a backend: ignored
    collector = dict(
        (s.labels["backend"], s.value)
        for s in next(iter(ModelAgeCollector(ages).collect())).samples
    )
    assert collector == {"conf": 7350.0, "plain": 50.0, "reg": 3750.0}


def route_slo(clock: FakeClock, fresh: FreshnessConfig, ages: ModelAges) -> RouteSlo:
    return RouteSlo(
        "r",
        SloConfig(availability=0.99),
        clock,
        RouteFreshness("r", fresh, ages, histogram(), clock),
    )


def test_stale_features_and_old_models_are_bad_freshness_events() -> None:
    clock = FakeClock(T0)
    ages = ModelAges({"m": T0 - 86400}, {}, clock)
    fresh = FreshnessConfig(max_model_age=3 * 86400, features={"ts": 3600, "iso": 3600})
    slo = route_slo(clock, fresh, ages)
    assert Sli.FRESHNESS in slo.objectives
    recent = dt.datetime.fromtimestamp(T0 - 60, dt.UTC).isoformat()
    slo.record(exchange(0, {"ts": T0 - 60, "iso": recent}))  # good
    slo.record(exchange(1, {"ts": T0 - 7200, "iso": recent}))  # stale float feature
    slo.record(exchange(0, {"ts": T0, "iso": "2000-01-01T00:00:00Z"}))  # stale iso feature
    slo.record(exchange(0, {"ts": T0, "iso": "not a time"}))  # unreadable: bad
    figure = slo.figure(Sli.FRESHNESS, 60)
    assert (figure.events, figure.bad) == (4, 3)
    clock.advance(3 * 86400)  # the model is now 4 days old: tier-1 answers turn bad
    slo.record(exchange(0, {"ts": clock.wall(), "iso": ISO0.replace("2027", "2030")}))
    slo.record(exchange(1, {"ts": clock.wall(), "iso": ISO0.replace("2027", "2030")}))
    figure = slo.figure(Sli.FRESHNESS, 60)
    assert (figure.events, figure.bad) == (2, 1)  # only the tier-1 answer counts the model


def test_feature_ages_land_in_the_histogram() -> None:
    clock = FakeClock(T0)
    h = histogram()
    check = RouteFreshness(
        "r", FreshnessConfig(features={"ts": 3600}), ModelAges({}, {}, clock), h, clock
    )
    assert not check.stale(exchange(0, {"ts": T0 - 5}))
    assert check.stale(exchange(0, {"ts": T0 - 7200}))
    assert not check.stale(exchange(0, {"ts": T0 + 30}))  # clock skew: age 0
    samples = {s.name: s.value for s in next(iter(h.collect())).samples if "le" not in s.labels}
    assert samples["failwell_feature_age_seconds_count"] == 3
    assert samples["failwell_feature_age_seconds_sum"] == 7205.0


BASE: dict[str, Any] = {
    "backends": {
        "ranker": {"protocol": "python", "target": "failwell.testing.models:Echo"},
    },
    "routes": {
        "r": {
            "input": {"user_id": "str", "ts": "float", "day": "str", "n": "int"},
            "tiers": [{"name": "primary", "backend": "ranker"}, {"name": "s", "value": 1}],
            "slo": {"freshness": {"max_model_age": "30d", "features": {"ts": "6h"}}},
        }
    },
}


def issues(route_slo: dict[str, Any], **backend: Any) -> list[str]:
    data = {
        "backends": {"ranker": {**BASE["backends"]["ranker"], **backend}},
        "routes": {"r": {**BASE["routes"]["r"], "slo": route_slo}},
    }
    with pytest.raises(ConfigError) as info:
        parse_config(data, env={})
    return [str(i) for i in info.value.issues]


def test_freshness_config_loads() -> None:
    cfg = parse_config(
        {
            **BASE,
            "backends": {
                "ranker": {**BASE["backends"]["ranker"], "model_created": "2027-01-01T00:00:00"}
            },
        },
        env={},
    )
    fresh = cfg.routes["r"].slo.freshness
    assert fresh is not None and fresh.features == {"ts": 6 * 3600.0}
    assert fresh.max_model_age == 30 * 86400.0
    created = cfg.backends["ranker"].model_created
    assert created is not None and created.tzinfo is dt.UTC


def test_freshness_config_errors_name_key_paths() -> None:
    where = "routes.r.slo.freshness"
    assert issues({"freshness": {"features": {"missing": "1h"}}}) == [
        f"{where}.features.missing: not in the route's input"
    ]
    [message] = issues({"freshness": {"features": {"n": "1h", "day": "1h"}}})
    assert message.startswith(f"{where}.features.n: the input field is int")
    [message] = issues({"freshness": {"features": {"ts": "0s"}}})
    assert message.startswith(where)
    [message] = issues({"freshness": {"max_model_age": "soon"}})
    assert message.startswith(f"{where}.max_model_age")
    [message] = issues({}, model_created="last tuesday")
    assert message.startswith("backends.ranker.model_created")


def test_a_registry_backend_ages_from_its_version_created_time(tmp_path: Path) -> None:
    registry = tmp_path / "reg"
    model = tmp_path / "model"
    model.mkdir()
    (model / "tunable.json").write_text("{}")
    reg = Registry(LocalStore(registry), [])
    version = reg.push("m", model)
    reg.set_alias("m", "production", version.version)
    cfg = parse_config(
        {
            "gateway": {"cache": {"path": ":memory:"}},
            "registry": {"path": str(registry), "checkouts": str(tmp_path / "co")},
            "backends": {
                "m": {
                    "protocol": "python",
                    "target": "failwell.testing.models:Tunable",
                    "model_ref": "m@production",
                    "model_created": "2000-01-01T00:00:00",  # the registry's time wins
                }
            },
            "routes": {"r": {"input": {"x": "float"}, "tiers": [{"name": "t", "backend": "m"}]}},
        },
        env={},
    )
    gateway = Gateway(cfg)
    ages = gateway.health.model_ages
    created = parse_time(version.created)
    assert created is not None
    assert ages.created("m", "m@v1") == created
    [(backend, age)] = list(ages.current())  # before any traffic: the serving version
    assert backend == "m" and 0 <= age < 3600
