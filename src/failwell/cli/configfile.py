"""Loading the config a CLI command names: every problem printed with its key path, exit 2."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console

from failwell.config import load_config
from failwell.config.models import FailwellConfig
from failwell.errors import ConfigError

ConfigOption = Annotated[Path, typer.Option("--config", "-c", help="Path to failwell.yaml.")]
_err = Console(stderr=True)


def refuse(exc: ConfigError, where: str = "", console: Console = _err) -> NoReturn:
    """Print every issue (with its key path) and exit 2."""
    for issue in exc.issues:
        console.print(f"[red]error[/red] {where}{issue}", highlight=False, markup=True)
    raise typer.Exit(2) from None


def load(path: Path) -> FailwellConfig:
    try:
        return load_config(path)
    except ConfigError as exc:
        refuse(exc)
