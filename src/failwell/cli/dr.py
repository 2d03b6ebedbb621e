"""``failwell dr``: disaster-recovery drills (docs/disaster-recovery.md)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from failwell.cli.registry import ConfigOption, JsonOption, open_or_exit
from failwell.errors import RegistryError
from failwell.registry.drill import drill as run_drill

app = typer.Typer(help="Disaster-recovery drills.", no_args_is_help=True)
out, err = Console(highlight=False), Console(stderr=True, highlight=False)


@app.command()
def drill(
    source: Annotated[
        str | None, typer.Option("--from", help="Replica to restore from (default: the first).")
    ] = None,
    config: ConfigOption = Path("failwell.yaml"),
    as_json: JsonOption = False,
) -> None:
    """In a scratch copy: destroy the primary store, restore it from a replica, verify every
    version and alias; report recovery time and recovery point (exit 1 if anything is lost)."""
    reg = open_or_exit(config)
    if not reg.replicas:
        err.print("[red]error[/red] the registry has no replica to restore from")
        raise typer.Exit(2)
    try:
        report = run_drill(reg, source or reg.replicas[0].store.name)
    except RegistryError as exc:
        err.print(f"[red]error[/red] {exc.message}")
        raise typer.Exit(1) from None
    if as_json:
        out.print_json(json.dumps({**dataclasses.asdict(report), "ok": report.ok}))
    else:
        state = "[green]PASSED[/green]" if report.ok else "[red]FAILED[/red]"
        out.print(f"DR drill from {report.source}: {state}")
        out.print(f"  recovery time:  {report.recovery_seconds:.2f}s")
        out.print(
            f"  recovery point: {len(report.lost_versions)} versions lost, "
            f"replica lag {report.replica_lag:.1f}s"
        )
        out.print(f"  versions:       {report.restored}/{report.versions} identical checksums")
        for line in [*report.lost_versions, *report.changed_aliases, *report.problems]:
            out.print(f"  {line}")
    if not report.ok:
        raise typer.Exit(1)
