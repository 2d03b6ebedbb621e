"""Ground truth that arrives later: answers wait (bounded, for ``max_age``) for the label a
caller sends to ``POST /v1/feedback/{route}``; each label joins its answer and feeds the route's
live quality metric over the last ``window`` labelled answers, with an alert when it misses
``objective``.

Answers are remembered by an observer of finished exchanges (a dict insert per answered
request of a route with ``quality:``); the log holds them durably, this keeps the recent ones
at hand so a label joins without reading the log. A label for an answer the gateway no longer
remembers (unknown, expired, or from before a restart) is a 404 naming it; a second label for
one answer is a 409; a label of the wrong type a 422.

In a fleet (``share``) each answer is also queued for Redis, off the request path, so a label
joins an answer whichever process served it; "labelled once" is decided in Redis for a whole
batch, and the metric covers the fleet's window of labelled pairs. Only the lease holder
raises the alert: on a label it takes, and every ``alerts.evaluate_every`` while it leads (it
runs this as a service). A process that cannot reach Redis joins labels to its own answers
(guarded here, told to the fleet once Redis is back) and scores its own window; a label for an
answer it did not serve is a 503 ``fleet_unreachable`` (that answer reaches Redis once its
process reconnects, so the label joins when sent again).
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry

from failwell.background import Background
from failwell.clock import Clock
from failwell.config.drift import QualityConfig, QualityMetric
from failwell.config.models import RouteConfig
from failwell.contracts import Exchange, Leadership
from failwell.errors import Conflict, FleetUnreachable, InvalidInput, NotFound
from failwell.observe import families
from failwell.observe.logging import log
from failwell.quality.score import Pair, is_number, score, worse
from failwell.quality.shared import Found, Joined, SharedLabels

Alert = Callable[[tuple[str, str, str], bool, dict[str, Any], str], object]
_ANSWERED_BY = frozenset({"predict", "v2", "python"})
_MISSING = object()
_NOTHING: Found = ({}, set())


@dataclass(frozen=True, slots=True)
class Label:
    request_id: str
    label: Any


@dataclass
class RouteQuality:
    route: str
    config: QualityConfig
    waiting: OrderedDict[str, tuple[Any, float]] = field(default_factory=OrderedDict)
    labelled: OrderedDict[str, None] = field(default_factory=OrderedDict)
    window: deque[Pair] = field(init=False)

    def __post_init__(self) -> None:
        self.window = deque(maxlen=self.config.window)

    def remember(self, request_id: str, prediction: Any, now: float) -> None:
        self.waiting[request_id] = (prediction, now)
        while len(self.waiting) > self.config.remember:
            self.waiting.popitem(last=False)

    def check(self, item: Label, now: float, fleet: Found = _NOTHING) -> Joined:
        """What ``item`` joins (its answer here, else the one ``fleet`` found); raises what is
        wrong with it."""
        rid, cfg = item.request_id, self.config
        answers, labelled = fleet
        if rid in self.labelled or rid in labelled:
            raise Conflict(f"request {rid!r} already has a label")
        found = self.waiting.get(rid) or answers.get(rid)
        if found is None or now - found[1] > cfg.max_age:
            raise NotFound(
                f"no answer of route {self.route!r} with request_id {rid!r} waits for a label"
            )
        prediction, label = found[0], item.label
        if cfg.metric is QualityMetric.ACCURACY:
            if not isinstance(label, str | int | float | bool):
                raise InvalidInput("label: expected a class (string, number or boolean)", "label")
        elif cfg.metric is QualityMetric.MAE:
            if not is_number(label):
                raise InvalidInput("label: expected a number", "label")
        elif not (isinstance(label, bool) or label in (0, 1)):
            raise InvalidInput("label: expected 0, 1, true or false", "label")
        if cfg.metric is not QualityMetric.ACCURACY and not is_number(prediction):
            where = f"outputs.{cfg.output}" if cfg.output else "outputs"
            raise InvalidInput(f"the answer to {rid!r} has no number at {where}", "request_id")
        return rid, found[1], (prediction, label)

    def knows(self, request_id: str) -> bool:
        """Whether this process answered ``request_id`` (waiting for its label or labelled)."""
        return request_id in self.waiting or request_id in self.labelled

    def accept(self, joined: Sequence[Joined]) -> None:
        for rid, _, pair in joined:
            self.waiting.pop(rid, None)
            self.labelled[rid] = None
            while len(self.labelled) > self.config.remember:
                self.labelled.popitem(last=False)
            self.window.append(pair)

    def expire(self, now: float) -> None:
        while self.waiting:
            rid, (_, at) = next(iter(self.waiting.items()))
            if now - at <= self.config.max_age:
                return
            del self.waiting[rid]


class QualityWatch:
    """Built once per gateway; ``bind`` follows each config (a route whose ``quality:`` is
    unchanged keeps its waiting answers and window)."""

    def __init__(self, registry: CollectorRegistry, clock: Clock, alert: Alert) -> None:
        self.routes: dict[str, RouteQuality] = {}
        self.clock, self._alert = clock, alert
        self.live = families.QUALITY_LIVE.gauge(registry)
        self.labels = families.QUALITY_LABELS.counter(registry)
        self.shared: SharedLabels | None = None
        self.leadership: Leadership | None = None  # None: alone, so always the one to alert
        self.every = 5.0
        self._task = Background("quality-judge")

    def share(self, shared: SharedLabels, leadership: Leadership, every: float) -> None:
        """Join labels fleet-wide through ``shared``; alert only while ``leadership`` leads,
        judging the fleet's window every ``every`` seconds while running as a service."""
        self.shared, self.leadership, self.every = shared, leadership, every

    def bind(self, routes: Mapping[str, RouteConfig]) -> None:
        fresh = {}
        for name, rc in routes.items():
            if rc.quality is None:
                continue
            kept = self.routes.get(name)
            same = kept is not None and kept.config == rc.quality
            fresh[name] = kept if same and kept is not None else RouteQuality(name, rc.quality)
        self.routes = fresh

    def __call__(self, ex: Exchange) -> None:
        """The observer: remember an answered request of a watched route."""
        watched = self.routes.get(ex.route or "")
        answer = ex.answer
        if watched is None or answer is None or ex.front_end not in _ANSWERED_BY:
            return
        outputs = answer.outputs
        key = watched.config.output
        prediction = outputs.get(key, _MISSING) if key and isinstance(outputs, dict) else outputs
        if prediction is not _MISSING:
            now = self.clock.wall()
            watched.remember(ex.request_id, prediction, now)
            if self.shared is not None:
                self.shared.remember(watched.route, watched.config, ex.request_id, prediction, now)

    async def feedback(self, route: str, items: list[Label]) -> dict[str, Any]:
        """Join every label to its answer (all or none: the first bad item raises)."""
        watched = self.routes.get(route)
        if watched is None:
            raise NotFound(f"route {route!r} takes no feedback (routes.{route}.quality)")
        now = self.clock.wall()
        watched.expire(now)
        seen: set[str] = set()
        for item in items:
            if item.request_id in seen:
                raise Conflict(f"request {item.request_id!r} is labelled twice in this batch")
            seen.add(item.request_id)
        shared, fleet = self.shared, _NOTHING
        if shared is not None:
            elsewhere = [i.request_id for i in items if not watched.knows(i.request_id)]
            found = await shared.find(route, elsewhere) if elsewhere else _NOTHING
            fleet, shared = (_NOTHING, None) if found is None else (found, shared)
        try:
            joined = [watched.check(item, now, fleet) for item in items]
            claimed = None if shared is None else await shared.claim(route, watched.config, joined)
            if claimed is not None and claimed[0] is not None:
                raise Conflict(f"request {claimed[0]!r} already has a label")
        except (NotFound, Conflict, InvalidInput) as exc:
            if isinstance(exc, NotFound) and self.shared is not None and shared is None:
                self.labels.labels(route, FleetUnreachable.kind).inc()
                raise FleetUnreachable(
                    f"{exc} here, and this gateway cannot reach the fleet's Redis now: "
                    "send the label again later"
                ) from None
            self.labels.labels(route, exc.kind).inc()
            raise
        if self.shared is not None and claimed is None:  # Redis unreachable: joined here only
            self.shared.defer(route, watched.config, joined)
        watched.accept(joined)
        self.labels.labels(route, "accepted").inc(len(items))
        fleet_window = None if claimed is None else claimed[1]
        return {"accepted": len(items), **self.judge(watched, fleet_window)}

    def judge(self, watched: RouteQuality, fleet: list[Pair] | None = None) -> dict[str, Any]:
        """Score the fleet's window of labelled pairs (this process's own without it)."""
        cfg = watched.config
        window = list(watched.window) if fleet is None else fleet
        value = score(cfg.metric, window)
        judged = value is not None and len(window) >= cfg.min_labels
        if value is not None:
            self.live.labels(watched.route, cfg.metric.value).set(value)
        leading = self.leadership is None or self.leadership.leading
        if judged and cfg.objective is not None and leading:
            assert value is not None
            missed = worse(cfg.metric, value, cfg.objective)
            detail = {
                "metric": cfg.metric.value,
                "value": round(value, 5),
                "objective": cfg.objective,
            }
            self._alert(
                (watched.route, "quality_live", "page"), missed, detail, "failwell_quality_live"
            )
        return {
            "metric": cfg.metric.value,
            "value": value,
            "labels": len(window),
            "judged": judged,
            "scope": "local" if fleet is None else "fleet",
        }

    # -- the lease holder's schedule (a service only in a fleet) ------------------------------

    async def start(self) -> None:
        self._task.start(self._run())

    async def stop(self) -> None:
        await self._task.stop()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.every)
            for watched in list(self.routes.values()):
                try:
                    fleet = None
                    if self.shared is not None:
                        fleet = await self.shared.window(watched.route, watched.config)
                    self.judge(watched, fleet)
                except Exception as exc:  # keep judging the other routes
                    log.error("quality_judging_failed", route=watched.route, exc_info=exc)

    def status(self) -> dict[str, Any]:
        return {
            name: {
                "waiting": len(w.waiting),
                "metric": w.config.metric.value,
                "value": score(w.config.metric, list(w.window)),
                "labels": len(w.window),
                "objective": w.config.objective,
            }
            for name, w in self.routes.items()
        }
