"""Artifacts and versions: what a model version is, and how its bytes are named and checked.

An artifact is a file or a folder. Each file is stored once as a blob named by its SHA-256
(``blobs/sha256/ab/abcdef...``); a version records its files (relative path, SHA-256, size)
and its ``digest``: the SHA-256 of that list in canonical JSON, so two versions with the same
bytes have the same digest. Versions are immutable: their record is written once.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from failwell.errors import RegistryError

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
CHUNK = 1024 * 1024


def check_name(what: str, value: str) -> str:
    if not NAME.match(value):
        raise RegistryError(f"bad {what} {value!r}: use letters, digits, '_', '.', '-'")
    return value


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def blob_key(sha: str) -> str:
    return f"blobs/sha256/{sha[:2]}/{sha}"


def record_key(name: str, version: str) -> str:
    return f"models/{name}/versions/{version}.json"


def aliases_key(name: str) -> str:
    return f"models/{name}/aliases.json"


MANIFEST_KEY = "MANIFEST.json"


class FileEntry(msgspec.Struct, frozen=True):
    path: str
    sha256: str
    size: int


class Version(msgspec.Struct, frozen=True):
    """One immutable model version."""

    name: str
    version: str
    digest: str
    kind: str  # "file" or "dir"
    files: tuple[FileEntry, ...]
    meta: dict[str, Any] = {}
    created: str = ""
    creator: str = ""
    parent: str | None = None

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files)


def digest_of(files: tuple[FileEntry, ...]) -> str:
    return "sha256:" + sha256_bytes(msgspec.json.encode(sorted(files, key=lambda f: f.path)))


def walk_artifact(path: Path) -> Iterator[tuple[str, Path]]:
    """(relative path, file) for every file of an artifact, in a stable order."""
    if path.is_file():
        yield path.name, path
        return
    if not path.is_dir():
        raise RegistryError(f"no such file or folder: {path}")
    for p in sorted(path.rglob("*")):
        if p.is_file():
            yield p.relative_to(path).as_posix(), p


@dataclass
class Manifest:
    """Checksums of everything a store holds: blobs (SHA-256 → size) and records (key →
    SHA-256). Reads check records against it; ``verify`` and ``restore`` walk it."""

    blobs: dict[str, int] = field(default_factory=dict)
    records: dict[str, str] = field(default_factory=dict)

    def encode(self) -> bytes:
        body = {
            "blobs": dict(sorted(self.blobs.items())),
            "records": dict(sorted(self.records.items())),
        }
        return msgspec.json.format(msgspec.json.encode(body), indent=1)

    @classmethod
    def decode(cls, data: bytes) -> Manifest:
        try:
            raw = msgspec.json.decode(data, type=dict[str, dict[str, Any]])
            return cls(
                {str(k): int(v) for k, v in raw.get("blobs", {}).items()},
                {str(k): str(v) for k, v in raw.get("records", {}).items()},
            )
        except (msgspec.DecodeError, ValueError, TypeError) as exc:
            raise RegistryError(f"the manifest is unreadable: {exc}") from None


def encode_json(value: Any) -> bytes:
    return msgspec.json.format(msgspec.json.encode(value), indent=1)


def decode_version(data: bytes) -> Version:
    try:
        return msgspec.json.decode(data, type=Version)
    except msgspec.DecodeError as exc:
        raise RegistryError(f"a version record is unreadable: {exc}") from None


def parse_ref(ref: str) -> tuple[str, str]:
    """``NAME@VERSION`` or ``NAME@ALIAS`` → (name, version-or-alias)."""
    name, sep, tag = ref.partition("@")
    if not sep or not name or not tag:
        raise RegistryError(f"expected NAME@VERSION or NAME@ALIAS, got {ref!r}")
    return check_name("model name", name), check_name("version or alias", tag)
