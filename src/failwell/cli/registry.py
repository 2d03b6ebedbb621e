"""``failwell registry``: push, alias, rollback, list, show, verify, restore, sync."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import msgspec
import typer
from rich.console import Console
from rich.table import Table

from failwell.cli.drift import reference_json
from failwell.config import load_config
from failwell.config.registry import RegistryConfig
from failwell.errors import ConfigError, RegistryError
from failwell.observe.logging import configure
from failwell.registry import Registry, open_registry
from failwell.registry.recovery import StoreReport, restore, verify_store

app = typer.Typer(help="Versioned, replicated model artifacts.", no_args_is_help=True)
out, err = Console(highlight=False), Console(stderr=True, highlight=False)

ConfigOption = Annotated[
    Path, typer.Option("--config", "-c", help="failwell.yaml with a registry: section.")
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def registry_config(path: Path) -> RegistryConfig:
    """The registry section of ``path``; the defaults when the file does not exist."""
    if not path.exists():
        return RegistryConfig()
    try:
        return load_config(path).registry
    except ConfigError as exc:
        for issue in exc.issues:
            err.print(f"[red]error[/red] {issue}")
        raise typer.Exit(2) from None


def open_or_exit(path: Path) -> Registry:
    configure("warning")  # warnings (a read served from a replica) go to stderr
    try:
        return open_registry(registry_config(path))
    except RegistryError as exc:
        err.print(f"[red]error[/red] {exc.message}")
        raise typer.Exit(2) from None


def _fail(exc: RegistryError) -> typer.Exit:
    err.print(f"[red]error[/red] {exc.message}")
    return typer.Exit(1)


def _print_json(value: Any) -> None:
    out.print_json(msgspec.json.encode(value).decode())


def parse_meta(items: list[str]) -> dict[str, Any]:
    """``key=value`` pairs; dotted keys nest (``metrics.auc=0.8``); values parse as JSON when
    they can (numbers, true/false, lists), else stay strings."""
    meta: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"expected key=value, got {item!r}", param_hint="--meta")
        try:
            value: Any = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        *parents, leaf = key.split(".")
        node = meta
        for p in parents:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise typer.BadParameter(f"{key}: {p} is not a mapping", param_hint="--meta")
        node[leaf] = value
    return meta


@app.command()
def push(
    name: str,
    path: Path,
    meta: Annotated[
        list[str] | None,
        typer.Option("--meta", "-m", help="key=value metadata (schema, metrics, data, code)."),
    ] = None,
    creator: Annotated[str | None, typer.Option(help="Who made it (default: $USER).")] = None,
    config: ConfigOption = Path("failwell.yaml"),
    as_json: JsonOption = False,
    reference: Annotated[
        Path | None,
        typer.Option(
            "--reference",
            help="JSON lines the model was trained on: their drift reference statistics are "
            "stored with the version.",
        ),
    ] = None,
) -> None:
    """Store a file or folder as a new immutable version of NAME."""
    values = parse_meta(meta or [])
    if reference is not None:
        values["reference"] = reference_json(reference)
    reg = open_or_exit(config)
    try:
        version = reg.push(name, path, values, creator)
    except RegistryError as exc:
        raise _fail(exc) from None
    if as_json:
        _print_json(version)
    else:
        out.print(
            f"{version.ref} {version.digest} ({version.size} bytes, {len(version.files)} files)"
        )
    if reg.replicator.drain():
        err.print("async replicas caught up")


@app.command()
def alias(
    name: str, alias: str, version: str, config: ConfigOption = Path("failwell.yaml")
) -> None:
    """Point ALIAS (production, canary, any name) of NAME at VERSION."""
    try:
        old = open_or_exit(config).set_alias(name, alias, version)
    except RegistryError as exc:
        raise _fail(exc) from None
    out.print(f"{name}@{alias}: {old or '(none)'} → {version}")


@app.command()
def rollback(name: str, config: ConfigOption = Path("failwell.yaml")) -> None:
    """Move NAME's production alias back to previous."""
    try:
        was, now = open_or_exit(config).rollback(name)
    except RegistryError as exc:
        raise _fail(exc) from None
    out.print(f"{name}@production: {was} → {now}")


