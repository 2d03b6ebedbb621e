"""The drift monitor: live inputs (and tier-1 outputs) of each watched route against the
reference statistics of its model, judged in sliding windows.

Sampling is an observer of finished exchanges: one bounded ``deque.append`` per sampled
request, nothing else on the request path. (A consumer of the inference log would survive a
restart, but it exists only with the log on and lags by a batch; a window of recent traffic
does not need to survive a restart.) Every ``drift.every`` the service copies each window and
compares it with the reference in a worker thread (KS and chi-square cost milliseconds): per
feature PSI and a p-value, an alarm over the feature's thresholds once the window holds
``min_samples`` values. Results go to metrics, ``GET /admin/drift`` and the alert path (one
``failwell_drift`` alert per route, naming the drifting features).
"""

from __future__ import annotations

import asyncio
import json
import random
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from failwell.background import Background
from failwell.config.drift import DriftConfig, DriftThreshold
from failwell.config.models import RouteConfig
from failwell.contracts import AdminCall, AdminRoute, Exchange
from failwell.drift.stats import Distance, Reference, distance, preload
from failwell.errors import ConfigError, ConfigIssue
from failwell.observe import families
from failwell.observe.logging import log

OUTPUT = "output."  # reference features named output.KEY describe the model's outputs
Alert = Callable[[tuple[str, str, str], bool, dict[str, Any], str], object]
# The version a route's model tier serves now and the reference stored with it (or None).
Follow = Callable[[], tuple[str, dict[str, Any] | None]]


def load_reference(route: str, cfg: DriftConfig) -> Reference:
    where = f"routes.{route}.drift.reference"
    assert cfg.reference is not None
    try:
        return Reference.from_json(json.loads(Path(cfg.reference).read_text()))
    except OSError as exc:
        raise ConfigError(
            [ConfigIssue(where, f"cannot read {cfg.reference}: {exc.strerror}")]
        ) from None
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError([ConfigIssue(where, f"not a drift reference: {exc!r}")]) from None


def flatten(outputs: Any) -> dict[str, Any]:
    """An answer's outputs as reference features: ``output.KEY`` for each scalar of a dict,
    ``output.value`` for a scalar answer."""
    if isinstance(outputs, dict):
        return {f"{OUTPUT}{k}": v for k, v in outputs.items() if isinstance(v, int | float | str)}
    if isinstance(outputs, int | float | str):
        return {f"{OUTPUT}value": outputs}
    return {}


