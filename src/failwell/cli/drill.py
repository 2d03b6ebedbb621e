"""``failwell drill FILE`` and ``failwell drill --demo``: run a chaos drill, print the verdict
and the figures, write drill.json and drill.html; exit code 0 on pass, 1 on fail, 2 on a bad
drill file."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from failwell.cli.configfile import refuse
from failwell.errors import ConfigError

out_console = Console(highlight=False)


def drill(
    file: Annotated[Path | None, typer.Argument(help="The drill file (YAML).")] = None,
    demo: Annotated[bool, typer.Option("--demo", help="Run the classic demo drill.")] = False,
    out: Annotated[Path, typer.Option(help="Where drill.json and drill.html go.")] = Path(
        "drill-out"
    ),
    workdir: Annotated[
        Path | None,
        typer.Option(help="--demo: work directory (models, config, logs); temporary if unset."),
    ] = None,
) -> None:
    """Run a drill: open-loop load, the steps' faults, per-second measurement, a verdict."""
    from failwell.drills.demo import demo_drill
    from failwell.drills.run import run_drill, summary, write_result
    from failwell.drills.spec import load_drill

    if (file is None) == (not demo):
        out_console.print("give a drill FILE or --demo (one of them)")
        raise typer.Exit(2)
    try:
        if file is None:
            spec = demo_drill(demo={"workdir": str(workdir) if workdir else None})
        else:
            spec = load_drill(file)
    except ConfigError as exc:
        refuse(exc, console=out_console)  # with the drill's report, on standard output
    result = asyncio.run(run_drill(spec, progress=out_console.print))
    json_path, html_path = write_result(result, out)
    for line in summary(result):
        out_console.print(line)
    out_console.print(f"result {json_path}   report {html_path}")
    raise typer.Exit(0 if result["verdict"] == "pass" else 1)
