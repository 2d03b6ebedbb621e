"""The ``failwell`` command: serve, check, demo, status."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from failwell.cli import drill as drill_cli
from failwell.cli import fault as fault_cli
from failwell.cli.configfile import ConfigOption, load, refuse
from failwell.cli.status import app as status_app
from failwell.config.load import config_from_text
from failwell.config.models import FailwellConfig
from failwell.errors import ConfigError
from failwell.gateway.restart import needs_restart
from failwell.reload.history import ConfigHistory

app = typer.Typer(
    help="failwell: keep AI services answering when models fail.",
    no_args_is_help=True,
    add_completion=False,
)
app.add_typer(status_app, name="status")
app.add_typer(fault_cli.app, name="fault")
app.command("drill")(drill_cli.drill)
err = Console(stderr=True)


@app.command()
def check(
    config: ConfigOption = Path("failwell.yaml"),
    probe: Annotated[
        bool,
        typer.Option(
            "--probe",
            help="Also ask tier 1's V2 server for the tensor specs of routes that take them from "
            "it, and print the schema each would use (exit 2 on a conflict, 1 when unreachable).",
        ),
    ] = False,
) -> None:
    """Validate a config and print every problem with its key path (exit code 2 on errors)."""
    cfg = load(config)
    out = Console()
    out.print(f"{config}: ok ({len(cfg.routes)} routes, {len(cfg.backends)} backends)")
    for key in restart_keys(config, cfg):
        out.print(
            f"[yellow]needs a restart[/yellow] {key} (changed since the version applied last)"
        )
    if probe:
        from failwell.cli.probe import print_probes

        raise typer.Exit(print_probes(cfg))


def restart_keys(path: Path, config: FailwellConfig) -> list[str]:
    """Keys of ``config`` that differ from the version a gateway on ``path`` applied last and
    that a reload cannot apply (none when no gateway has run it)."""
    history = ConfigHistory(path)
    applied = history.applied()
    if not applied:
        return []
    try:
        running = config_from_text(history.text(applied[-1]), path.resolve().parent)
    except ConfigError:
        return []
    return needs_restart(running, config)


@app.command()
def serve(
    config: ConfigOption = Path("failwell.yaml"),
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error.")] = "info",
    workers: Annotated[
        int | None,
        typer.Option(
            help="Processes serving one port; default: one per core with a fleet section "
            "(they share state through its Redis), else 1.",
        ),
    ] = None,
) -> None:
    """Run the gateway."""
    from failwell.cli.serve import run

    try:
        run(load(config), log_level, config, workers)
    except ConfigError as exc:  # found while building: a model_ref that cannot be served
        refuse(exc)


@app.command()
def demo(
    workdir: Annotated[Path, typer.Option(help="Where models, config and stores go.")] = Path(
        ".failwell-demo"
    ),
    port: Annotated[int, typer.Option(help="Gateway port.")] = 8080,
    base_port: Annotated[int, typer.Option(help="First model-server port.")] = 9001,
    drift: Annotated[
        bool,
        typer.Option(
            "--drift",
            help="Instead: the retraining loop live (drift, a killed and resumed job, gate, "
            "canary, promotion) with its figures; in WORKDIR/drift on a free port.",
        ),
    ] = False,
    fleet: Annotated[
        bool,
        typer.Option(
            "--fleet",
            help="Share state through a redis-server the demo starts (base port + 300); the "
            "gateway runs one worker per core.",
        ),
    ] = False,
) -> None:
    """Train the demo models, start the demo model servers and the gateway; Ctrl-C stops all."""
    if drift:
        from failwell.demo.driftstory import run_drift_demo

        raise typer.Exit(run_drift_demo(workdir / "drift"))
    from failwell.demo.stack import run_demo

    raise typer.Exit(run_demo(workdir, port, base_port, fleet=fleet))


from failwell.cli.log import app as log_app  # noqa: E402  (sub-apps after the root app)

app.add_typer(log_app, name="log")
from failwell.cli import config as config_cli  # noqa: E402
from failwell.cli import dr as dr_cli  # noqa: E402
from failwell.cli import drift as drift_cli  # noqa: E402
from failwell.cli import registry as registry_cli  # noqa: E402
from failwell.cli import rollout as rollout_cli  # noqa: E402
from failwell.cli.train import train as train_command  # noqa: E402

app.add_typer(registry_cli.app, name="registry")
app.add_typer(rollout_cli.app, name="rollout")
app.add_typer(dr_cli.app, name="dr")
app.add_typer(drift_cli.app, name="drift")
app.command("train")(train_command)
app.add_typer(config_cli.app, name="config")


def main() -> None:
    app()
