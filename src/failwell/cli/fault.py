"""``failwell fault list|add|clear`` and ``failwell fault flags|flag``: drive a running
gateway's fault injection and flags through its admin API."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from failwell.cli.remote import GatewayOption, KeyOption, call

app = typer.Typer(help="Inject faults into a running gateway; switch tiers and backends.")
console = Console(highlight=False)


@app.command("list")
def list_faults(gateway: GatewayOption = "http://127.0.0.1:8080", key: KeyOption = None) -> None:
    """The active faults."""
    faults = call(gateway, "GET", "/admin/faults", key=key)["faults"]
    if not faults:
        console.print("no active faults")
    for f in faults:
        where = f["backend"] + (f"/{f['replica']}" if f["replica"] else "")
        console.print(
            f"{f['id']:<5} {f['kind']:<10} {where:<30} rate {f['rate']:g}  "
            f"{f['remaining_s']:.0f}s left"
        )


@app.command()
def add(
    kind: Annotated[
        str,
        typer.Argument(
            help="latency, error, hang, drop, malformed; stream_stall, stream_cut, "
            "stream_malformed, stream_error, stream_trickle."
        ),
    ],
    backend: Annotated[str, typer.Option(help="The backend.")],
    replica: Annotated[str | None, typer.Option(help="One replica; all when omitted.")] = None,
    duration: Annotated[str, typer.Option(help="How long, e.g. 30s, 5m.")] = "60s",
    rate: Annotated[float, typer.Option(help="Share of calls affected.")] = 1.0,
    latency: Annotated[
        str,
        typer.Option(help="latency: fixed part or mean, e.g. 200ms; stream_trickle: per chunk."),
    ] = "0s",
    jitter: Annotated[str, typer.Option(help="latency: spread.")] = "0s",
    distribution: Annotated[str, typer.Option(help="fixed, uniform, normal, exponential.")] = (
        "fixed"
    ),
    status: Annotated[int, typer.Option(help="error: the 5xx status.")] = 500,
    after: Annotated[int, typer.Option(help="stream faults: chunks that pass first.")] = 0,
    gateway: GatewayOption = "http://127.0.0.1:8080",
    key: KeyOption = None,
) -> None:
    """Add a fault; it expires after its duration."""
    body = {
        "kind": kind,
        "backend": backend,
        "replica": replica,
        "duration": duration,
        "rate": rate,
        "latency": latency,
        "jitter": jitter,
        "distribution": distribution,
        "status": status,
        "after": after,
    }
    fault = call(gateway, "POST", "/admin/faults", body, key=key)["fault"]
    console.print(f"added {fault['id']}: {kind} on {backend}, {fault['remaining_s']:.0f}s")


@app.command()
def clear(
    fault_id: Annotated[str | None, typer.Option("--id", help="One fault.")] = None,
    backend: Annotated[str | None, typer.Option(help="Every fault of one backend.")] = None,
    gateway: GatewayOption = "http://127.0.0.1:8080",
    key: KeyOption = None,
) -> None:
    """Clear one fault, a backend's faults, or all of them."""
    query = f"?id={fault_id}" if fault_id else f"?backend={backend}" if backend else ""
    cleared = call(gateway, "DELETE", "/admin/faults" + query, key=key)["cleared"]
    console.print(f"cleared {', '.join(cleared) or 'nothing'}")


@app.command()
def flags(gateway: GatewayOption = "http://127.0.0.1:8080", key: KeyOption = None) -> None:
    """Every tier and backend flag with its state."""
    for target, on in call(gateway, "GET", "/admin/flags", key=key)["flags"].items():
        console.print(f"{'on ' if on else '[red]off[/red]'}  {target}")


@app.command()
def flag(
    target: Annotated[str, typer.Argument(help="tier:ROUTE/TIER or backend:NAME.")],
    state: Annotated[str, typer.Argument(help="on or off.")],
    gateway: GatewayOption = "http://127.0.0.1:8080",
    key: KeyOption = None,
) -> None:
    """Switch a tier or a backend on or off (persists across restarts)."""
    if state not in ("on", "off"):
        console.print("state must be on or off")
        raise typer.Exit(2)
    got = call(gateway, "POST", "/admin/flags", {"target": target, "on": state == "on"}, key=key)
    console.print(f"{target} {state}" + ("" if got["changed"] else " (unchanged)"))
