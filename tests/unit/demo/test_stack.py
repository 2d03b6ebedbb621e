"""The demo stack's gateway config and its start-up checks."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import yaml

from failwell.config import RouteKind, TierKind, WireProtocol, load_config, parse_config
from failwell.config.paths import anchor_stores
from failwell.demo.images import ImagesDemo
from failwell.demo.stack import DemoPorts, demo_config, run_demo


def test_demo_config_is_valid(tmp_path: Path) -> None:
    cfg = parse_config(demo_config(tmp_path, 18080, 19001))
    assert cfg.gateway.port == 18080
    assert cfg.gateway.cache.path == str(tmp_path / "cache.sqlite")
    ranker = cfg.backends["ranker"]
    assert ranker.protocol is WireProtocol.V2 and ranker.timeout == pytest.approx(0.08)
    assert [(r.url, r.zone, r.priority) for r in ranker.replicas] == [
        ("http://127.0.0.1:19001", "east", 0),
        ("http://127.0.0.1:19002", "east", 0),
        ("http://127.0.0.1:19101", "west", 1),
    ]
    assert cfg.backends["light"].args == {"model_dir": str(tmp_path / "models")}
    assert cfg.backends["chat-large"].replicas[0].url == "http://127.0.0.1:19201"
    assert cfg.backends["chat-small"].replicas[0].url == "http://127.0.0.1:19202"
    recommend, chat = cfg.routes["recommend"], cfg.routes["chat"]
    assert recommend.deadline == pytest.approx(0.15)
    assert [t.kind for t in recommend.tiers] == [
        TierKind.MODEL,
        TierKind.MODEL,
        TierKind.RULES,
        TierKind.CACHE,
        TierKind.STATIC,
    ]
    assert recommend.tiers[-1].static_value == {"items": list(range(1, 21))}
    assert chat.kind is RouteKind.CHAT
    assert [t.name for t in chat.tiers] == ["primary", "fallback", "rules", "cache", "static"]


def test_demo_config_with_the_image_route_is_valid(tmp_path: Path) -> None:
    images = ImagesDemo(tmp_path, 19401)
    cfg = parse_config(demo_config(tmp_path, 18080, 19001, images=images))
    backend = cfg.backends["images"]
    assert backend.replicas[0].url == "http://127.0.0.1:19401" and backend.model == "images"
    route = cfg.routes["images"]
    assert [t.name for t in route.tiers] == ["primary", "fallback"]
    assert route.tensors is not None and route.tensors.inputs == {}  # specs from MLServer


def test_demo_config_survives_yaml(tmp_path: Path) -> None:
    path = tmp_path / "failwell.yaml"
    path.write_text(yaml.safe_dump(demo_config(tmp_path), sort_keys=False))
    expected = anchor_stores(parse_config(demo_config(tmp_path)), tmp_path.resolve())
    assert load_config(path) == expected  # defaults (registry, flags, log) land beside the file


def test_ports_follow_the_base_port() -> None:
    ports = DemoPorts.from_base(8080, 9001)
    assert ports.all() == (8080, 9001, 9002, 9101, 9201, 9202)


def test_run_demo_refuses_busy_ports(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert run_demo(tmp_path, gateway_port=port, base_port=port + 1) == 1
    assert f"port(s) {port}" in capsys.readouterr().err
    assert not (tmp_path / "models").exists()


def test_the_fleet_demo_config_shares_state_and_runs_many_workers(tmp_path: Path) -> None:
    from failwell.cli.workers import worker_count

    cfg = parse_config(demo_config(tmp_path, 18080, 19001, redis_port=19301))
    assert cfg.fleet is not None and cfg.fleet.redis == "redis://127.0.0.1:19301/0"
    assert worker_count(cfg, None) >= 1 and worker_count(cfg, 2) == 2  # nothing refuses N
    assert parse_config(demo_config(tmp_path)).fleet is None
