"""Ground truth that arrives later: answers wait (bounded, for ``max_age``) for the label a
caller sends to ``POST /v1/feedback/{route}``; each label joins its answer and feeds the route's
live quality metric over the last ``window`` labelled answers, with an alert when it misses
``objective``.

Answers are remembered by an observer of finished exchanges (a dict insert per answered
request of a route with ``quality:``); the log holds them durably, this keeps the recent ones
at hand so a label joins without reading the log. A label for an answer the gateway no longer
remembers (unknown, expired, or from before a restart) is a 404 naming it; a second label for
one answer is a 409; a label of the wrong type a 422."""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry

from failwell.clock import Clock
from failwell.config.drift import QualityConfig, QualityMetric
from failwell.config.models import RouteConfig
from failwell.contracts import Exchange
from failwell.errors import Conflict, InvalidInput, NotFound
from failwell.observe import families
from failwell.quality.score import Pair, is_number, score, worse

Alert = Callable[[tuple[str, str, str], bool, dict[str, Any], str], object]
_ANSWERED_BY = frozenset({"predict", "v2", "python"})
_MISSING = object()


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

    def check(self, item: Label, now: float) -> Pair:
        """The (prediction, label) pair ``item`` makes; raises what is wrong with it."""
        rid, cfg = item.request_id, self.config
        if rid in self.labelled:
            raise Conflict(f"request {rid!r} already has a label")
        found = self.waiting.get(rid)
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
        return prediction, label

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
            watched.remember(ex.request_id, prediction, self.clock.wall())

    def feedback(self, route: str, items: list[Label]) -> dict[str, Any]:
        """Join every label to its answer (all or none: the first bad item raises)."""
        watched = self.routes.get(route)
        if watched is None:
            raise NotFound(f"route {route!r} takes no feedback (routes.{route}.quality)")
        now = self.clock.wall()
        watched.expire(now)
        seen: set[str] = set()
        pairs = []
        for item in items:
            if item.request_id in seen:
                raise Conflict(f"request {item.request_id!r} is labelled twice in this batch")
            seen.add(item.request_id)
            try:
                pairs.append(watched.check(item, now))
            except (NotFound, Conflict, InvalidInput) as exc:
                self.labels.labels(route, exc.kind).inc()
                raise
        for item, pair in zip(items, pairs, strict=True):
            del watched.waiting[item.request_id]
            watched.labelled[item.request_id] = None
            while len(watched.labelled) > watched.config.remember:
                watched.labelled.popitem(last=False)
            watched.window.append(pair)
        self.labels.labels(route, "accepted").inc(len(items))
        return {"accepted": len(items), **self.judge(watched)}

    def judge(self, watched: RouteQuality) -> dict[str, Any]:
        cfg = watched.config
        value = score(cfg.metric, list(watched.window))
        judged = value is not None and len(watched.window) >= cfg.min_labels
        if value is not None:
            self.live.labels(watched.route, cfg.metric.value).set(value)
        if judged and cfg.objective is not None:
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
            "labels": len(watched.window),
            "judged": judged,
        }

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
