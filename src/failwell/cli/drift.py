"""``failwell drift reference`` makes a route's reference statistics from data (JSON lines of
input objects, or of ``{"inputs": {...}, "outputs": ...}``); ``failwell drift status`` shows a
running gateway's drift windows and verdicts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from failwell.cli.remote import GatewayOption, KeyOption, call
from failwell.drift.monitor import flatten
from failwell.drift.stats import reference_of

app = typer.Typer(help="Drift of live inputs and outputs from a model's reference.")
out = Console(highlight=False)


def rows_of(path: Path) -> list[dict[str, Any]]:
    """Feature rows of a JSON lines file: an input object per line, or one with ``inputs``
    (and optionally ``outputs``, which become ``output.KEY`` features)."""
    rows = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except ValueError as exc:
            raise typer.BadParameter(
                f"line {number}: not JSON ({exc})", param_hint="DATA"
            ) from None
        if not isinstance(item, dict):
            raise typer.BadParameter(f"line {number}: not an object", param_hint="DATA")
        if isinstance(item.get("inputs"), dict):
            rows.append({**item["inputs"], **flatten(item.get("outputs"))})
        else:
            rows.append(item)
    return rows


def reference_json(data: Path, seed: int = 0) -> dict[str, Any]:
    """The reference statistics of a data file (see ``rows_of``), as stored with a registry
    version (its ``reference`` metadata)."""
    rows = rows_of(data)
    if not rows:
        raise typer.BadParameter(f"{data}: no rows", param_hint="DATA")
    return reference_of(rows, seed).as_json()


@app.command()
def reference(
    data: Annotated[Path, typer.Argument(help="JSON lines: input objects (and outputs).")],
    out_path: Annotated[Path, typer.Option("--out", "-o", help="Where the reference goes.")],
    seed: Annotated[int, typer.Option(help="Seed of the KS sample drawn from the data.")] = 0,
) -> None:
    """Compute reference statistics (quantile bins, category shares, a KS sample)."""
    rows = rows_of(data)
    if not rows:
        raise typer.BadParameter("no rows", param_hint="DATA")
    ref = reference_of(rows, seed)
    out_path.write_text(json.dumps(ref.as_json()))
    kinds = {
        name: type(f).__name__.removesuffix("Reference").lower() for name, f in ref.features.items()
    }
    out.print(f"{out_path}: {len(rows)} rows, features {kinds}")


@app.command()
def status(gateway: GatewayOption = "http://127.0.0.1:8080", key: KeyOption = None) -> None:
    """Each watched route's window and, per feature, PSI, p-value and verdict."""
    routes = call(gateway, "GET", "/admin/drift", key=key)["routes"]
    if not routes:
        out.print("no route has a drift monitor (routes.NAME.drift)")
        return
    for name, info in routes.items():
        table = Table(title=f"{name}: {info['window']} samples (judged from {info['min_samples']})")
        for col in ("feature", "kind", "n", "PSI", "p-value", "drifting"):
            table.add_column(col)
        for feature, f in sorted(info["features"].items()):
            flag = "[red]yes[/red]" if f["drifting"] else "no"
            table.add_row(
                feature, f["kind"], str(f["n"]), f"{f['psi']:.4f}", f"{f['p_value']:.3g}", flag
            )
        out.print(table)
