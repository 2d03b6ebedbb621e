"""The model registry: push immutable versions, move aliases, read with verification.

Every read checks SHA-256: blobs against their name, records and alias files against the
manifest. A record's bytes are also kept under their checksum, so a reader that meets an alias
move half-way (the file written, the manifest not yet) reads what the manifest names. When the
primary's copy is missing or corrupt, the read falls back to each replica in turn and repairs
the primary with the good bytes (a record only under its checksum: a read never writes over a
record's file, which may be a move in progress).
"""

from __future__ import annotations

import getpass
import shutil
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec

from failwell.errors import ArtifactCorrupt, RegistryError
from failwell.observe.logging import log
from failwell.registry.artifacts import (
    MANIFEST_KEY,
    FileEntry,
    Manifest,
    Version,
    aliases_key,
    blob_key,
    check_name,
    decode_version,
    digest_of,
    encode_json,
    parse_ref,
    record_key,
    sha256_bytes,
    sha256_file,
    walk_artifact,
)
from failwell.registry.replication import ReplicaTarget, Replicator
from failwell.registry.stores import Store

PRODUCTION, PREVIOUS = "production", "previous"


def _bad(data: bytes | None, sha: str) -> bool:
    return data is None or sha256_bytes(data) != sha


class Registry:
    def __init__(self, primary: Store, replicas: Sequence[ReplicaTarget] = ()) -> None:
        self.primary = primary
        self.replicas = list(replicas)
        self.replicator = Replicator(primary, self.replicas)
        self.fallbacks = 0  # reads served from a replica because the primary's copy was bad

    def store(self, name: str) -> Store:
        for s in [self.primary, *(r.store for r in self.replicas)]:
            if s.name == name:
                return s
        raise RegistryError(f"no store named {name!r}")

    # -- verified reads -------------------------------------------------------------------

    def _manifest(self, store: Store) -> Manifest:
        data = store.read(MANIFEST_KEY)
        return Manifest() if data is None else Manifest.decode(data)

    def _read(self, key: str, sha: str | None) -> bytes:
        """``key``'s bytes, checked against ``sha`` (a blob's name or the manifest's entry).

        A record (``sha`` None) is read as its store's manifest names it: when the file does
        not match (an alias move that wrote the file but not yet the manifest, or rot), the
        immutable copy kept under the manifest's checksum serves."""
        problems = []
        for store in [self.primary, *(r.store for r in self.replicas)]:
            try:
                data = store.read(key)
                expected = sha if sha is not None else self._manifest(store).records.get(key)
                if sha is None and expected is not None and _bad(data, expected):
                    data = store.read(blob_key(expected)) or data
            except RegistryError as exc:
                problems.append(f"{store.name}: {exc}")
                continue
            if data is None:
                problems.append(f"{store.name}: missing")
                continue
            if expected is None:  # nothing to check it against: not trusted
                problems.append(f"{store.name}: not in its manifest")
                continue
            if _bad(data, expected):
                problems.append(f"{store.name}: checksum mismatch")
                continue
            if store is not self.primary:
                self.fallbacks += 1
                log.warning("registry_fallback", key=key, store=store.name, primary=problems[0])
                self._repair(key, sha, data)
            return data
        if any("mismatch" in p for p in problems):
            raise ArtifactCorrupt(f"{key}: no good copy on any store ({'; '.join(problems)})")
        raise RegistryError(f"{key}: not found ({'; '.join(problems)})")

    def _repair(self, key: str, sha: str | None, data: bytes) -> None:
        """Put a replica's good copy back on the primary: a blob under its name; a record only
        as the copy under its checksum, when the primary's manifest names that checksum (the
        record's file may be a move in progress: a read never writes over it)."""
        if sha is not None:
            self.primary.write(key, data)
            return
        digest = sha256_bytes(data)
        try:
            if self._manifest(self.primary).records.get(key) == digest:
                self.primary.write(blob_key(digest), data)
        except RegistryError:
            pass  # the primary is unreadable: `failwell registry restore` rebuilds it

    def names(self) -> list[str]:
        found = {k.split("/")[1] for k in self._manifest_any().records if k.startswith("models/")}
        return sorted(found)

    def _manifest_any(self) -> Manifest:
        for store in [self.primary, *(r.store for r in self.replicas)]:
            try:
                if store.exists(MANIFEST_KEY):
                    return self._manifest(store)
            except RegistryError:
                continue
        return Manifest()

    def versions(self, name: str) -> list[Version]:
        check_name("model name", name)
        prefix = f"models/{name}/versions/"
        keys = [k for k in self._manifest_any().records if k.startswith(prefix)]
        found = [self.get(name, k[len(prefix) : -5]) for k in keys]
        return sorted(found, key=lambda v: int(v.version[1:]) if v.version[1:].isdigit() else 0)

    def get(self, name: str, version: str) -> Version:
        try:
            return decode_version(self._read(record_key(name, version), None))
        except ArtifactCorrupt:
            raise
        except RegistryError:
            raise RegistryError(f"no version {name}@{version}") from None

    def aliases(self, name: str) -> dict[str, str]:
        key = aliases_key(name)
        if key not in self._manifest_any().records:
            return {}
        return msgspec.json.decode(self._read(key, None), type=dict[str, str])

    def resolve(self, ref: str) -> Version:
        """``NAME@VERSION`` or ``NAME@ALIAS`` → the version."""
        name, tag = parse_ref(ref)
        version = self.aliases(name).get(tag, tag)
        return self.get(name, version)

    def read_file(self, entry: FileEntry) -> bytes:
        return self._read(blob_key(entry.sha256), entry.sha256)

    def checkout(self, version: Version, root: Path) -> Path:
        """The artifact on the local disk under ``root``, every file verified; reused when a
        complete, verified copy is already there."""
        base = root / version.name / version.version
        target = base / version.files[0].path if version.kind == "file" else base / "artifact"
        folder = base if version.kind == "file" else target
        if (base / ".complete").exists() and all(
            (folder / f.path).is_file() and sha256_file(folder / f.path) == f.sha256
            for f in version.files
        ):
            return target
        shutil.rmtree(base, ignore_errors=True)
        tmp = base.with_name(f".{version.version}.partial")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp_folder = tmp if version.kind == "file" else tmp / "artifact"
        for entry in version.files:
            if entry.path.startswith("/") or ".." in entry.path.split("/"):
                raise RegistryError(f"{version.ref}: bad file path {entry.path!r}")
            path = tmp_folder / entry.path
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(self.read_file(entry))
        (tmp / ".complete").write_text(version.digest)
        tmp.rename(base)
        return target

    # -- writes -----------------------------------------------------------------------------

    def _commit(
        self, keys: list[str], records: Mapping[str, bytes], blobs: Mapping[str, int]
    ) -> None:
        manifest = self._manifest(self.primary)
        manifest.blobs.update(blobs)
        keys = list(keys)
        for key, data in records.items():  # each record's bytes also kept under their checksum
            sha = manifest.records[key] = sha256_bytes(data)
            if self.primary.read(blob_key(sha)) != data:
                self.primary.write(blob_key(sha), data)
            manifest.blobs[sha] = len(data)
            keys.append(blob_key(sha))
        self.primary.write(MANIFEST_KEY, manifest.encode())
        failed = self.replicator.changed(keys)
        if failed:
            raise RegistryError(
                f"written to the primary, but not yet to {', '.join(failed)} "
                "(journaled; run `failwell registry sync`)"
            )

    def push(
        self,
        name: str,
        path: Path,
        meta: Mapping[str, Any] | None = None,
        creator: str | None = None,
    ) -> Version:
        check_name("model name", name)
        files, blobs, keys = [], {}, []
        for rel, file in walk_artifact(path):
            sha = sha256_file(file)
            files.append(FileEntry(rel, sha, file.stat().st_size))
            key = blob_key(sha)
            held = self.primary.read(key)
            if held is None or sha256_bytes(held) != sha:  # absent or rotten: (re)write it
                data = file.read_bytes()
                if sha256_bytes(data) != sha:
                    raise RegistryError(f"{file} changed while it was being pushed")
                self.primary.write(key, data)
            blobs[sha] = files[-1].size
            keys.append(key)
        if not files:
            raise RegistryError(f"{path} holds no files")
        existing = self.versions(name)
        number = max((int(v.version[1:]) for v in existing if v.version[1:].isdigit()), default=0)
        aliases = self.aliases(name)
        version = Version(
            name,
            f"v{number + 1}",
            digest_of(tuple(files)),
            "file" if path.is_file() else "dir",
            tuple(files),
            dict(meta or {}),
            datetime.now(UTC).isoformat(timespec="seconds"),
            creator or getpass.getuser(),
            aliases.get(PRODUCTION) or (existing[-1].version if existing else None),
        )
        key = record_key(name, version.version)
        if self.primary.exists(key):
            raise RegistryError(f"{name}@{version.version} exists; versions are immutable")
        data = encode_json(version)
        self.primary.write(key, data)
        self._commit([*keys, key], {key: data}, blobs)
        return version

    def set_alias(self, name: str, alias: str, version: str) -> str | None:
        """Point ``alias`` at ``version``; returns what it pointed at. Moving ``production``
        keeps the old target as ``previous``."""
        check_name("alias", alias)
        if alias[1:].isdigit() and alias[0] == "v":
            raise RegistryError(f"alias {alias!r} looks like a version")
        self.get(name, version)  # must exist
        aliases = self.aliases(name)
        old = aliases.get(alias)
        if old == version:
            return old
        aliases[alias] = version
        if alias == PRODUCTION and old is not None:
            aliases[PREVIOUS] = old
        key = aliases_key(name)
        data = encode_json(dict(sorted(aliases.items())))
        self.primary.write(key, data)
        self._commit([key], {key: data}, {})
        return old

    def rollback(self, name: str) -> tuple[str, str]:
        """Move ``production`` back to ``previous``; returns (from, to)."""
        aliases = self.aliases(name)
        current, previous = aliases.get(PRODUCTION), aliases.get(PREVIOUS)
        if current is None or previous is None:
            raise RegistryError(f"{name} has no {PRODUCTION!r} and {PREVIOUS!r} aliases to swap")
        self.set_alias(name, PRODUCTION, previous)
        return current, previous
