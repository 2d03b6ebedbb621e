"""Loading the config a CLI command names: every problem printed with its key path, exit 2."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from failwell.config import load_config
from failwell.config.models import FailwellConfig
from failwell.errors import ConfigError

ConfigOption = Annotated[Path, typer.Option("--config", "-c", help="Path to failwell.yaml.")]
_err = Console(stderr=True)


def load(path: Path) -> FailwellConfig:
    try:
        return load_config(path)
    except ConfigError as exc:
        for issue in exc.issues:
            _err.print(f"[red]error[/red] {issue}", highlight=False, markup=True)
        raise typer.Exit(2) from None
