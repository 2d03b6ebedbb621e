"""Proving a store holds what its manifest says, and rebuilding a lost primary from a replica."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import msgspec

from failwell.errors import RegistryError
from failwell.registry.artifacts import (
    MANIFEST_KEY,
    Manifest,
    blob_key,
    decode_version,
    digest_of,
    sha256_bytes,
)
from failwell.registry.registry import Registry
from failwell.registry.stores import Store


@dataclass
class StoreReport:
    """What ``verify`` found on one store."""

    store: str
    versions: dict[str, str] = field(default_factory=dict)  # NAME@VERSION → digest
    aliases: dict[str, str] = field(default_factory=dict)  # NAME@ALIAS → version
    blobs: int = 0
    bytes: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_store(store: Store) -> StoreReport:
    """Read every blob and record the store's manifest names and check each SHA-256, each
    version's digest, and that every alias names a version that is there."""
    report = StoreReport(store.name)
    data = store.read(MANIFEST_KEY)
    if data is None:
        report.problems.append("no manifest")
        return report
    manifest = Manifest.decode(data)
    for sha, size in manifest.blobs.items():
        blob = store.read(blob_key(sha))
        if blob is None:
            report.problems.append(f"blob {sha[:12]}… missing")
        elif sha256_bytes(blob) != sha or len(blob) != size:
            report.problems.append(f"blob {sha[:12]}… corrupt")
        else:
            report.blobs += 1
            report.bytes += size
    alias_files: dict[str, dict[str, str]] = {}
    for key, sha in manifest.records.items():
        record = store.read(key)
        if record is None or sha256_bytes(record) != sha:
            report.problems.append(f"{key} {'missing' if record is None else 'corrupt'}")
            continue
        parts = key.split("/")
        if parts[2] == "aliases.json":
            alias_files[parts[1]] = msgspec.json.decode(record, type=dict[str, str])
            continue
        found = decode_version(record)
        if digest_of(found.files) != found.digest:
            report.problems.append(f"{found.ref}: digest does not match its files")
        for entry in found.files:
            if entry.sha256 not in manifest.blobs:
                report.problems.append(f"{found.ref}: {entry.path} has no blob in the manifest")
        report.versions[found.ref] = found.digest
    for name, aliases in alias_files.items():
        for alias, version in aliases.items():
            if f"{name}@{version}" not in report.versions:
                report.problems.append(f"{name}@{alias} names missing version {version}")
            report.aliases[f"{name}@{alias}"] = version
    return report


@dataclass
class RestoreReport:
    source: str
    copied: int
    seconds: float
    verified: StoreReport


def restore(registry: Registry, source: str) -> RestoreReport:
    """Copy every blob and record from the store named ``source`` into the primary, checking
    each SHA-256 on the way, write the manifest last, then verify the primary."""
    started = time.perf_counter()
    src = registry.store(source)
    if src is registry.primary:
        raise RegistryError("restore copies from a replica into the primary; name a replica")
    before = verify_store(src)
    if before.problems:
        raise RegistryError(f"replica {source!r} is not sound: {'; '.join(before.problems[:5])}")
    manifest_bytes = src.read(MANIFEST_KEY)
    assert manifest_bytes is not None
    manifest = Manifest.decode(manifest_bytes)
    copied = 0
    for sha in manifest.blobs:
        key = blob_key(sha)
        data = src.read(key)
        if data is None or sha256_bytes(data) != sha:
            raise RegistryError(f"replica {source!r}: blob {sha[:12]}… changed during restore")
        if registry.primary.read(key) != data:
            registry.primary.write(key, data)
            copied += 1
    for key, sha in manifest.records.items():
        data = src.read(key)
        if data is None or sha256_bytes(data) != sha:
            raise RegistryError(f"replica {source!r}: {key} changed during restore")
        registry.primary.write(key, data)
        copied += 1
    registry.primary.write(MANIFEST_KEY, manifest_bytes)
    after = verify_store(registry.primary)
    if after.versions != before.versions:
        after.problems.append("restored versions differ from the replica's")
    return RestoreReport(source, copied, time.perf_counter() - started, after)
