"""``failwell config``: the running config's versions, and putting an earlier one back."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import typer
import yaml
from rich.console import Console
from rich.table import Table

from failwell.config import parse_config
from failwell.errors import ConfigError
from failwell.reload.history import ConfigHistory, config_version

app = typer.Typer(help="Config as code: versions, history, rollback.", no_args_is_help=True)
out, err = Console(highlight=False), Console(stderr=True, highlight=False)
ConfigOption = Annotated[Path, typer.Option("--config", "-c", help="Path to failwell.yaml.")]


@app.command()
def version(config: ConfigOption = Path("failwell.yaml")) -> None:
    """The version (hash) of the config file as it is now."""
    out.print(config_version(config.read_text()))


@app.command()
def history(
    config: ConfigOption = Path("failwell.yaml"),
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Every config version the gateway applied or rejected, oldest first."""
    entries = ConfigHistory(config).entries()
    if as_json:
        out.print_json(json.dumps(entries))
        return
    table = Table("time", "event", "version", "source", "detail")
    for e in entries:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(e["at"]))
        detail = "; ".join(e.get("issues", [])) or (
            f"from {e['previous']}" if "previous" in e else ""
        )
        table.add_row(when, e["event"], e["version"], e.get("source", ""), detail)
    out.print(table)


@app.command()
def rollback(
    target: Annotated[str | None, typer.Argument(help="Version (default: the one before).")] = None,
    config: ConfigOption = Path("failwell.yaml"),
) -> None:
    """Write an earlier config version over the file; a running gateway reloads it."""
    hist = ConfigHistory(config)
    try:
        chosen = hist.rollback_target(target)
        parse_config(yaml.safe_load(hist.text(chosen)))  # never write back a config that fails now
        hist.put_back(chosen)
    except ConfigError as exc:
        for issue in exc.issues:
            err.print(f"[red]error[/red] {issue}")
        raise typer.Exit(2) from None
    out.print(f"{config}: now version {chosen}")
