"""How the composition root joins the retraining loop to the parts it watches and drives: the
alert states it reads as signals, the rollout controller it hands a candidate to, and the
registry versions whose reference statistics the drift monitor follows."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from failwell.config.models import FailwellConfig
from failwell.config.retrain import RetrainCanary, Signal
from failwell.drift.monitor import Follow
from failwell.errors import FailwellError
from failwell.health.alerts import Alert
from failwell.registry.serving import RegistryModel
from failwell.retrain.loop import Canary, Firing, tier_of
from failwell.rollout.controller import Rollouts
from failwell.rollout.judge import Gates
from failwell.rollout.record import RolloutSpec
from failwell.routing.pool import Pool

ALERT_OF = {Signal.DRIFT: "drift", Signal.QUALITY: "quality_live", Signal.FRESHNESS: "freshness"}


def signal_reader(alerts: Mapping[tuple[str, str, str], Alert]) -> Firing:
    """``firing(route, signal)``: the detail of the signal's firing alert, or None."""

    def firing(route: str, signal: Signal) -> dict[str, Any] | None:
        what = ALERT_OF.get(signal)
        for (name, slo, _), alert in list(alerts.items()):
            if name == route and slo == what and alert.firing:
                return dict(alert.detail)
        return None

    return firing


def canary_starter(rollouts: Rollouts) -> Canary:
    """``canary(route, tier, candidate, config)``: a rollout of the candidate, awaited to its
    end; (its final state, its reason)."""

    async def canary(route: str, tier: str, candidate: str, c: RetrainCanary) -> tuple[str, str]:
        gates = Gates(
            min_requests=c.min_requests,
            max_error_increase=c.max_error_increase,
            max_p99_ratio=c.max_p99_ratio,
            max_distance=c.max_distance,
        )
        spec = RolloutSpec(route, tier, candidate, c.steps, c.step_time, False, gates)
        try:
            rollout = await rollouts.begin(spec, caller="retrain")
        except FailwellError as exc:
            return "failed", f"the rollout did not start: {exc.message}"
        assert rollout.task is not None
        await asyncio.wait({rollout.task})  # a cancelled wait leaves the rollout to finish
        return rollout.state.value, rollout.reason

    return canary


def drift_follow(config: FailwellConfig, pools: Mapping[str, Pool]) -> dict[str, Follow]:
    """For each route whose drift reference comes from the registry: the serving version of
    its model tier and the reference stored with it (read at each evaluation, so a promotion
    or an alias move switches the reference)."""
    out: dict[str, Follow] = {}
    for name, rc in config.routes.items():
        if rc.drift is None or rc.drift.reference is not None:
            continue
        tier = tier_of(config, name, None)
        backend = next((t.backend for t in rc.tiers if t.name == tier), None)
        pool = pools.get(backend or "")
        model = None
        if pool is not None:
            model = next((r.base for r in pool.replicas if isinstance(r.base, RegistryModel)), None)
        if model is not None:
            out[name] = _follower(model)
    return out


def _follower(model: RegistryModel) -> Follow:
    def follow() -> tuple[str, dict[str, Any] | None]:
        version = model.version
        reference = version.meta.get("reference")
        return version.ref, reference if isinstance(reference, dict) else None

    return follow
