"""``failwell registry push --reference DATA`` stores the data's drift reference with the
version (replicated with its record); a bad data file is refused naming the line."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog
import yaml
from typer.testing import CliRunner

from failwell.cli.main import app
from failwell.config.registry import RegistryConfig
from failwell.drift.stats import Reference
from failwell.registry import open_registry


@pytest.fixture(autouse=True)
def _logging_kept() -> Iterator[None]:
    """The CLI points logging at the runner's captured stderr: put it back afterwards."""
    saved = structlog.get_config()
    yield
    structlog.configure(**saved)


def test_push_stores_the_reference_of_the_training_data(tmp_path: Path) -> None:
    config = tmp_path / "failwell.yaml"
    replica = f"file://{tmp_path / 'replica'}"
    registry = {"path": str(tmp_path / "reg"), "replicas": [{"name": "b", "url": replica}]}
    routes = {"r": {"input": {"x": "float"}, "tiers": [{"name": "s", "value": 1}]}}
    config.write_text(yaml.safe_dump({"registry": registry, "routes": routes}))
    model = tmp_path / "model.bin"
    model.write_bytes(b"weights")
    data = tmp_path / "train.jsonl"
    rows = [{"inputs": {"x": i / 10, "c": "ab"[i % 2]}, "label": i % 2} for i in range(200)]
    data.write_text("\n".join(json.dumps(r) for r in rows))
    pushed = CliRunner().invoke(
        app, ["registry", "push", "m", str(model), "--reference", str(data), "-c", str(config)]
    )
    assert pushed.exit_code == 0, pushed.output
    reg = open_registry(RegistryConfig.model_validate(registry))
    version = reg.get("m", "v1")
    reference = Reference.from_json(version.meta["reference"])
    assert set(reference.features) == {"x", "c"} and reference.count == 200
    replica_store = reg.replicas[0].store
    assert any("m" in key for key in replica_store.keys(""))  # the record went to the replica

    data.write_text('{"x": 1}\nnot json\n')
    refused = CliRunner().invoke(
        app, ["registry", "push", "m", str(model), "--reference", str(data), "-c", str(config)]
    )
    assert refused.exit_code == 2 and "line 2" in refused.output
