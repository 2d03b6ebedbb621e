"""Labels join answers whichever process of the fleet served them (``quality/shared.py`` says
what live quality asks of this). Per route with ``quality:``:

    {failwell:NAME:labels:ROUTE}:answers   hash request id → [prediction, time answered]
                                           (JSON), or "-" once labelled: the label-once guard
    {failwell:NAME:labels:ROUTE}:order     sorted set request id → time answered; trims the
                                           hash to the route's ``max_age`` and ``remember``
    {failwell:NAME:labels:ROUTE}:window    the last ``window`` labelled pairs [prediction,
                                           label], newest first

One route's keys share a hash tag (each script touches one route: one Cluster slot), and
routes spread over the slots. Every key expires ``max_age`` after the route's last write.

Writes never wait on the request path: ``remember`` (the observer, per answer) appends to the
route's queue and hands the link one bulk write per route (replacing the one queued); the
link's sender runs it within ``BULK_LINGER`` (20 ms), taking all that is queued by then in one
script call (``_STORE``; HSETNX, so a label that came first stays). A label that arrives before
its answer's batch is in Redis still joins: ``find`` asks again every ``STEP`` for up to
``JOIN_WAIT`` for the ids it lacks (so a label for an unknown id is refused after that wait).

Labelling is one script (``_CLAIM``): if any id of the batch is labelled already it changes
nothing and names that id; else it marks them all (an answer not flushed yet too: its flush
then leaves the mark), pushes their pairs and answers the window.

Redis unreachable (the link down, or a command failed): ``find``, ``claim`` and ``window``
answer None at once and the caller joins labels to its own answers. Answers go on being queued
(the newest ``remember`` per route) with the labels joined meanwhile (``defer``), and all are
written when the link reconnects; a deferred label marks its answer and adds its pair to the
window unless another process labelled that answer first. Meanwhile a label for an answer
another process served is refused (503: it joins when sent again after the reconnect). Lost: a
batch whose write fails, and the oldest waiting beyond ``remember``
(``failwell_fleet_dropped_total{kind="labels"}``).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec
from prometheus_client import Counter
from redis.exceptions import RedisError

from failwell.config.drift import QualityConfig
from failwell.fleet.link import FleetLink, Op
from failwell.observe.logging import log

KIND = "labels"
MARK = b"-"
JOIN_WAIT = 0.5  # seconds a label waits for an answer on its way to Redis
STEP = 0.02  # the link lingers 20 ms before it writes a batch
CHUNK = 1000  # records per script call

_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder().decode

# KEYS answers, order, window; ARGV now, max_age, remember, window, ttl (ms), and the records as
# one JSON array of [kind, id, time answered, data] (one argument, not four per record: the
# client's CPU per record is a fifth): kind "a" an answer (data "[prediction, time]"), "l" a
# label joined while Redis was unreachable (data "[prediction, label]")
_STORE = """
for _, record in ipairs(cjson.decode(ARGV[6])) do
  local id, at, data = record[2], record[3], record[4]
  if record[1] == 'a' then
    if redis.call('HSETNX', KEYS[1], id, data) == 1 then redis.call('ZADD', KEYS[2], at, id) end
  elseif redis.call('HGET', KEYS[1], id) ~= '-' then
    redis.call('HSET', KEYS[1], id, '-')
    redis.call('ZADD', KEYS[2], at, id)
    redis.call('LPUSH', KEYS[3], data)
  end
end
local oldest = tonumber(ARGV[1]) - tonumber(ARGV[2])
for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', oldest)) do
  redis.call('HDEL', KEYS[1], id)
end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', oldest)
local over = redis.call('ZCARD', KEYS[2]) - tonumber(ARGV[3])
if over > 0 then
  local popped = redis.call('ZPOPMIN', KEYS[2], over)
  for i = 1, #popped, 2 do redis.call('HDEL', KEYS[1], popped[i]) end
