"""The composition root as a Python API, relative paths, and the keys a reload cannot apply."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
import yaml

import failwell
from failwell.config import load_config, parse_config
from failwell.errors import InvalidInput, UnknownRoute
from failwell.gateway.restart import needs_restart

CONFIG: dict[str, Any] = {
    "gateway": {"cache": {"path": "state/cache.sqlite"}},
    "log": {"enabled": True, "path": "state/log"},
    "control": {"flags_path": ":memory:"},
    "backends": {"echo": {"protocol": "python", "target": "failwell.testing.models:Echo"}},
    "routes": {
        "r": {
            "input": {"x": "float"},
            "tiers": [{"name": "model", "backend": "echo"}, {"name": "static", "value": 0}],
        }
    },
}


def test_relative_paths_mean_beside_the_config_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "conf" / "failwell.yaml"
    path.parent.mkdir()
    path.write_text(yaml.safe_dump(CONFIG))
    monkeypatch.chdir(tmp_path)  # the working directory is elsewhere
    config = load_config(Path("conf/failwell.yaml"))
    base = path.parent.resolve()
    assert config.gateway.cache.path == str(base / "state/cache.sqlite")
    assert config.log.path == str(base / "state/log")
    assert config.registry.path == str(base / ".failwell/registry")  # a default, anchored too
    assert config.control.flags_path == ":memory:"
    assert parse_config(CONFIG).log.path == "state/log"  # a dict keeps what it says


def test_the_python_api_answers_through_the_same_tiers_and_log(tmp_path: Path) -> None:
    path = tmp_path / "failwell.yaml"
    path.write_text(yaml.safe_dump(CONFIG))

    async def run() -> None:
        async with failwell.open(path) as gw:
            answer = await gw.predict("r", {"x": 2})
            assert (answer.tier, answer.quality, answer.outputs) == (
                "model",
                "full",
                {"echo": {"x": 2.0}},
            )
            with pytest.raises(InvalidInput) as bad:
                await gw.predict("r", {"x": "two"})
            assert bad.value.field == "x"
            with pytest.raises(UnknownRoute):
                await gw.predict("nope", {})
            text = gw.metrics.render().decode()
            assert 'failwell_requests_total{outcome="ok",route="r",tier="model"} 1.0' in text

    asyncio.run(run())
    records = list((tmp_path / "state" / "log").glob("inference/*"))
    assert records and b'"front_end":"python"' in b"".join(p.read_bytes() for p in records)


def test_a_reload_names_the_keys_that_need_a_restart() -> None:
    running = parse_config(CONFIG)
    changed = parse_config(
        {
            **CONFIG,
            "gateway": {"listen": "127.0.0.1:9999", "cache": {"path": "state/cache.sqlite"}},
            "routes": {"r": {**CONFIG["routes"]["r"], "deadline": "2s"}},  # applies on reload
        }
    )
    assert needs_restart(running, changed) == ["gateway.listen"]
    assert needs_restart(running, running) == []


def test_check_names_the_keys_a_running_gateway_needs_a_restart_for(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from failwell.cli.main import app
    from failwell.reload.history import ConfigHistory, config_version

    path = tmp_path / "failwell.yaml"
    text = yaml.safe_dump(CONFIG)
    path.write_text(text)
    ConfigHistory(path).record("applied", config_version(text), text, source="start")
    edited = {**CONFIG, "gateway": {**CONFIG["gateway"], "listen": "127.0.0.1:9999"}}
    path.write_text(yaml.safe_dump(edited))
    shown = CliRunner().invoke(app, ["check", "--config", str(path)])
    assert shown.exit_code == 0, shown.output
    assert "needs a restart gateway.listen" in " ".join(shown.output.split())


def test_a_gateway_beyond_loopback_needs_keys_or_an_explicit_opt_out() -> None:
    from failwell.errors import ConfigError

    exposed = {**CONFIG, "gateway": {**CONFIG["gateway"], "listen": "0.0.0.0:8080"}}
    with pytest.raises(ConfigError) as refused:
        parse_config(exposed)
    [issue] = refused.value.issues
    assert issue.path == "gateway.listen" and "security.keys" in issue.message
    assert parse_config({**exposed, "security": {"open_beyond_loopback": True}})
    keyed = {"keys": [{"name": "app", "secret": "s3cret-0123456789", "scopes": ["predict:*"]}]}
    assert parse_config({**exposed, "security": keyed})
    local = {**CONFIG, "gateway": {**CONFIG["gateway"], "listen": "[::1]:8080"}}
    assert parse_config(local)


def test_without_keys_the_admin_api_answers_loopback_clients_only() -> None:
    from failwell.api.app import App
    from failwell.gateway import Gateway
    from failwell.testing.asgi import asgi_call

    local = {"gateway": {"cache": {"path": ":memory:"}}, "log": {"enabled": False}}
    gateway = Gateway(parse_config({**CONFIG, **local}))
    app = App(gateway)

    async def run() -> tuple[int, int]:
        local = await asgi_call(app, "GET", "/admin/status", client=("127.0.0.1", 5000))
        remote = await asgi_call(app, "GET", "/admin/status", client=("10.1.2.3", 5000))
        return local.status, remote.status

    assert asyncio.run(run()) == (200, 403)
