"""How the composition root joins the retraining loop to the parts it watches and drives: the
alert states it reads as signals, the rollout controller it hands a candidate to (and whose
records tell it of the canaries another process's cycle started), and the registry versions
whose reference statistics the drift monitor follows."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Any

from failwell.config.models import FailwellConfig
from failwell.config.retrain import RetrainCanary, Signal
from failwell.drift.monitor import Follow
from failwell.errors import FailwellError
from failwell.health.alerts import Alert
from failwell.registry.serving import RegistryModel
from failwell.retrain.loop import Canary, Firing, Hooks, tier_of
from failwell.retrain.outcomes import LOOP, FleetCanary
from failwell.rollout.controller import Rollouts
from failwell.rollout.judge import Gates
from failwell.rollout.record import RolloutSpec, decode_record
from failwell.routing.pool import Pool

ALERT_OF = {Signal.DRIFT: "drift", Signal.QUALITY: "quality_live", Signal.FRESHNESS: "freshness"}


def retrain_hooks(
    alerts: Mapping[tuple[str, str, str], Alert],
    rollouts: Rollouts,
    audit: Callable[[str, dict[str, Any]], None],
) -> Hooks:
    """The retraining loop's hooks: ``alerts`` as its signals, ``rollouts`` for its canaries
    (and the fleet's records of them), ``audit`` for its records."""
    return Hooks(
        firing=signal_reader(alerts),
        canary=canary_starter(rollouts),
        audit=audit,
        fleet=RecordedCanaries(rollouts),
    )


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
    """``canary(route, tier, candidate, config, origin)``: a rollout of the candidate whose
    record carries ``origin``, awaited to its end; (its final state, its reason)."""

    async def canary(
        route: str, tier: str, candidate: str, c: RetrainCanary, origin: dict[str, Any]
    ) -> tuple[str, str]:
        gates = Gates(
            min_requests=c.min_requests,
            max_error_increase=c.max_error_increase,
            max_p99_ratio=c.max_p99_ratio,
            max_distance=c.max_distance,
        )
        spec = RolloutSpec(route, tier, candidate, c.steps, c.step_time, False, gates, (), origin)
        try:
            rollout = await rollouts.begin(spec, caller="retrain")
        except FailwellError as exc:
            return "failed", f"the rollout did not start: {exc.message}"
        assert rollout.task is not None
        await asyncio.wait({rollout.task})  # a cancelled wait leaves the rollout to finish
        return rollout.state.value, rollout.reason

    return canary


class RecordedCanaries:
    """The retraining loop's ``FleetCanaries``: the rollout records (the fleet's, or this
    gateway's alone: none) whose origin is the loop, and claims in the same store."""

    def __init__(self, rollouts: Rollouts) -> None:
        self.rollouts = rollouts

    async def read(self) -> list[FleetCanary] | None:
        found = await self.rollouts.splits.shared.read()
        if found is None:
            return None
        out = []
        for raw in found.values():
            try:
                r = decode_record(raw)
            except ValueError:
                continue  # the rollout controller logs it
            if r.origin is not None and r.origin.get("loop") == LOOP:
                out.append(
                    FleetCanary(r.id, r.route, r.candidate, r.state.value, r.reason, r.origin)
                )
        return out

    async def claim(self, token: str) -> bool | None:
        return await self.rollouts.splits.shared.claim(f"retrain:{token}")


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