end
redis.call('LTRIM', KEYS[3], 0, tonumber(ARGV[4]) - 1)
for i = 1, 3 do redis.call('PEXPIRE', KEYS[i], ARGV[5]) end
return 1
"""

# KEYS answers, order, window; ARGV window, ttl (ms), then (id, time answered, pair) per label
# → {0, the id labelled already} or {1, the window after}
_CLAIM = """
for i = 3, #ARGV, 3 do
  if redis.call('HGET', KEYS[1], ARGV[i]) == '-' then return {0, ARGV[i]} end
end
for i = 3, #ARGV, 3 do
  redis.call('HSET', KEYS[1], ARGV[i], '-')
  redis.call('ZADD', KEYS[2], ARGV[i + 1], ARGV[i])
  redis.call('LPUSH', KEYS[3], ARGV[i + 2])
end
redis.call('LTRIM', KEYS[3], 0, tonumber(ARGV[1]) - 1)
for i = 1, 3 do redis.call('PEXPIRE', KEYS[i], ARGV[2]) end
return {1, redis.call('LRANGE', KEYS[3], 0, -1)}
"""


def _ttl(config: QualityConfig) -> int:
    return max(1, int(config.max_age * 1000))


def _pairs(raw: Sequence[bytes]) -> list[tuple[Any, Any]]:
    """The window's pairs (an entry that is not one is left out)."""
    out = []
    for item in raw:
        try:
            prediction, label = _decode(item)
        except (msgspec.DecodeError, TypeError, ValueError):
            continue
        out.append((prediction, label))
    return out


Record = tuple[str, float, Any]  # (request id, time answered, prediction or pair)
Taken = tuple[list[Record], list[Record]]  # answers, labels


@dataclass
class _Queue:
    """What waits for Redis of one route: answers, and labels joined while it was away."""

    keys: list[str]
    config: QualityConfig
    answers: deque[Record]
    labels: deque[Record]
    op: Op = field(init=False)  # the link's bulk write: everything queued when it runs

    def take(self) -> Taken:
        taken = list(self.answers), list(self.labels)
        self.answers.clear()
        self.labels.clear()
        return taken

    def put_back(self, taken: Taken) -> None:
        """Records whose write failed go back before the newer ones (the oldest beyond the
        cap go)."""
        cap = self.config.remember
        self.answers = deque([*taken[0], *self.answers], maxlen=cap)
        self.labels = deque([*taken[1], *self.labels], maxlen=cap)


