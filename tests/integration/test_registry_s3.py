"""The registry replicated to a real S3-compatible server (moto's standalone server) on
loopback, driven through the CLI: push, alias, corrupt the primary, verify, restore."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from failwell.config.registry import ReplicationMode
from failwell.demo.procs import ManagedProcess
from failwell.registry import Registry
from failwell.registry.artifacts import blob_key
from failwell.registry.recovery import verify_store
from failwell.registry.replication import ReplicaTarget
from failwell.registry.stores import FsspecStore, LocalStore
from tests.integration.conftest import free_port

CREDS = {"key": "testing", "secret": "testing"}


@pytest.fixture
def s3_url(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    proc = ManagedProcess("moto", log_file=tmp_path / "moto.log")
    proc.start(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        ready_url=f"http://127.0.0.1:{port}/moto-api/",
        timeout=60,
    )
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.stop(grace=2)


def s3_registry(tmp: Path, endpoint: str) -> Registry:
    s3 = FsspecStore("s3://models/registry", "s3", {"endpoint_url": endpoint, **CREDS})
    return Registry(LocalStore(tmp / "primary"), [ReplicaTarget(s3, ReplicationMode.SYNC)])


def cli(config: Path, *args: str, group: str = "registry") -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "failwell", group, *args, "--config", str(config)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)


def write_config(tmp: Path, endpoint: str) -> Path:
    import s3fs

    s3fs.S3FileSystem(endpoint_url=endpoint, **CREDS).mkdir("models")
    cfg: dict[str, Any] = {
        "routes": {"r": {"input": {"x": "float"}, "tiers": [{"name": "s", "value": 1}]}},
        "registry": {
            "path": str(tmp / "primary"),
            "checkouts": str(tmp / "checkouts"),
            "replicas": [
                {
                    "name": "s3",
                    "url": "s3://models/registry",
                    "mode": "sync",
                    "options": {"endpoint_url": endpoint, **CREDS},
                }
            ],
        },
    }
    path = tmp / "failwell.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_s3_replica_serves_corrupt_reads_and_restores_a_lost_primary(
    tmp_path: Path, s3_url: str
) -> None:
    config = write_config(tmp_path, s3_url)
    model = tmp_path / "model.bin"
    model.write_bytes(b"weights-1")
    pushed = cli(config, "push", "ranker", str(model), "--meta", "metrics.auc=0.81", "--json")
    assert pushed.returncode == 0, pushed.stderr
    v1 = json.loads(pushed.stdout)
    model.write_bytes(b"weights-2")
    reg = s3_registry(tmp_path, s3_url)  # the same registry in-process: fewer CLI start-ups
    assert reg.push("ranker", model).version == "v2"
    assert cli(config, "alias", "ranker", "production", "v1").returncode == 0
    reg.set_alias("ranker", "production", "v2")
    assert verify_store(reg.store("s3")).versions.keys() == {"ranker@v1", "ranker@v2"}

    # Corrupt the primary's copy of v1: the read is served from S3, and the primary repaired.
    blob = tmp_path / "primary" / blob_key(v1["files"][0]["sha256"])
    blob.write_bytes(b"bit rot!!")
    assert any("corrupt" in p for p in verify_store(reg.primary).problems)
    shown = cli(config, "show", "ranker@v1", "--checkout", "--json")
    assert shown.returncode == 0, shown.stderr
    checked = Path(json.loads(shown.stdout)["checkout"])
    assert checked.read_bytes() == b"weights-1"
    assert blob.read_bytes() == b"weights-1"

    # Lose the primary entirely; rebuild it from S3 with identical checksums.
    before = json.loads(cli(config, "verify", "--json").stdout)
    assert before["primary"]["ok"] and before["s3"]["ok"]
    shutil.rmtree(tmp_path / "primary")
    restored = cli(config, "restore", "--from", "s3", "--json")
    assert restored.returncode == 0, restored.stderr
    report = json.loads(restored.stdout)
    assert report["ok"] and report["versions"] == before["primary"]["versions"]
    assert report["aliases"] == {"ranker@production": "v2", "ranker@previous": "v1"}
    assert reg.rollback("ranker") == ("v2", "v1")

    # The DR drill: a scratch copy of the primary destroyed and rebuilt from S3.
    drilled = cli(config, "drill", "--json", group="dr")
    assert drilled.returncode == 0, drilled.stdout + drilled.stderr
    result = json.loads(drilled.stdout)
    assert result["ok"] and result["restored"] == result["versions"] == 2
    assert result["lost_versions"] == [] and result["changed_aliases"] == []
    print(f"\nDR drill recovery time from S3: {result['recovery_seconds']:.3f}s")
