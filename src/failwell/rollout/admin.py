"""The rollout admin API: POST /admin/rollouts (start), GET /admin/rollouts (status),
POST /admin/rollouts/abort. Bad bodies are 422s that name the field."""

from __future__ import annotations

from typing import Any

from failwell.config.units import parse_duration
from failwell.contracts import AdminCall, AdminRoute
from failwell.errors import InvalidInput
from failwell.rollout.controller import Rollouts
from failwell.rollout.judge import Gates
from failwell.rollout.record import RolloutSpec


def _field(body: dict[str, Any], name: str, kind: type, default: Any = None) -> Any:
    value = body.get(name, default)
    if (
        value is None
        or isinstance(value, bool) is not (kind is bool)
        or not isinstance(value, kind)
    ):
        if value is None and default is None:
            raise InvalidInput(f"{name}: required", field=name)
        raise InvalidInput(f"{name}: expected {kind.__name__}", field=name)
    return value


def parse_spec(body: Any) -> RolloutSpec:
    if not isinstance(body, dict):
        raise InvalidInput("body: expected a JSON object", field="body")
    steps = body.get("steps", [5, 25, 50, 100])
    if (
        not isinstance(steps, list)
        or not steps
        or not all(isinstance(p, int) and not isinstance(p, bool) and 0 < p <= 100 for p in steps)
        or steps != sorted(steps)
    ):
        raise InvalidInput("steps: expected rising percentages in 1..100", field="steps")
    try:
        step_time = parse_duration(body.get("step_time", "30s"))
    except ValueError as exc:
        raise InvalidInput(f"step_time: {exc}", field="step_time") from None
    if step_time <= 0:
        raise InvalidInput("step_time: must be positive", field="step_time")
    gates = body.get("gates", {})
    if not isinstance(gates, dict) or set(gates) - set(Gates.__dataclass_fields__):
        raise InvalidInput(
            f"gates: expected an object with {', '.join(Gates.__dataclass_fields__)}",
            field="gates",
        )
    canary = body.get("canary_inputs", [])
    if not isinstance(canary, list) or not all(isinstance(c, dict) for c in canary):
        raise InvalidInput("canary_inputs: expected a list of input objects", "canary_inputs")
    try:
        gate_values = Gates(**{k: type(getattr(Gates, k))(v) for k, v in gates.items()})
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"gates: {exc}", field="gates") from None
    return RolloutSpec(
        _field(body, "route", str),
        _field(body, "tier", str),
        _field(body, "candidate", str),
        tuple(steps),
        step_time,
        _field(body, "shadow", bool, False),
        gate_values,
        tuple(canary),
    )


def rollout_admin_routes(rollouts: Rollouts) -> list[AdminRoute]:
    """POST /admin/rollouts (start), GET /admin/rollouts (status), POST /admin/rollouts/abort."""

    async def start(call: AdminCall) -> tuple[int, Any]:
        rollout = await rollouts.begin(parse_spec(call.json()), call.exchange.caller)
        return 201, rollout.status()

    async def status(call: AdminCall) -> tuple[int, Any]:
        route = call.query.get("route", [None])[0]
        found = [r.status() for r in rollouts.all if route in (None, r.spec.route)]
        doc: dict[str, Any] = {"rollouts": found}
        if rollouts.fleet:  # the fleet's records, from any process (null: Redis unreachable)
            doc["fleet"] = await rollouts.recorded()
        return 200, doc

    async def abort(call: AdminCall) -> tuple[int, Any]:
        body = call.json()
        route = body.get("route") if isinstance(body, dict) else None
        if not isinstance(route, str):
            raise InvalidInput("route: required", field="route")
        rollout = await rollouts.abort(route, str(body.get("reason") or "aborted by an operator"))
        return 200, rollout.status()

    return [
        AdminRoute("POST", "/admin/rollouts", start),
        AdminRoute("GET", "/admin/rollouts", status),
        AdminRoute("POST", "/admin/rollouts/abort", abort),
    ]
