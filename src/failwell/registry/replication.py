"""Copying the primary store's keys to its replicas, synchronously or through a journal.

A synchronous replica gets every changed key before a push or alias change returns. An
asynchronous one gets the keys appended to its journal (``replication/<store>.json`` in the
primary, key → time enqueued), which ``drain`` copies later; the journal survives a crash, and
its oldest entry is the replica's lag. The manifest is always copied last, so a replica's
manifest never names bytes the replica does not hold.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import msgspec

from failwell.config.registry import ReplicationMode
from failwell.errors import RegistryError
from failwell.registry.artifacts import MANIFEST_KEY, encode_json
from failwell.registry.stores import Store


@dataclass(frozen=True)
class ReplicaTarget:
    store: Store
    mode: ReplicationMode


@dataclass(frozen=True)
class Lag:
    store: str
    pending: int
    seconds: float  # age of the oldest key not yet copied; 0 when caught up


def _order(keys: Sequence[str]) -> list[str]:
    """Blobs first, then records, the manifest last."""
    rank = {"blobs": 0, "models": 1}
    return sorted(
        set(keys), key=lambda k: (2 if k == MANIFEST_KEY else rank.get(k.split("/")[0], 1), k)
    )


class Replicator:
    def __init__(
        self,
        primary: Store,
        replicas: Sequence[ReplicaTarget],
        now: Callable[[], float] = time.time,
    ) -> None:
        self.primary = primary
        self.replicas = list(replicas)
        self._now = now
        self._lock = threading.Lock()

    def _journal_key(self, store: Store) -> str:
        return f"replication/{store.name}.json"

    def _journal(self, store: Store) -> dict[str, float]:
        data = self.primary.read(self._journal_key(store))
        if not data:
            return {}
        return msgspec.json.decode(data, type=dict[str, float])

    def copy(self, store: Store, keys: Sequence[str]) -> None:
        for key in _order(keys):
            data = self.primary.read(key)
            if data is None:
                raise RegistryError(
                    f"replicating to {store.name!r}: {key} is missing on the primary"
                )
            store.write(key, data)

    def changed(self, keys: Sequence[str]) -> list[str]:
        """Replicate ``keys`` (plus the manifest). Returns the names of replicas whose copy
        failed synchronously (those keys go to their journal for a later ``drain``)."""
        keys = [*keys, MANIFEST_KEY]
        failed = []
        for target in self.replicas:
            if target.mode is ReplicationMode.SYNC:
                try:
                    self.copy(target.store, keys)
                    continue
                except (RegistryError, OSError):
                    failed.append(target.store.name)
            self._enqueue(target.store, keys)
        return failed

    def _enqueue(self, store: Store, keys: Sequence[str]) -> None:
        with self._lock:
            journal = self._journal(store)
            now = self._now()
            for key in keys:
                journal.setdefault(key, now)
            self.primary.write(self._journal_key(store), encode_json(journal))

    def drain(self, store_name: str | None = None) -> int:
        """Copy every journaled key to its replica; returns how many were copied."""
        copied = 0
        for target in self.replicas:
            if store_name is not None and target.store.name != store_name:
                continue
            with self._lock:
                journal = self._journal(target.store)
                if not journal:
                    continue
                self.copy(target.store, list(journal))
                self.primary.write(self._journal_key(target.store), encode_json({}))
                copied += len(journal)
        return copied

    def lag(self) -> list[Lag]:
        now = self._now()
        out = []
        for target in self.replicas:
            journal = self._journal(target.store)
            oldest = min(journal.values(), default=now)
            out.append(Lag(target.store.name, len(journal), max(0.0, now - oldest)))
        return out
