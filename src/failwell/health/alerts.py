"""SLO burn alerts: a service that evaluates every route's objectives on a schedule, sets the
SLO gauges, and notifies on changes only (firing, resolved, and a reminder after
``repeat_after`` while an alert holds), to the log and to a webhook.

An alert is one (route, objective, severity). It fires when any of its burn windows has both
its long and its short window over the burn rate (the SRE workbook's multi-window,
multi-burn-rate rule); the short window makes it resolve soon after the burning stops.

In a fleet the evaluator runs in the lease holder only and judges the fleet's counts (every
process's, added up in Redis: ``fleet/slo.py``), read in one round trip before each
evaluation. While they cannot be read it judges this process's own counts, logs
``slo_alerts_on_local_counts`` once, and the alert events say ``"counts": "local"``.
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from prometheus_client import CollectorRegistry

from failwell.backends.http import HttpUpstream
from failwell.background import Background
from failwell.clock import SYSTEM_CLOCK, Clock
from failwell.config.observe import AlertsConfig
from failwell.config.units import format_duration
from failwell.errors import UpstreamError
from failwell.health.slo import RouteSlo, SloTracker, tier1_share_of
from failwell.observe import families
from failwell.observe.logging import log

TIER1_FLOOR = "tier1_floor"
FLOOR_MIN_EVENTS = 5  # fewer requests than this in the window say nothing about the share
Counts = dict[str, dict[float, list[int]]]  # route → window (s) → counts per slot


class FleetCounts(Protocol):
    """The fleet's SLO counts (``fleet/slo.py``)."""

    @property
    def instance(self) -> str:
        """This process's name in the fleet."""
        ...

    async def windows(self, wanted: Mapping[str, Sequence[float]]) -> Counts | None:
        """Per route, per window, counts per slot; None while Redis is unreachable."""
        ...

    async def recent(
        self, wanted: Mapping[str, Sequence[float]], timeout: float
    ) -> tuple[float, Counts] | None:
        """(wall clock when read, counts): read lately, or now within ``timeout``; None while
        Redis is unreachable (for a status page, which must not wait on it)."""
        ...


@dataclass(slots=True)
class Alert:
    route: str
    slo: str
    severity: str
    firing: bool = False
    since: float = 0.0
    last_sent: float = 0.0
    detail: dict[str, Any] = field(default_factory=dict)
    name: str | None = None  # set for alerts that are not an SLO's

    def event(self, state: str, at: float) -> dict[str, Any]:
        return {
            "alert": self.name
            or (f"failwell_{self.slo}_burn" if self.slo != TIER1_FLOOR else "failwell_tier1_floor"),
            "state": state,
            "route": self.route,
            "slo": self.slo,
            "severity": self.severity,
            "since": self.since,
            "at": at,
            **self.detail,
        }


class SloMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        r = registry
        self.objective = families.SLO_OBJECTIVE.gauge(r)
        self.sli = families.SLO_SLI.gauge(r)
        self.burn = families.SLO_BURN_RATE.gauge(r)
        self.budget = families.SLO_BUDGET_REMAINING.gauge(r)
        self.firing = families.ALERT_FIRING.gauge(r)
        self.notifications = families.ALERT_NOTIFICATIONS.counter(r)


