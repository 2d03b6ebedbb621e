"""The demo model server loads its ranker from the registry by alias; answers through the
gateway name the registry version."""

from __future__ import annotations

from pathlib import Path

import yaml

from failwell.registry import Registry
from failwell.registry.stores import LocalStore
from tests.integration.conftest import ModelServer, Stack, http_json


def test_model_server_serves_a_registry_alias(stack: Stack, tmp_path: Path, models: Path) -> None:
    reg = Registry(LocalStore(tmp_path / "registry"))
    version = reg.push("ranker", models, {"metrics": {"auc": 0.8}})
    reg.set_alias("ranker", "production", version.version)
    cfg = tmp_path / "registry.yaml"
    registry = {"path": str(tmp_path / "registry"), "checkouts": str(tmp_path / "co")}
    routes = {"r": {"input": {"x": "float"}, "tiers": [{"name": "s", "value": 1}]}}
    cfg.write_text(yaml.safe_dump({"routes": routes, "registry": registry}))
    server = ModelServer(
        stack, "reg", ["--model-ref", "ranker@production", "--registry-config", str(cfg)]
    )
    assert http_json(f"{server.url}/v2/models/ranker")["versions"] == ["ranker@v1"]
    backends = {"ranker": {"protocol": "v2", "replicas": [server.replica()]}}
    rec = {
        "input": {"user_id": "str", "country": "str", "category": "str"},
        "tiers": [{"name": "primary", "backend": "ranker"}, {"name": "s", "value": {}}],
    }
    gw = stack.gateway(stack.config(backends, {"recommend": rec}))
    inputs = {"user_id": "u1", "country": "de", "category": "books"}
    answer = http_json(gw.predict_url("recommend"), {"inputs": inputs})
    assert answer["tier"] == "primary" and answer["model_version"] == "ranker@v1"
    assert len(answer["outputs"]["items"]) == 10