@app.command("list")
def list_(
    name: Annotated[str | None, typer.Argument()] = None,
    config: ConfigOption = Path("failwell.yaml"),
    as_json: JsonOption = False,
) -> None:
    """Models, or the versions of one model with their aliases."""
    reg = open_or_exit(config)
    try:
        names = [name] if name else reg.names()
        rows = {n: (reg.versions(n), reg.aliases(n)) for n in names}
    except RegistryError as exc:
        raise _fail(exc) from None
    if as_json:
        _print_json({n: {"versions": v, "aliases": a} for n, (v, a) in rows.items()})
        return
    table = Table("model", "version", "aliases", "digest", "size", "created", "creator")
    for n, (versions, aliases) in rows.items():
        for v in versions:
            tags = ", ".join(a for a, t in aliases.items() if t == v.version)
            table.add_row(n, v.version, tags, v.digest[7:19], str(v.size), v.created, v.creator)
    out.print(table)


@app.command()
def show(
    ref: str,
    checkout: Annotated[bool, typer.Option(help="Unpack it, verified, and print where.")] = False,
    config: ConfigOption = Path("failwell.yaml"),
    as_json: JsonOption = False,
) -> None:
    """One version (NAME@VERSION or NAME@ALIAS) with its metadata and files."""
    cfg = registry_config(config)
    reg = open_or_exit(config)
    try:
        version = reg.resolve(ref)
        body: dict[str, Any] = msgspec.to_builtins(version)
        if checkout:
            body["checkout"] = str(reg.checkout(version, Path(cfg.checkouts)))
    except RegistryError as exc:
        raise _fail(exc) from None
    body["fallbacks"] = reg.fallbacks
    if as_json:
        _print_json(body)
    else:
        out.print(yaml_like(body))


def yaml_like(body: dict[str, Any]) -> str:
    import yaml

    return yaml.safe_dump(body, sort_keys=False, allow_unicode=True).rstrip()


def report_body(report: StoreReport) -> dict[str, Any]:
    return {
        "ok": report.ok,
        "versions": report.versions,
        "aliases": report.aliases,
        "blobs": report.blobs,
        "bytes": report.bytes,
        "problems": report.problems,
    }


@app.command()
def verify(
    store: Annotated[str | None, typer.Option(help="One store (default: every store).")] = None,
    config: ConfigOption = Path("failwell.yaml"),
    as_json: JsonOption = False,
) -> None:
    """Check every blob, record and alias on each store against its SHA-256 (exit 1 if bad)."""
    reg = open_or_exit(config)
    stores = [reg.primary, *(r.store for r in reg.replicas)]
    try:
        chosen = [reg.store(store)] if store else stores
        reports = [verify_store(s) for s in chosen]
    except RegistryError as exc:
        raise _fail(exc) from None
    if as_json:
        _print_json({r.store: report_body(r) for r in reports})
    else:
        for r in reports:
            state = "[green]ok[/green]" if r.ok else "[red]BAD[/red]"
            out.print(f"{r.store}: {state} {len(r.versions)} versions, {r.blobs} blobs")
            for p in r.problems:
                out.print(f"  {p}")
    if not all(r.ok for r in reports):
        raise typer.Exit(1)


@app.command("restore")
def restore_(
    source: Annotated[str, typer.Option("--from", help="The replica to rebuild from.")],
    config: ConfigOption = Path("failwell.yaml"),
    as_json: JsonOption = False,
) -> None:
    """Rebuild a lost or damaged primary from a replica, proving every checksum."""
    reg = open_or_exit(config)
    try:
        report = restore(reg, source)
    except RegistryError as exc:
        raise _fail(exc) from None
    if as_json:
        _print_json(
            {**report_body(report.verified), "copied": report.copied, "seconds": report.seconds}
        )
    else:
        state = "ok" if report.verified.ok else "PROBLEMS"
        out.print(
            f"restored from {source}: {report.copied} objects in {report.seconds:.2f}s, "
            f"{len(report.verified.versions)} versions verified: {state}"
        )
    if not report.verified.ok:
        raise typer.Exit(1)


@app.command()
def sync(config: ConfigOption = Path("failwell.yaml")) -> None:
    """Copy what the asynchronous replicas have not received yet, and print their lag."""
    reg = open_or_exit(config)
    try:
        copied = reg.replicator.drain()
    except RegistryError as exc:
        raise _fail(exc) from None
    out.print(f"copied {copied} objects")
    for lag in reg.replicator.lag():
        out.print(f"{lag.store}: {lag.pending} pending, lag {lag.seconds:.1f}s")
