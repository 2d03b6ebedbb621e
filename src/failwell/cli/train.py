"""``failwell train JOB.yaml``: run a training job (checkpointed, resumable) to a new registry
version of its model, with the drift reference of its training data in the version's metadata.

``--events`` prints one JSON object a line instead of the progress bar (a ``checkpoint`` per
checkpoint, a ``done`` at the end): what the retraining loop reads from the job it runs."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from failwell.cli.configfile import ConfigOption, load, refuse
from failwell.cli.drift import reference_json
from failwell.config.log import LogConfig
from failwell.config.models import FailwellConfig
from failwell.config.registry import RegistryConfig
from failwell.config.training import TrainingJobConfig
from failwell.errors import ConfigError, RegistryError
from failwell.registry.artifacts import Version, parse_ref
from failwell.training.fit import RouteSchema
from failwell.training.job import Job
from failwell.training.runner import load_job, run_job

err = Console(stderr=True, highlight=False)


def emit(event: str, **detail: Any) -> None:
    sys.stdout.write(json.dumps({"event": event, **detail}, default=str) + "\n")
    sys.stdout.flush()


def _with_bar(
    job: TrainingJobConfig,
    registry: RegistryConfig,
    log: LogConfig | None,
    schema: RouteSchema | None,
) -> tuple[Version, Job]:
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

        return run_job(job, registry, progress, reference_json, log=log, schema=schema)


def route_schema(gateway: FailwellConfig, job: TrainingJobConfig) -> RouteSchema | None:
    """What the route serving the job's model declares: the ``from_log`` route, else the
    first route with a tier whose backend serves the model from the registry."""
    for name, rc in gateway.routes.items():
        if job.from_log is not None and name != job.from_log.route:
            continue
        serves = any(
            (b := gateway.backends.get(t.backend or "")) is not None
            and b.model_ref is not None
            and parse_ref(b.model_ref)[0] == job.model
            for t in rc.tiers
        )
        if job.from_log is None and not serves:
            continue
        outputs = [rc.quality.output] if rc.quality is not None and rc.quality.output else []
        inputs = {k: v.value for k, v in rc.input.items()}
        return RouteSchema(name, inputs, tuple(outputs))
    return None


def train(
    job_file: Annotated[Path, typer.Argument(help="The training job (YAML).")],
    config: ConfigOption = Path("failwell.yaml"),
    events: Annotated[
        bool, typer.Option("--events", help="JSON lines (checkpoint, done) on stdout.")
    ] = False,
) -> None:
    """Train a model version; a job killed mid-way resumes from its last checkpoint when run
    again. The registry is the one ``--config`` names (its defaults when the file is absent).
    Exit 3 when the job's gate rejects the candidate (it is registered with the reason)."""
    try:
        job = load_job(job_file)
    except ConfigError as exc:
        refuse(exc, f"{job_file}: ")
    gateway = load(config) if config.exists() else None
    registry = gateway.registry if gateway is not None else RegistryConfig()
    log = gateway.log if gateway is not None else None
    schema = route_schema(gateway, job) if gateway is not None else None
    try:
        if events:
            version, ran = run_job(
                job,
                registry,
                None,
                reference_json,
                lambda step: emit("checkpoint", step=step),
                log=log,
                schema=schema,
            )
        else:
            version, ran = _with_bar(job, registry, log, schema)
    except ConfigError as exc:
        refuse(exc, f"{config}: ")
    except RegistryError as exc:
        err.print(f"[red]error[/red] {exc.message}")
        raise typer.Exit(2) from None
    gate = version.meta.get("gate")
    logged = version.meta["training"].get("from_log")
    if logged is not None and not events:
        err.print(
            f"{logged['rows']} rows from the log; {logged['unlabelled']} requests without a"
            " label left out",
            highlight=False,
        )
    if events:
        emit(
            "done",
            version=version.ref,
            resumed_from=ran.resumed_from,
            checkpoints=ran.saved,
            from_log=logged,
            metrics=ran.metrics,
            gate=gate,
        )
    else:
        resumed = f", resumed from step {ran.resumed_from}" if ran.resumed_from is not None else ""
        Console().print(
            f"{version.ref}: {ran.saved} checkpoints{resumed}; metrics {ran.metrics}",
            highlight=False,
        )
        if gate is not None:
            verdict = "passed" if gate["passed"] else "REJECTED"
            Console().print(f"gate {verdict}: {gate['reason']}", highlight=False)
    if gate is not None and not gate["passed"]:
        raise typer.Exit(3)


if __name__ == "__main__":  # the retraining loop runs jobs this way: fewer imports than the CLI
    typer.run(train)
