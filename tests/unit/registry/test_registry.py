"""The registry on local folders: push, aliases, verify-on-read with fallback, restore."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from failwell.config.registry import ReplicationMode
from failwell.errors import ArtifactCorrupt, RegistryError
from failwell.registry import Registry
from failwell.registry.artifacts import blob_key
from failwell.registry.drill import drill
from failwell.registry.recovery import restore, verify_store
from failwell.registry.replication import ReplicaTarget
from failwell.registry.stores import FsspecStore, LocalStore


def make(tmp: Path, mode: ReplicationMode = ReplicationMode.SYNC) -> Registry:
    replica = FsspecStore(f"file://{tmp / 'replica'}", "standby")
    return Registry(LocalStore(tmp / "primary"), [ReplicaTarget(replica, mode)])


def artifact(tmp: Path, text: str) -> Path:
    folder = tmp / f"art-{text}"
    (folder / "sub").mkdir(parents=True, exist_ok=True)
    (folder / "model.txt").write_text(text)
    (folder / "sub" / "meta.json").write_text('{"k": 1}')
    return folder


def test_push_versions_are_content_addressed_and_immutable(tmp_path: Path) -> None:
    reg = make(tmp_path)
    v1 = reg.push("ranker", artifact(tmp_path, "a"), {"metrics": {"auc": 0.8}}, creator="ci")
    v2 = reg.push("ranker", artifact(tmp_path, "b"))
    v3 = reg.push("ranker", artifact(tmp_path, "a"))
    assert (v1.version, v2.version, v3.version) == ("v1", "v2", "v3")
    assert v1.digest == v3.digest != v2.digest
    assert v1.meta == {"metrics": {"auc": 0.8}} and v1.creator == "ci"
    assert v2.parent == "v1"
    assert [v.version for v in reg.versions("ranker")] == ["v1", "v2", "v3"]
    assert reg.names() == ["ranker"]
    assert verify_store(reg.primary).ok and verify_store(reg.store("standby")).ok


def test_aliases_and_rollback(tmp_path: Path) -> None:
    reg = make(tmp_path)
    for text in "abc":
        reg.push("m", artifact(tmp_path, text))
    reg.set_alias("m", "production", "v1")
    reg.set_alias("m", "production", "v2")
    assert reg.aliases("m") == {"production": "v2", "previous": "v1"}
    assert reg.resolve("m@production").version == "v2"
    assert reg.rollback("m") == ("v2", "v1")
    assert reg.resolve("m@production").version == "v1"
    with pytest.raises(RegistryError, match="no version"):
        reg.set_alias("m", "canary", "v9")
    with pytest.raises(RegistryError, match="NAME@"):
        reg.resolve("m")


def test_corrupt_primary_is_served_from_the_replica_and_repaired(tmp_path: Path) -> None:
    reg = make(tmp_path)
    v = reg.push("m", artifact(tmp_path, "a"))
    entry = next(f for f in v.files if f.path == "model.txt")
    blob = tmp_path / "primary" / blob_key(entry.sha256)
    blob.write_bytes(b"bit rot")
    out = reg.checkout(reg.resolve("m@v1"), tmp_path / "co")
    assert (out / "model.txt").read_text() == "a"
    assert reg.fallbacks == 1
    assert blob.read_bytes() == b"a"  # repaired
    (tmp_path / "replica" / blob_key(entry.sha256)).write_bytes(b"rot too")
    blob.write_bytes(b"bit rot")
    shutil.rmtree(tmp_path / "co")
    with pytest.raises(ArtifactCorrupt):
        reg.checkout(v, tmp_path / "co")


def test_an_alias_move_caught_half_way_reads_as_the_manifest_names_it(tmp_path: Path) -> None:
    reg = make(tmp_path)
    for text in "ab":
        reg.push("m", artifact(tmp_path, text))
    reg.set_alias("m", "production", "v1")
    # A writer in another process has replaced the alias file on both stores, not yet either
    # manifest: a reader gets the committed aliases, nothing is "corrupt" or repaired.
    moving = b'{"previous":"v1","production":"v2"}'
    for folder in ("primary", "replica"):
        (tmp_path / folder / "models/m/aliases.json").write_bytes(moving)
    assert reg.aliases("m") == {"production": "v1"}
    assert reg.resolve("m@production").version == "v1"
    assert reg.fallbacks == 0
    assert (tmp_path / "primary" / "models/m/aliases.json").read_bytes() == moving
    # The primary without that copy (a registry from before copies were kept): the standby's
    # committed aliases serve, and the read writes the copy back, never over the moving file.
    manifest = json.loads((tmp_path / "replica" / "MANIFEST.json").read_bytes())
    sha = manifest["records"]["models/m/aliases.json"]
    committed = (tmp_path / "primary" / blob_key(sha)).read_bytes()
    (tmp_path / "replica" / "models/m/aliases.json").write_bytes(committed)
    (tmp_path / "primary" / blob_key(sha)).unlink()
    assert reg.aliases("m") == {"production": "v1"}
    assert reg.fallbacks == 1
    assert (tmp_path / "primary" / blob_key(sha)).read_bytes() == committed
    assert (tmp_path / "primary" / "models/m/aliases.json").read_bytes() == moving
    reg.set_alias("m", "production", "v2")  # the move lands
    assert reg.aliases("m") == {"production": "v2", "previous": "v1"}
    assert verify_store(reg.primary).ok and verify_store(reg.store("standby")).ok


def test_restore_rebuilds_a_deleted_primary_with_identical_checksums(tmp_path: Path) -> None:
    reg = make(tmp_path)
    for text in "ab":
        reg.push("m", artifact(tmp_path, text))
    reg.set_alias("m", "production", "v2")
    before = verify_store(reg.primary)
    shutil.rmtree(tmp_path / "primary")
    report = restore(reg, "standby")
    assert report.verified.ok
    assert report.verified.versions == before.versions
    assert report.verified.aliases == before.aliases == {"m@production": "v2"}


def test_async_replica_lags_until_drained(tmp_path: Path) -> None:
    reg = make(tmp_path, ReplicationMode.ASYNC)
    reg.push("m", artifact(tmp_path, "a"))
    (lag,) = reg.replicator.lag()
    assert lag.pending > 0
    assert not (tmp_path / "replica" / "MANIFEST.json").exists()
    assert reg.replicator.drain() == lag.pending
    assert reg.replicator.lag()[0].pending == 0
    assert verify_store(reg.store("standby")).ok


def test_drill_restores_a_scratch_copy_and_reports_lost_versions(tmp_path: Path) -> None:
    reg = make(tmp_path, ReplicationMode.ASYNC)
    reg.push("m", artifact(tmp_path, "a"))
    reg.set_alias("m", "production", "v1")
    reg.replicator.drain()
    reg.push("m", artifact(tmp_path, "b"))  # not on the replica yet
    report = drill(reg, "standby", scratch=tmp_path)
    assert report.lost_versions == ["m@v2"] and not report.ok
    assert report.replica_lag >= 0 and report.restored == 1
    assert verify_store(reg.primary).versions.keys() == {"m@v1", "m@v2"}  # untouched
    reg.replicator.drain()
    assert drill(reg, "standby", scratch=tmp_path).ok


def test_a_model_ref_that_cannot_be_served_is_a_config_error(tmp_path: Path) -> None:
    from failwell.config import parse_config
    from failwell.errors import ConfigError
    from failwell.gateway import Gateway

    cfg = parse_config(
        {
            "gateway": {"cache": {"path": ":memory:"}},
            "registry": {"path": str(tmp_path / "reg")},
            "backends": {
                "m": {
                    "protocol": "python",
                    "target": "failwell.testing.models:Tunable",
                    "model_ref": "m@production",
                }
            },
            "routes": {"r": {"input": {"x": "float"}, "tiers": [{"name": "t", "backend": "m"}]}},
        }
    )
    with pytest.raises(ConfigError) as err:
        Gateway(cfg)
    assert err.value.issues[0].path == "backends.m.model_ref"


def test_config_version_ignores_layout_and_comments() -> None:
    from failwell.reload.history import config_version

    a = "routes:\n  r: {input: {x: str}}\n"
    b = "# a comment\nroutes:\n  r:\n    input:\n      x: str\n"
    assert config_version(a) == config_version(b) != config_version(a.replace("str", "int"))