@dataclass
class RouteDrift:
    """One route's window, reference and latest verdicts."""

    route: str
    config: DriftConfig
    reference: Reference
    follow: Follow | None = None  # the reference comes from the serving registry version
    version: str | None = None  # the version whose reference is in use (with follow)
    # (inputs, tier-1 outputs or None): flattened into feature rows by ``judge``, off the path
    window: deque[tuple[dict[str, Any], Any]] = field(init=False)
    latest: dict[str, dict[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.window = deque(maxlen=self.config.window)

    def refresh(self) -> bool:
        """Follow the serving version: a new version's reference replaces the old one and the
        window starts afresh (its outputs came from the old model). True when it changed."""
        if self.follow is None:
            return False
        ref, data = self.follow()
        if ref == self.version:
            return False
        self.version = ref
        self.reference = Reference.from_json(data) if data is not None else Reference({})
        self.window.clear()
        self.latest.clear()
        return True

    def threshold(self, feature: str) -> DriftThreshold:
        return self.config.features.get(feature, self.config.threshold)

    def judge(self, sampled: list[tuple[dict[str, Any], Any]]) -> dict[str, tuple[Distance, bool]]:
        """Blocking (scipy): each reference feature's distance and whether it drifts."""
        rows = [i if o is None else {**i, **flatten(o)} for i, o in sampled]
        out = {}
        for feature, ref in self.reference.features.items():
            values = [row[feature] for row in rows if feature in row]
            if len(values) < self.config.min_samples:
                continue
            found = distance(feature, ref, values)
            if found is None:
                continue
            limit = self.threshold(feature)
            out[feature] = (found, found.psi > limit.psi or found.p_value < limit.p_value)
        return out


class DriftMonitor:
    """Built once per gateway; ``bind`` follows each config (a route whose drift config is
    unchanged keeps its window)."""

    def __init__(
        self, registry: CollectorRegistry, alert: Alert, rng: random.Random | None = None
    ) -> None:
        self.routes: dict[str, RouteDrift] = {}
        self._alert = alert
        self._rng = rng or random.Random()
        self._task = Background("drift-monitor")
        self.psi = families.DRIFT_PSI.gauge(registry)
        self.p_value = families.DRIFT_P_VALUE.gauge(registry)
        self.drifting = families.DRIFT_DRIFTING.gauge(registry)
        self.samples = families.DRIFT_WINDOW.gauge(registry)

    @staticmethod
    def prepare(routes: Mapping[str, RouteConfig]) -> dict[str, Reference]:
        """The references of ``routes`` (a ConfigError names one that cannot be read)."""
        return {
            name: load_reference(name, rc.drift)
            for name, rc in routes.items()
            if rc.drift is not None and rc.drift.reference is not None
        }

    def bind(
        self,
        routes: Mapping[str, RouteConfig],
        references: Mapping[str, Reference],
        follow: Mapping[str, Follow] | None = None,
    ) -> None:
        """Watch ``routes``: with a file reference (``references``) or the reference of the
        registry version their model tier serves (``follow``)."""
        old, fresh = self.routes, {}
        follow = follow or {}
        for name, rc in routes.items():
            cfg = rc.drift
            if cfg is None or (name not in references and name not in follow):
                continue
            kept = old.get(name)
            if name in references:
                reference = references[name]
                same = kept is not None and kept.config == cfg and kept.reference == reference
                fresh[name] = (
                    kept if same and kept is not None else RouteDrift(name, cfg, reference)
                )
            elif kept is not None and kept.config == cfg and kept.follow is not None:
                kept.follow = follow[name]
                fresh[name] = kept
            else:
                fresh[name] = RouteDrift(name, cfg, Reference({}), follow[name])
                fresh[name].refresh()  # the serving version's reference from the start
        self.routes = fresh

    def __call__(self, ex: Exchange) -> None:
        """The observer: sample an answered request's inputs (and tier-1 outputs)."""
        watched = self.routes.get(ex.route or "")
        if watched is None or ex.status != 200 or ex.inputs is None:
            return
        if watched.config.sample < 1 and self._rng.random() >= watched.config.sample:
            return
        answer = ex.answer
        outputs = answer.outputs if answer is not None and answer.tier_index == 0 else None
        watched.window.append((ex.inputs, outputs))

    async def evaluate(self) -> None:
        """Judge every route's window now (the work runs in a thread)."""
        for name, watched in list(self.routes.items()):
            if watched.refresh():
                detail = {"features": [], "window": 0, "reference": watched.version}
                self._alert((name, "drift", "ticket"), False, detail, "failwell_drift")
            rows = list(watched.window)
            self.samples.labels(name).set(len(rows))
            verdicts = await asyncio.to_thread(watched.judge, rows)
            drifting = []
            for feature, (found, drifts) in verdicts.items():
                self.psi.labels(name, feature).set(found.psi)
                self.p_value.labels(name, feature).set(found.p_value)
                self.drifting.labels(name, feature).set(1 if drifts else 0)
                watched.latest[feature] = {**found.as_json(), "drifting": drifts}
                if drifts:
                    drifting.append(feature)
            detail = {"features": drifting, "window": len(rows)}
            self._alert((name, "drift", "ticket"), bool(drifting), detail, "failwell_drift")

    async def _run(self) -> None:
        if self.routes:  # scipy, in a thread: its import would stall the loop for seconds
            await asyncio.to_thread(preload)
        while True:
            every = min((r.config.every for r in self.routes.values()), default=10.0)
            await asyncio.sleep(every)
            try:
                await self.evaluate()
            except Exception as exc:  # keep watching; a bug here must not stop the monitor
                log.error("drift_evaluation_failed", exc_info=exc)

    async def start(self) -> None:
        self._task.start(self._run())

    async def stop(self) -> None:
        await self._task.stop()

    def status(self) -> dict[str, Any]:
        return {
            name: {
                "window": len(w.window),
                "min_samples": w.config.min_samples,
                "reference_count": w.reference.count,
                "reference_version": w.version,
                "features": w.latest,
                "drifting": sorted(f for f, v in w.latest.items() if v["drifting"]),
            }
            for name, w in self.routes.items()
        }

    def admin_routes(self) -> list[AdminRoute]:
        async def show(call: AdminCall) -> tuple[int, Any]:
            return 200, {"routes": self.status()}

        return [AdminRoute("GET", "/admin/drift", show)]
