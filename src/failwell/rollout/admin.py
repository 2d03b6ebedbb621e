"""The rollout admin API: POST /admin/rollouts (start), GET /admin/rollouts (status),
POST /admin/rollouts/abort. Bad bodies are 422s that name the field.

In a fleet any process takes a start or an abort: one that does not lead checks the body, then
passes the call to the process leading the fleet (``Rollouts.ask_leader``) and answers with
its reply, a refusal included (503 when no reply comes)."""

from __future__ import annotations

from typing import Any

from failwell.config.units import parse_duration
from failwell.contracts import AdminCall, AdminRoute
from failwell.errors import (
    CallerError,
    Conflict,
    FailwellError,
    FleetUnreachable,
    InvalidInput,
    NotFound,
)
from failwell.observe.logging import log
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


def _abort_args(body: Any) -> tuple[str, str]:
    route = body.get("route") if isinstance(body, dict) else None
    if not isinstance(route, str):
        raise InvalidInput("route: required", field="route")
    return route, str(body.get("reason") or "aborted by an operator")


async def _call(rollouts: Rollouts, op: str, body: Any, caller: str | None) -> tuple[int, Any]:
    """Start or abort here (this process leads)."""
    if op == "start":
        return 201, (await rollouts.begin(parse_spec(body), caller)).status()
    return 200, (await rollouts.abort(*_abort_args(body))).status()


async def answer(rollouts: Rollouts, question: dict[str, Any]) -> dict[str, Any]:
    """The leader's reply to a call another process passed on: the status and the document,
    or the refusal (its kind, message, field and status)."""
    caller = question.get("caller")
    try:
        status, doc = await _call(
            rollouts,
            str(question.get("op")),
            question.get("body"),
            caller if isinstance(caller, str) else None,
        )
    except FailwellError as exc:
        status = exc.status if isinstance(exc, CallerError) else 503
        field = getattr(exc, "field", None)
        return {
            "error": {"kind": exc.kind, "message": exc.message, "field": field, "status": status}
        }
    except Exception as exc:  # never leave the asker waiting on a bug: it gets a 503
        log.error("rollout_call_failed", exc_info=exc)
        return {"error": {"kind": "internal", "message": "see the leader's log", "status": 500}}
    return {"status": status, "doc": doc}


_REFUSALS: dict[str, type[CallerError]] = {"conflict": Conflict, "not_found": NotFound}


def replied(reply: dict[str, Any]) -> tuple[int, Any]:
    """The leader's reply as this process answers it: the same status and document, or the
    same refusal raised here."""
    error = reply.get("error")
    if error is None:
        return int(reply["status"]), reply["doc"]
    message, kind = str(error["message"]), str(error["kind"])
    if kind == "invalid_input":
        raise InvalidInput(message, error.get("field"), int(error["status"]))
    if kind in _REFUSALS:
        raise _REFUSALS[kind](message)
    if int(error["status"]) >= 500:
        raise FleetUnreachable(f"the gateway leading the fleet failed it ({kind}): {message}")
    raise Conflict(f"the gateway leading the fleet refused it ({kind}): {message}")


def rollout_admin_routes(rollouts: Rollouts) -> list[AdminRoute]:
    """POST /admin/rollouts (start), GET /admin/rollouts (status), POST /admin/rollouts/abort."""
    rollouts.answer_with(lambda question: answer(rollouts, question))

    async def here_or_leader(op: str, call: AdminCall) -> tuple[int, Any]:
        body, caller = call.json(), call.exchange.caller
        if rollouts.leads_here:
            return await _call(rollouts, op, body, caller)
        if op == "start":  # a bad body is refused here, before anything is passed on
            parse_spec(body)
        else:
            _abort_args(body)
        return replied(await rollouts.ask_leader({"op": op, "body": body, "caller": caller}))

    async def start(call: AdminCall) -> tuple[int, Any]:
        return await here_or_leader("start", call)

    async def status(call: AdminCall) -> tuple[int, Any]:
        route = call.query.get("route", [None])[0]
        found = [r.status() for r in rollouts.all if route in (None, r.spec.route)]
        doc: dict[str, Any] = {"rollouts": found}
        if rollouts.fleet:  # the fleet's records, from any process (null: Redis unreachable)
            doc["fleet"] = await rollouts.recorded()
        return 200, doc

    async def abort(call: AdminCall) -> tuple[int, Any]:
        return await here_or_leader("abort", call)

    return [
        AdminRoute("POST", "/admin/rollouts", start),
        AdminRoute("GET", "/admin/rollouts", status),
        AdminRoute("POST", "/admin/rollouts/abort", abort),
    ]
