"""The ``failwell`` command: serve, check, demo."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from failwell.config import load_config
from failwell.config.models import FailwellConfig
from failwell.errors import ConfigError

app = typer.Typer(
    help="failwell: keep AI services answering when models fail.",
    no_args_is_help=True,
    add_completion=False,
)
err = Console(stderr=True)

ConfigOption = Annotated[Path, typer.Option("--config", "-c", help="Path to failwell.yaml.")]


def _load(path: Path) -> FailwellConfig:
    try:
        return load_config(path)
    except ConfigError as exc:
        for issue in exc.issues:
            err.print(f"[red]error[/red] {issue}", highlight=False, markup=True)
        raise typer.Exit(2) from None


@app.command()
def check(config: ConfigOption = Path("failwell.yaml")) -> None:
    """Validate a config and print every problem with its key path (exit code 2 on errors)."""
    cfg = _load(config)
    Console().print(f"{config}: ok ({len(cfg.routes)} routes, {len(cfg.backends)} backends)")


@app.command()
def serve(
    config: ConfigOption = Path("failwell.yaml"),
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error.")] = "info",
) -> None:
    """Run the gateway."""
    from failwell.cli.serve import run

    run(_load(config), log_level, config)


@app.command()
def demo(
    workdir: Annotated[Path, typer.Option(help="Where models, config and stores go.")] = Path(
        ".failwell-demo"
    ),
    port: Annotated[int, typer.Option(help="Gateway port.")] = 8080,
    base_port: Annotated[int, typer.Option(help="First model-server port.")] = 9001,
) -> None:
    """Train the demo models, start the demo model servers and the gateway; Ctrl-C stops all."""
    from failwell.demo.stack import run_demo

    raise typer.Exit(run_demo(workdir, port, base_port))


def main() -> None:
    app()