class FleetLabels:
    def __init__(self, link: FleetLink, fallbacks: Counter) -> None:
        self.link = link
        self._queues: dict[str, _Queue] = {}
        self._fallbacks = fallbacks  # failwell_fleet_fallbacks_total{part="labels"}
        self._reachable = True  # what the last read found (logged when it changes)
        self._claim: Any = link.redis.register_script(_CLAIM)
        self._prefix = "{failwell:" + link.config.name + ":labels:"
        link.on_connect(self._reconnected)

    def _keys(self, route: str) -> list[str]:
        tag = f"{self._prefix}{route}}}"
        return [f"{tag}:answers", f"{tag}:order", f"{tag}:window"]

    def _queue(self, route: str, config: QualityConfig) -> _Queue:
        queue = self._queues.get(route)
        if queue is None or queue.config is not config:  # new, or the config was reloaded
            cap = config.remember
            queue = _Queue(
                self._keys(route),
                config,
                deque(queue.answers if queue else (), maxlen=cap),
                deque(queue.labels if queue else (), maxlen=cap),
            )
            queue.op = functools.partial(self._write_queued, queue)
            self._queues[route] = queue
        return queue

    def _push(self, queue: _Queue, records: deque[Record], item: Record) -> None:
        if len(records) == records.maxlen:
            self.link.count_dropped(KIND)  # the oldest waiting record goes
        records.append(item)
        if self.link.up:
            self.link.write(KIND, queue.keys[0], queue.op)

    # -- writes (queued here, run by the link's sender) ---------------------------------------

    def remember(
        self, route: str, config: QualityConfig, request_id: str, prediction: Any, at: float
    ) -> None:
        queue = self._queue(route, config)
        self._push(queue, queue.answers, (request_id, at, prediction))

    def defer(self, route: str, config: QualityConfig, joined: Sequence[Record]) -> None:
        queue = self._queue(route, config)
        for item in joined:
            self._push(queue, queue.labels, item)

    def _write_queued(self, queue: _Queue, pipe: Any) -> None:
        """The link's bulk write of ``queue``: everything queued by the time it runs."""
        self._write(pipe, queue, queue.take())

    def _write(self, pipe: Any, queue: _Queue, taken: Taken) -> None:
        """Add the script calls that write ``taken`` (up to ``CHUNK`` records each) to ``pipe``."""
        cfg = queue.config
        head = [self.link.clock.wall(), cfg.max_age, cfg.remember, cfg.window, _ttl(cfg)]
        records: list[tuple[str, str, float, str]] = []
        for kind, waiting in zip(("a", "l"), taken, strict=True):
            for rid, at, data in waiting:
                try:
                    value = _encode([data, at] if kind == "a" else data).decode()
                except (TypeError, msgspec.EncodeError):  # not JSON: it cannot be shared
                    self.link.count_dropped(KIND)
                    continue
                records.append((kind, rid, at, value))
        for start in range(0, len(records), CHUNK):
            batch = _encode(records[start : start + CHUNK])
            pipe.eval(_STORE, len(queue.keys), *queue.keys, *head, batch)

    async def _reconnected(self, redis: Any) -> None:
        """Write what waited while Redis was unreachable (kept for the next connection if the
        write fails: the first command on a new connection may meet a stale socket)."""
        taken = [(q, q.take()) for q in self._queues.values() if q.answers or q.labels]
        if not taken:
            return
        try:
            async with redis.pipeline(transaction=False) as pipe:
                for queue, records in taken:
                    self._write(pipe, queue, records)
                await pipe.execute()
        except (RedisError, OSError):
            for queue, records in taken:
                queue.put_back(records)
            raise

    # -- reads --------------------------------------------------------------------------------

    def _unreachable(self) -> None:
        self._fallbacks.inc()
        if self._reachable:
            self._reachable = False
            log.warning("fleet_labels_unreachable", instance=self.link.me)

    def _reached(self) -> None:
        if not self._reachable:
            self._reachable = True
            log.info("fleet_labels_reachable", instance=self.link.me)

    async def find(
        self, route: str, ids: Sequence[str]
    ) -> tuple[dict[str, tuple[Any, float]], set[str]] | None:
        answers: dict[str, tuple[Any, float]] = {}
        labelled: set[str] = set()
        clock, key = self.link.clock, self._keys(route)[0]
        missing, ends = list(ids), clock.now() + JOIN_WAIT
        while missing:
            if not self.link.up:
                self._unreachable()
                return None
            try:
                values = await self.link.redis.hmget(key, missing)
            except (RedisError, OSError):
                self._unreachable()
                return None
            still = []
            for rid, raw in zip(missing, values, strict=True):
                if raw is None:
                    still.append(rid)
                elif raw == MARK:
                    labelled.add(rid)
                else:
                    with contextlib.suppress(msgspec.DecodeError, TypeError, ValueError):
                        prediction, at = _decode(raw)  # else: not an answer, so unknown
                        answers[rid] = (prediction, float(at))
            missing = still
            if not missing or clock.now() >= ends:
                break
            await asyncio.sleep(STEP)
        self._reached()
        return answers, labelled

    async def claim(
        self, route: str, config: QualityConfig, joined: Sequence[Record]
    ) -> tuple[str | None, list[tuple[Any, Any]]] | None:
        if not self.link.up:
            self._unreachable()
            return None
        args: list[Any] = [config.window, _ttl(config)]
        try:
            for rid, at, pair in joined:
                args += [rid, at, _encode(pair)]
            done, found = await self._claim(keys=self._keys(route), args=args)
        except (RedisError, OSError, TypeError, msgspec.EncodeError):
            self._unreachable()
            return None
        self._reached()
        if not done:
            return found.decode(), []
        return None, _pairs(found)

    async def window(self, route: str, config: QualityConfig) -> list[tuple[Any, Any]] | None:
        if not self.link.up:
            self._unreachable()
            return None
        try:
            raw = await self.link.redis.lrange(self._keys(route)[2], 0, config.window - 1)
        except (RedisError, OSError):
            self._unreachable()
            return None
        self._reached()
        return _pairs(raw)
