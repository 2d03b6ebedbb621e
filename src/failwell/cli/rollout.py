"""``failwell rollout``: start, status and abort canary rollouts on a running gateway."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(help="Canary rollouts with automatic rollback.", no_args_is_help=True)
out, err = Console(highlight=False), Console(stderr=True, highlight=False)

GatewayOption = Annotated[
    str, typer.Option("--gateway", "-g", help="Base URL of the running gateway.")
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def admin(gateway: str, path: str, body: Any = None) -> Any:
    """Call the gateway's admin API; a 4xx prints its message and exits 1."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(
        gateway.rstrip("/") + path, data=data, headers={"content-type": "application/json"}
    )
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        try:
            message = json.loads(exc.read())["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = str(exc)
        err.print(f"[red]error[/red] {message}")
        raise typer.Exit(1) from None
    except (urllib.error.URLError, OSError) as exc:
        err.print(f"[red]error[/red] cannot reach {gateway}: {exc}")
        raise typer.Exit(1) from None


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
    started = admin(gateway, "/admin/rollouts", body)
    if as_json:
        out.print_json(json.dumps(started))
    else:
        show(started)


@app.command()
def status(
    route: Annotated[str | None, typer.Argument()] = None,
    gateway: GatewayOption = "http://127.0.0.1:8080",
    as_json: JsonOption = False,
) -> None:
    """Rollouts of this gateway (running and finished), with each arm's figures."""
    query = f"?route={route}" if route else ""
    found = admin(gateway, f"/admin/rollouts{query}")["rollouts"]
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
) -> None:
    """Stop the running rollout of ROUTE and put stable back."""
    show(admin(gateway, "/admin/rollouts/abort", {"route": route, "reason": reason}))