class SloEvaluator:
    """The service (``Gateway.services``) that turns SLO counters into gauges and alerts."""

    def __init__(
        self,
        tracker: SloTracker,
        config: AlertsConfig,
        registry: CollectorRegistry,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.tracker = tracker
        self.config = config
        self.clock = clock
        self.metrics = SloMetrics(registry)
        self.alerts: dict[tuple[str, str, str], Alert] = {}
        self.fleet: FleetCounts | None = None  # set by the root for a gateway in a fleet
        self._on_local = False  # the last evaluation fell back to this process's counts
        self.recent: deque[dict[str, Any]] = deque(maxlen=50)
        self._task = Background("slo-evaluator")
        self._client: HttpUpstream | None = None
        self._deliveries: set[asyncio.Task[None]] = set()
        self.bind()

    def bind(self) -> None:
        """Publish the objectives of the routes the tracker follows now."""
        for name, slo in self.tracker.routes.items():
            for sli, objective in slo.objectives.items():
                self.metrics.objective.labels(name, sli.name.lower()).set(objective)

    async def start(self) -> None:
        self._task.start(self._run())

    async def stop(self) -> None:
        await self._task.stop()
        for task in list(self._deliveries):
            task.cancel()
        if self._client is not None:
            await self._client.close()
            self._client = None  # started again when this process leads the fleet again

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.config.evaluate_every)
            try:
                self.evaluate(await self.fleet_counts())
            except Exception as exc:  # keep evaluating; a bug here must not stop alerts
                log.error("slo_evaluation_failed", exc_info=exc)

    async def fleet_counts(self) -> Counts | None:
        """The fleet's counts over every window an evaluation reads; None without a fleet or
        while Redis is unreachable (then said once in the log)."""
        if self.fleet is None:
            return None
        counts = await self.fleet.windows(
            {name: slo.windows for name, slo in self.tracker.routes.items()}
        )
        if (counts is None) is not self._on_local:
            self._on_local = counts is None
            if counts is None:
                log.warning("slo_alerts_on_local_counts", reason="fleet counts unreachable")
            else:
                log.info("slo_alerts_on_fleet_counts")
        return counts

    def evaluate(self, fleet: Counts | None = None) -> list[dict[str, Any]]:
        """Update the gauges and alert states from ``fleet``'s counts (each route's own where
        it has none); return the notifications sent."""
        sent = []
        for name, slo in self.tracker.routes.items():
            shared = None if fleet is None else fleet.get(name)
            totals = slo.totals if shared is None else shared.__getitem__
            for key, firing, detail in self._verdicts(name, slo, totals):
                if self.fleet is not None and firing:
                    detail["counts"] = "local" if shared is None else "fleet"
                event = self.update(key, firing, detail)
                if event is not None:
                    sent.append(event)
        return sent

    def _verdicts(
        self, name: str, slo: RouteSlo, totals: Callable[[float], list[int]]
    ) -> list[tuple[tuple[str, str, str], bool, dict[str, Any]]]:
        m = self.metrics
        out = []
        for sli in slo.objectives:
            label = sli.name.lower()
            by_severity: dict[str, tuple[bool, dict[str, Any]]] = {}
            for w in slo.config.windows:
                long_f = slo.figure_of(totals(w.long), sli, w.long)
                short_f = slo.figure_of(totals(w.short), sli, w.short)
                for f in (long_f, short_f):
                    window = format_duration(f.window)
                    m.burn.labels(name, label, window).set(f.burn_rate)
                    if f.ratio is not None:
                        m.sli.labels(name, label, window).set(f.ratio)
                burning = long_f.burn_rate > w.burn_rate and short_f.burn_rate > w.burn_rate
                already = by_severity.get(w.severity, (False, {}))
                if burning and not already[0]:
                    detail = {
                        "burn_rate_long": round(long_f.burn_rate, 3),
                        "burn_rate_short": round(short_f.burn_rate, 3),
                        "window": f"{format_duration(w.long)}/{format_duration(w.short)}",
                        "threshold": w.burn_rate,
                    }
                    by_severity[w.severity] = (True, detail)
                else:
                    by_severity.setdefault(w.severity, already)
            budget = slo.figure_of(totals(slo.span), sli, slo.span).budget_remaining
            m.budget.labels(name, label).set(budget)
            for severity, (firing, detail) in by_severity.items():
                out.append(((name, label, severity), firing, detail))
        floor = slo.config.tier1_floor
        if floor is not None:
            events, share = tier1_share_of(totals(min(w.short for w in slo.config.windows)))
            low = events >= FLOOR_MIN_EVENTS and share is not None and share < floor
            detail = {"tier1_share": None if share is None else round(share, 4), "floor": floor}
            out.append(((name, TIER1_FLOOR, "page"), low, detail))
        return out

    def update(
        self,
        key: tuple[str, str, str],
        firing: bool,
        detail: dict[str, Any],
        name: str | None = None,
    ) -> dict[str, Any] | None:
        """Set alert ``key`` (route, what, severity) firing or not; notify on a change (and
        every ``repeat_after`` while firing). ``name`` names an alert that is not an SLO's
        (the drift monitor's); the notification event is returned."""
        alert = self.alerts.get(key)
        if alert is None:
            alert = self.alerts[key] = Alert(*key, name=name)
        now = self.clock.wall()
        self.metrics.firing.labels(*key).set(1 if firing else 0)
        if firing:
            alert.detail = detail
        if firing and not alert.firing:
            alert.firing, alert.since, state = True, now, "firing"
        elif not firing and alert.firing:
            alert.firing, state = False, "resolved"
        elif firing and now - alert.last_sent >= self.config.repeat_after:
            state = "firing"
        else:
            return None
        alert.last_sent = now
        event = alert.event(state, now)
        self._notify(event)
        return event

    def firing(self) -> list[dict[str, Any]]:
        return [a.event("firing", a.last_sent) for a in self.alerts.values() if a.firing]

    def notify(self, event: dict[str, Any]) -> None:
        """Deliver an alert another part raises (e.g. a crash-looping managed replica) the way
        SLO alerts go: the log, the webhook, the dashboard's recent alerts."""
        self._notify(event)

    def _notify(self, event: dict[str, Any]) -> None:
        self.recent.appendleft(event)
        if event["state"] == "firing":
            log.warning("alert", **event)
        else:
            log.info("alert", **event)
        if self.config.webhook is None:
            self.metrics.notifications.labels(event["state"], "log").inc()
            return
        task = asyncio.get_running_loop().create_task(self._post(event))
        self._deliveries.add(task)
        task.add_done_callback(self._deliveries.discard)

    async def _post(self, event: dict[str, Any]) -> None:
        assert self.config.webhook is not None
        if self._client is None:
            self._client = HttpUpstream("alert-webhook", 2)
        result = "ok"
        try:
            body = json.dumps(event).encode()
            status, _ = await self._client.request(
                "POST", self.config.webhook, body, self.config.timeout
            )
            if status >= 300:
                result = "rejected"
        except UpstreamError as exc:
            result = "failed"
            log.warning("alert_webhook_failed", webhook=self.config.webhook, error=repr(exc))
        self.metrics.notifications.labels(event["state"], result).inc()
