"""Where registry bytes live: a local folder with atomic writes, or any fsspec filesystem.

A store is a flat key → bytes space with ``/``-separated keys. ``LocalStore`` writes each key
to a temp file in the same folder, fsyncs it, renames it into place and fsyncs the folder, so
a crash leaves the old bytes or the new ones, never half. ``FsspecStore`` reaches a second
folder (``file:///...``), an S3-compatible bucket (``s3://bucket/prefix`` through s3fs) or
anything else fsspec knows; object stores replace an object atomically on their own.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Any, Protocol

from failwell.errors import RegistryError


class Store(Protocol):
    name: str

    def read(self, key: str) -> bytes | None:
        """The bytes under ``key``, or None when there are none."""
        ...

    def write(self, key: str, data: bytes) -> None: ...

    def exists(self, key: str) -> bool: ...

    def keys(self, prefix: str) -> list[str]:
        """Every key under ``prefix`` (a folder-like prefix ending in '/')."""
        ...

    def delete(self, key: str) -> None: ...


class LocalStore:
    """A folder on the local disk; every write is atomic and durable."""

    def __init__(self, root: str | Path, name: str = "primary") -> None:
        self.root = Path(root)
        self.name = name

    def __repr__(self) -> str:
        return f"LocalStore({str(self.root)!r})"

    def _path(self, key: str) -> Path:
        if key.startswith("/") or ".." in key.split("/"):
            raise RegistryError(f"bad key {key!r}")
        return self.root / key

    def read(self, key: str) -> bytes | None:
        try:
            return self._path(key).read_bytes()
        except (FileNotFoundError, NotADirectoryError):
            return None

    def write(self, key: str, data: bytes) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def keys(self, prefix: str) -> list[str]:
        base = self._path(prefix.rstrip("/")) if prefix else self.root
        if not base.is_dir():
            return []
        return sorted(
            p.relative_to(self.root).as_posix()
            for p in base.rglob("*")
            if p.is_file() and not p.name.endswith(".tmp")
        )

    def delete(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._path(key).unlink()


class FsspecStore:
    """Any fsspec URL: ``file:///srv/replica``, ``s3://bucket/prefix`` (s3fs), ``memory://x``.

    ``options`` go to the filesystem (for s3fs e.g. ``endpoint_url``, ``key``, ``secret``).
    Errors of the filesystem become ``RegistryError`` naming the store."""

    def __init__(self, url: str, name: str, options: dict[str, Any] | None = None) -> None:
        self.url = url.rstrip("/")
        self.name = name
        try:
            import fsspec  # on first use: a plain local registry never loads it

            self._fs, self._root = fsspec.core.url_to_fs(self.url, **(options or {}))
        except (ImportError, ValueError, TypeError) as exc:
            raise RegistryError(f"store {name!r}: cannot open {url}: {exc}") from None
        self._root = self._root.rstrip("/")

    def __repr__(self) -> str:
        return f"FsspecStore({self.url!r})"

    def _path(self, key: str) -> str:
        return f"{self._root}/{key}"

    def read(self, key: str) -> bytes | None:
        try:
            data: bytes = self._fs.cat_file(self._path(key))
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise RegistryError(f"store {self.name!r}: reading {key}: {exc}") from None
        return data

    def write(self, key: str, data: bytes) -> None:
        path = self._path(key)
        try:
            parent = path.rsplit("/", 1)[0]
            self._fs.makedirs(parent, exist_ok=True)
            self._fs.pipe_file(path, data)
        except OSError as exc:
            raise RegistryError(f"store {self.name!r}: writing {key}: {exc}") from None

    def exists(self, key: str) -> bool:
        try:
            return bool(self._fs.isfile(self._path(key)))
        except OSError:
            return False

    def keys(self, prefix: str) -> list[str]:
        base = self._path(prefix.rstrip("/")) if prefix else self._root
        try:
            found = self._fs.find(base)
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise RegistryError(f"store {self.name!r}: listing {prefix}: {exc}") from None
        cut = len(self._root) + 1
        root = self._root.lstrip("/")
        return sorted(
            p.lstrip("/")[len(root) + 1 :] if not p.startswith(self._root) else p[cut:]
            for p in found
        )

    def delete(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._fs.rm_file(self._path(key))

    def invalidate(self) -> None:
        """Forget cached listings (s3fs caches them); call before reading another writer's keys."""
        self._fs.invalidate_cache()
