"""``failwell train JOB.yaml``: run a training job (checkpointed, resumable) to a new registry
version of its model."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from failwell.cli.configfile import ConfigOption, load, refuse
from failwell.config.registry import RegistryConfig
from failwell.errors import ConfigError, RegistryError
from failwell.training.runner import load_job, run_job

err = Console(stderr=True, highlight=False)


def train(
    job_file: Annotated[Path, typer.Argument(help="The training job (YAML).")],
    config: ConfigOption = Path("failwell.yaml"),
) -> None:
    """Train a model version; a job killed mid-way resumes from its last checkpoint when run
    again. The registry is the one ``--config`` names (its defaults when the file is absent).
    Exit 3 when the job's gate rejects the candidate (it is registered with the reason)."""
    try:
        job = load_job(job_file)
    except ConfigError as exc:
        refuse(exc, f"{job_file}: ")
    registry = load(config).registry if config.exists() else RegistryConfig()
    columns = (
        TextColumn(f"training {job.model}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=err, transient=True) as bar:
        task = bar.add_task("train", total=None)

        def progress(step: int, total: int | None) -> None:
            bar.update(task, completed=step, total=total)

        try:
            version, ran = run_job(job, registry, progress)
        except RegistryError as exc:
            err.print(f"[red]error[/red] {exc.message}")
            raise typer.Exit(2) from None
    resumed = f", resumed from step {ran.resumed_from}" if ran.resumed_from is not None else ""
    Console().print(
        f"{version.ref}: {ran.saved} checkpoints{resumed}; metrics {ran.metrics}", highlight=False
    )
    gate = version.meta.get("gate")
    if gate is not None:
        verdict = "passed" if gate["passed"] else "REJECTED"
        Console().print(f"gate {verdict}: {gate['reason']}", highlight=False)
        if not gate["passed"]:
            raise typer.Exit(3)
