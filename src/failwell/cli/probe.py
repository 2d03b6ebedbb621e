"""``failwell check --probe``: the tensor specs each server-schema route would use."""

from __future__ import annotations

import asyncio

from rich.console import Console
from rich.table import Table

from failwell.config.models import FailwellConfig
from failwell.gateway.schemas import probe_all


def print_probes(config: FailwellConfig) -> int:
    """Print each route's schema (or why it has none); the exit code: 2 on a conflict, 1 when
    a server did not answer, else 0."""
    out = Console()
    code = 0
    probes = asyncio.run(probe_all(config))
    if not probes:
        out.print("no route takes its tensor specs from a model server")
    for found in probes:
        if found.unreachable is not None:
            out.print(
                f"[yellow]{found.route}[/yellow]: model server did not answer: {found.unreachable}"
            )
            code = max(code, 1)
            continue
        for conflict in found.conflicts:
            out.print(f"[red]{found.route}[/red]: {conflict}", highlight=False)
            code = 2
        if found.schema is None or found.conflicts:
            continue
        table = Table(title=f"route {found.route}: tensor specs from its model server")
        for column in ("role", "tensor", "datatype", "shape"):
            table.add_column(column)
        for role, specs in (("input", found.schema.inputs), ("output", found.schema.outputs)):
            for name, spec in specs.items():
                table.add_row(role, name, spec.datatype.value, str(list(spec.shape)))
        out.print(table)
    return code
