from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from failwell.config import load_config, parse_config
from failwell.config.models import TierKind
from failwell.config.units import parse_duration, parse_size
from failwell.errors import ConfigError

BASE: dict[str, Any] = {
    "backends": {
        "ranker": {
            "protocol": "v2",
            "replicas": [{"url": "http://127.0.0.1:9001"}],
            "timeout": "100ms",
        },
        "light": {"protocol": "python", "target": "failwell.testing.models:Echo"},
    },
    "routes": {
        "recommend": {
            "input": {"user_id": "str"},
            "deadline": "150ms",
            "cache": {"key": "{user_id}", "ttl": "24h"},
            "tiers": [
                {"name": "primary", "backend": "ranker"},
                {"name": "fallback", "backend": "light"},
                {"name": "rules", "rules": "failwell.testing.models:constant_rule"},
                {"name": "cache"},
                {"name": "static", "value": {"items": [1, 2, 3]}},
            ],
        }
    },
}


def errors_of(data: Any, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(data, env=env or {})
    return [str(i) for i in info.value.issues]


def with_(path: str, value: Any) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(yaml.safe_dump(BASE))
    node: Any
    node = data
    parts = path.split(".")
    for p in parts[:-1]:
        node = node[int(p)] if p.isdigit() else node[p]
    last = parts[-1]
    if last.isdigit():
        node[int(last)] = value
    else:
        node[last] = value
    return data


def test_valid_config_loads_with_units_and_kinds() -> None:
    cfg = parse_config(BASE, env={})
    route = cfg.routes["recommend"]
    assert route.deadline == pytest.approx(0.150)
    assert route.cache.ttl == 86400
    assert cfg.backends["ranker"].timeout == pytest.approx(0.1)
    assert [t.kind for t in route.tiers] == [
        TierKind.MODEL,
        TierKind.MODEL,
        TierKind.RULES,
        TierKind.CACHE,
        TierKind.STATIC,
    ]


def test_unknown_backend_is_named_by_key_path() -> None:
    data = with_("routes.recommend.tiers.1", {"name": "fallback", "backend": "lite"})
    assert errors_of(data) == ["routes.recommend.tiers[1].backend: unknown backend 'lite'"]


def test_every_problem_is_reported_at_once() -> None:
    data = with_("routes.recommend.deadline", "soon")
    data["backends"]["ranker"]["timeout"] = "-1ms"
    data["backends"]["ranker"]["retry"] = {"attempts": 0}
    errs = errors_of(data)
    assert any(e.startswith("routes.recommend.deadline: invalid duration 'soon'") for e in errs)
    assert any(e.startswith("backends.ranker.retry.attempts:") for e in errs)
    assert any(e.startswith("backends.ranker.timeout:") for e in errs)


def test_unknown_keys_and_missing_keys() -> None:
    data = with_(
        "routes.recommend.tiers.0", {"name": "primary", "backend": "ranker", "qualty": "x"}
    )
    assert errors_of(data) == ["routes.recommend.tiers[0].qualty: unknown key"]
    data = with_("backends.ranker.replicas", [{"zone": "east"}])
    assert errors_of(data) == ["backends.ranker.replicas[0].url: required key is missing"]


def test_import_paths_are_checked() -> None:
    data = with_("routes.recommend.tiers.2", {"name": "rules", "rules": "failwell.nope:popular"})
    (err,) = errors_of(data)
    assert err.startswith("routes.recommend.tiers[2].rules: cannot import 'failwell.nope:popular'")


def test_env_and_file_secrets(tmp_path: Path) -> None:
    secret = tmp_path / "key"
    secret.write_text("s3cret\n")
    data = with_(
        "backends.chat",
        {
            "protocol": "openai",
            "api_key": f"file:{secret}",
            "replicas": [{"url": "http://${HOST}:9000"}],
        },
    )
    cfg = parse_config(data, env={"HOST": "127.0.0.1"})
    assert cfg.backends["chat"].api_key == "s3cret"
    assert cfg.backends["chat"].replicas[0].url == "http://127.0.0.1:9000"
    assert errors_of(data) == [
        "backends.chat.replicas[0].url: environment variable HOST is not set"
    ]


def test_cache_key_fields_must_exist() -> None:
    data = with_("routes.recommend.cache", {"key": "{user}"})
    assert errors_of(data) == ["routes.recommend.cache.key: unknown input field 'user'"]


def test_tier_with_two_kinds_is_refused() -> None:
    data = with_("routes.recommend.tiers.4", {"name": "static", "value": 1, "backend": "ranker"})
    (err,) = errors_of(data)
    assert err.startswith("routes.recommend.tiers[4]: a tier takes one of backend, rules, value")


def test_protocol_mismatch_with_route_kind() -> None:
    data = with_("routes.chat", {"kind": "chat", "tiers": [{"name": "p", "backend": "ranker"}]})
    assert errors_of(data) == [
        "routes.chat.tiers[0].backend: chat route cannot use v2 backend 'ranker'"
    ]


def test_load_config_reports_yaml_syntax(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("routes: {recommend: [\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert "invalid YAML at line" in str(info.value)
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "missing.yaml")
    assert "cannot read" in str(info.value)


def test_units() -> None:
    assert parse_duration("150ms") == pytest.approx(0.15)
    assert parse_duration("24h") == 86400
    assert parse_duration(2) == 2.0
    assert parse_size("1MiB") == 1024 * 1024
    with pytest.raises(ValueError):
        parse_duration("1 fortnight")


yaml_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.dictionaries(
        st.sampled_from(["gateway", "backends", "routes", "x"]), yaml_values, max_size=4
    )
)
def test_fuzzed_configs_only_raise_config_error(data: dict[str, Any]) -> None:
    try:
        parse_config(data, env={})
    except ConfigError as exc:
        assert exc.issues


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix] if prefix else []
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, (*prefix, i))
    return out


PATHS = _paths(BASE)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(PATHS), yaml_values)
def test_mutated_valid_config_fails_only_with_key_paths(path: tuple[Any, ...], value: Any) -> None:
    data = yaml.safe_load(yaml.safe_dump(BASE))
    node = data
    for p in path[:-1]:
        node = node[p]
    node[path[-1]] = value
    try:
        parse_config(data, env={})
    except ConfigError as exc:
        assert exc.issues and all(str(i) for i in exc.issues)


def test_fleet_section() -> None:
    assert parse_config(BASE).fleet is None  # no section: nothing shared
    cfg = parse_config(with_("fleet", {"redis": "redis://10.0.0.5:6379/0", "name": "prod"}))
    assert cfg.fleet is not None
    assert (cfg.fleet.name, cfg.fleet.instance, cfg.fleet.breakers) == ("prod", None, True)
    assert cfg.fleet.me  # host name and process id by default
    issues = errors_of(with_("fleet", {"redis": "http://x", "instance": "a b"}))
    assert any(i.startswith("fleet.redis") for i in issues), issues
    assert any(i.startswith("fleet.instance") for i in issues), issues
    issues = errors_of(
        with_("fleet", {"redis": "redis://h", "reconnect": "2s", "max_reconnect": "1s"})
    )
    assert any("max_reconnect" in i for i in issues), issues
