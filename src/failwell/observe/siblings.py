"""One ``/metrics`` for the workers of ``failwell serve --workers N``: per-worker labels.

Each worker keeps its own registry (the request path stays a dict lookup and an increment, no
shared memory to lock or map) and answers its siblings on a Unix socket of the parent's run
directory (``w<INDEX>.sock``: the exposition text, then close). The worker a scrape reaches
asks the others (each within ``PEER_TIMEOUT``) and answers every family once, each sample
with a ``worker`` label; a worker being restarted is missing from that one scrape. Queries
sum over it: ``sum without (worker) (rate(failwell_requests_total[1m]))``.

Prometheus' multiprocess mode was not used: it needs the default value classes backed by mmap
files (every increment a write to a shared page), cannot express the collectors that read live
state at scrape time (queues, breakers, model ages), and loses gauges' meaning per process.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample

PEER_TIMEOUT = 1.0


@dataclass(frozen=True)
class Siblings:
    """Worker ``index`` of ``count``, with the run directory their sockets live in."""

    index: int
    count: int
    directory: Path

    def socket(self, index: int) -> Path:
        return self.directory / f"w{index}.sock"


class _Families(Collector):
    def __init__(self, families: Iterable[Metric]) -> None:
        self.families = list(families)

    def collect(self) -> Iterator[Metric]:
        yield from self.families


def merge(expositions: list[tuple[str, str]]) -> bytes:
    """One exposition of ``(worker, text)`` pairs: every family once, samples labelled."""
    merged: dict[str, Metric] = {}
    for worker, text in expositions:
        for family in text_string_to_metric_families(text):
            into = merged.get(family.name)
            if into is None:
                into = merged[family.name] = Metric(
                    family.name, family.documentation, family.type, family.unit
                )
            for s in family.samples:
                labels = {**s.labels, "worker": worker}
                into.samples.append(Sample(s.name, labels, s.value, s.timestamp, s.exemplar))
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Families(merged.values()))
    return generate_latest(registry)


class SiblingMetrics:
    """Serves this worker's exposition to its siblings and gathers theirs (a Service)."""

    def __init__(self, siblings: Siblings, registry: CollectorRegistry) -> None:
        self.siblings, self.registry = siblings, registry
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        path = self.siblings.socket(self.siblings.index)
        with contextlib.suppress(FileNotFoundError):
            path.unlink()  # left by this slot's previous worker
        self._server = await asyncio.start_unix_server(self._answer, path=str(path))

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            writer.write(await asyncio.to_thread(generate_latest, self.registry))
            await writer.drain()
        except OSError:
            pass
        finally:
            writer.close()

    async def _fetch(self, index: int) -> tuple[str, str] | None:
        try:
            async with asyncio.timeout(PEER_TIMEOUT):
                reader, writer = await asyncio.open_unix_connection(self.siblings.socket(index))
                try:
                    return str(index), (await reader.read()).decode()
                finally:
                    writer.close()
        except (OSError, TimeoutError):
            return None  # being restarted: missing from this scrape

    async def exposition(self) -> bytes:
        """Every worker's metrics, each sample labelled with its worker."""
        me = self.siblings.index
        own = (str(me), generate_latest(self.registry).decode())
        others = await asyncio.gather(
            *(self._fetch(i) for i in range(self.siblings.count) if i != me)
        )
        found = [own, *(o for o in others if o is not None)]
        return await asyncio.to_thread(merge, sorted(found))
