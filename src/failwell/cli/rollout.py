"""``failwell rollout``: start, status and abort canary rollouts on a running gateway."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from failwell.cli.remote import GatewayOption, KeyOption, call

app = typer.Typer(help="Canary rollouts with automatic rollback.", no_args_is_help=True)
out, err = Console(highlight=False), Console(stderr=True, highlight=False)

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def show(rollout: dict[str, Any]) -> None:
    out.print(
        f"{rollout['route']}/{rollout['tier']} → {rollout['candidate']}: "
        f"[bold]{rollout['state']}[/bold] step {rollout['step']}/{len(rollout['steps'])} "
        f"(weight {rollout['weight']:.0%}){' shadow' if rollout['shadow'] else ''}"
    )
    if rollout["reason"]:
        out.print(f"  reason: {rollout['reason']}")
    table = Table("arm", "requests", "errors", "error rate", "p99 ms")
    for arm in ("stable", "candidate"):
        s = rollout[f"{arm}_stats"]
        table.add_row(
            arm, str(s["requests"]), str(s["errors"]), f"{s['error_rate']:.2%}", f"{s['p99_ms']}"
        )
    out.print(table)


@app.command()
def start(
    route: str,
    tier: Annotated[str, typer.Option(help="The model tier to split.")],
    candidate: Annotated[str, typer.Option(help="NAME@VERSION from the registry, or a backend.")],
    steps: Annotated[str, typer.Option(help="Candidate shares in percent.")] = "5,25,50,100",
    step_time: Annotated[str, typer.Option(help="Time per step, e.g. 30s.")] = "30s",
    shadow: Annotated[
        bool, typer.Option(help="Copy traffic to the candidate; discard it.")
    ] = False,
    gateway: GatewayOption = "http://127.0.0.1:8080",
    key: KeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Start a rollout: step the candidate's share up; promote or roll back on its own."""
    try:
        percents = [int(p) for p in steps.split(",")]
    except ValueError:
        raise typer.BadParameter(
            "expected percentages such as 5,25,50,100", param_hint="--steps"
        ) from None
    body = {
        "route": route,
        "tier": tier,
        "candidate": candidate,
        "steps": percents,
        "step_time": step_time,
        "shadow": shadow,
    }
    started = call(gateway, "POST", "/admin/rollouts", body, key)
    if as_json:
        out.print_json(json.dumps(started))
    else:
        show(started)


@app.command()
def status(
    route: Annotated[str | None, typer.Argument()] = None,
    gateway: GatewayOption = "http://127.0.0.1:8080",
    key: KeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Rollouts of this gateway (running and finished), with each arm's figures."""
    query = f"?route={route}" if route else ""
    found = call(gateway, "GET", f"/admin/rollouts{query}", key=key)["rollouts"]
    if as_json:
        out.print_json(json.dumps(found))
        return
    if not found:
        out.print("no rollouts")
    for rollout in found:
        show(rollout)


@app.command()
def abort(
    route: str,
    reason: Annotated[
        str, typer.Option(help="Why; goes to the audit log.")
    ] = "aborted by an operator",
    gateway: GatewayOption = "http://127.0.0.1:8080",
    key: KeyOption = None,
) -> None:
    """Stop the running rollout of ROUTE and put stable back."""
    show(call(gateway, "POST", "/admin/rollouts/abort", {"route": route, "reason": reason}, key))
