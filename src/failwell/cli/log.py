"""``failwell log tail|export|verify|replay``: read the inference and audit log."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import msgspec
import typer
from rich.console import Console
from rich.table import Table

from failwell.cli.configfile import load
from failwell.config.log import LogConfig
from failwell.log.query import Consumer, Filter, parse_when, select
from failwell.log.records import GENESIS
from failwell.log.records import verify as verify_lines
from failwell.log.store import STREAMS, LogStore, open_store

app = typer.Typer(help="Read, verify, export and replay the inference and audit log.")
out = Console()
err = Console(stderr=True)
_encode = msgspec.json.Encoder().encode

ConfigOption = Annotated[Path, typer.Option("--config", "-c", help="Path to failwell.yaml.")]
StreamOption = Annotated[str, typer.Option(help="inference or audit.")]
Since = Annotated[str | None, typer.Option(help="ISO time (UTC if no zone) or '15m' ago.")]
Until = Annotated[str | None, typer.Option(help="ISO time (UTC if no zone) or '15m' ago.")]


def _store(config: Path, stream: str) -> tuple[LogConfig, LogStore]:

    if stream not in STREAMS:
        err.print(f"[red]error[/red] --stream must be one of {', '.join(STREAMS)}")
        raise typer.Exit(2)
    cfg = load(config).log
    return cfg, open_store(cfg, stream)


def _print(fields: dict[str, Any]) -> None:
    sys.stdout.buffer.write(_encode(fields) + b"\n")
    sys.stdout.buffer.flush()


@app.command()
def tail(
    config: ConfigOption = Path("failwell.yaml"),
    stream: StreamOption = "inference",
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Wait for new records.")] = False,
    route: Annotated[str | None, typer.Option(help="Only this route.")] = None,
    tier: Annotated[str | None, typer.Option(help="Only answers of this tier.")] = None,
    lines: Annotated[int, typer.Option("-n", help="Start this many records from the end.")] = 10,
    consumer: Annotated[
        str | None,
        typer.Option(help="Read as this named consumer: start after its stored offset, ack each."),
    ] = None,
    poll: Annotated[float, typer.Option(help="Seconds between polls with --follow.")] = 0.2,
    pause: Annotated[float, typer.Option(help="Seconds to wait after each record (throttle).")] = 0,
) -> None:
    """Print records as JSON lines (with --consumer: every record not yet acknowledged)."""
    _, store = _store(config, stream)
    match = Filter(route=route, tier=tier)
    reader = Consumer(store, consumer) if consumer else None
    after = reader.offset if reader else max(0, store.next_seq - 1 - lines)
    try:
        while True:
            page = store.read(after, 500)
            for record in page:
                fields = record.fields()
                if match(fields):
                    _print(fields)
                if reader is not None:
                    reader.ack(record.seq)  # after the record is out: no gap, no duplicate
                after = record.seq
                if pause:
                    time.sleep(pause)
            if not page:
                if not follow:
                    return
                time.sleep(poll)
    except KeyboardInterrupt:
        return
    finally:
        store.close()


@app.command()
def export(
    output: Annotated[Path, typer.Option("--out", "-o", help="File to write.")],
    config: ConfigOption = Path("failwell.yaml"),
    stream: StreamOption = "inference",
    fmt: Annotated[str, typer.Option("--format", help="jsonl or parquet.")] = "jsonl",
    since: Since = None,
    until: Until = None,
    route: Annotated[str | None, typer.Option(help="Only this route.")] = None,
) -> None:
    """Write the records in [since, until) as JSON lines or a Parquet file."""
    if fmt not in ("jsonl", "parquet"):
        err.print("[red]error[/red] --format must be jsonl or parquet")
        raise typer.Exit(2)
    _, store = _store(config, stream)
    match = Filter(parse_when(since), parse_when(until), route)
    rows = select(store, match)
    if fmt == "jsonl":
        n = 0
        with output.open("wb") as f:
            for fields in rows:
                f.write(_encode(fields) + b"\n")
                n += 1
    else:
        from failwell.cli.parquet import write_parquet

        n = write_parquet(rows, output)
    store.close()
    err.print(f"{n} records → {output}")


@app.command()
def verify(config: ConfigOption = Path("failwell.yaml"), stream: StreamOption = "all") -> None:
    """Check the hash chain; exit 1 naming the first bad record's position."""
    bad = False
    for name in STREAMS if stream == "all" else (stream,):
        _, store = _store(config, name)
        first = store.first_seq()
        verdict = verify_lines(store.lines(), GENESIS if first == 1 else None, first)
        store.close()
        span = f"records {verdict.first}..{verdict.last}" if verdict.checked else "no records"
        if verdict.ok:
            out.print(f"{name}: ok ({verdict.checked} checked, {span})")
        else:
            bad = True
            out.print(f"{name}: [red]BAD[/red] {verdict.problem} (after {verdict.checked} good)")
    if bad:
        raise typer.Exit(1)


@app.command()
def replay(
    to: Annotated[str, typer.Option(help="Base URL of the gateway to send to.")],
    config: ConfigOption = Path("failwell.yaml"),
    since: Since = None,
    until: Until = None,
    route: Annotated[str | None, typer.Option(help="Only this route.")] = None,
    rate: Annotated[float | None, typer.Option(help="At most this many requests/s.")] = None,
    concurrency: Annotated[int, typer.Option(help="Requests in flight.")] = 8,
) -> None:
    """Send the logged inputs again and report differences in outputs and tiers."""
    from failwell.cli.replay import replay as run

    _, store = _store(config, "inference")
    rows = select(store, Filter(parse_when(since), parse_when(until), route))
    report = asyncio.run(run(rows, to, rate=rate, concurrency=concurrency))
    store.close()
    table = Table("replayed", "same outputs", "different", "same tier", "errors", "skipped")
    table.add_row(
        *map(
            str,
            (
                report.sent,
                report.same_outputs,
                report.different_outputs,
                report.same_tier,
                report.errors,
                report.skipped,
            ),
        )
    )
    out.print(table)
    for d in report.differences:
        out.print(
            f"{d.request_id} {d.route}: tier {d.logged_tier} → {d.replayed_tier}; "
            f"outputs {_encode(d.logged_outputs).decode()} → {_encode(d.replayed_outputs).decode()}",
            highlight=False,
            markup=False,
        )
