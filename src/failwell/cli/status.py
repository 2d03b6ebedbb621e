"""``failwell status``: a terminal view of a running gateway (routes, tier distribution over the
last minutes, replicas and breakers, SLO budgets, canaries, alerts), read from its
/dashboard/feed; ``--watch`` refreshes it."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from typing import Annotated, Any

import typer
from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from failwell.cli.remote import KeyOption

app = typer.Typer(help="Show a running gateway's health at a glance.", add_completion=False)
_STATE_STYLE = {"healthy": "green", "degraded": "yellow", "unhealthy": "red", "pending": "dim"}


def fetch(url: str, window: float, key: str | None = None, timeout: float = 5.0) -> dict[str, Any]:
    headers = {"authorization": f"Bearer {key}"} if key else {}
    req = urllib.request.Request(f"{url}/dashboard/feed?window={window:g}", headers=headers)
    with urllib.request.urlopen(req, timeout=timeout) as r:
        doc: dict[str, Any] = json.loads(r.read())
        return doc


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{100 * x:.2f}%"


def _bar(shares: list[tuple[str, float]], width: int = 30) -> Text:
    colors = ["green", "blue", "yellow", "magenta", "cyan", "white"]
    text = Text()
    for i, (tier, share) in enumerate(shares):
        color = "red" if tier == "failed" else colors[i % len(colors)]
        text.append("█" * round(share * width), style=color)
    return text


def tier1_sparkline(series: list[dict[str, Any]], width: int = 30) -> Text:
    """Tier-1 share over time, oldest left: one block per slice of the window (blank: no
    traffic)."""
    marks = " ▁▂▃▄▅▆▇█"
    size = max(1, len(series) // width)
    text = Text("tier 1 ")
    for start in range(0, len(series), size):
        chunk = series[start : start + size]
        total = sum(sum(p["by_tier"]) for p in chunk)
        if total == 0:
            text.append(" ")
            continue
        share = sum(p["by_tier"][0] for p in chunk) / total
        text.append(marks[1 + round(share * 7)], style="green" if share > 0.9 else "yellow")
    return text


def _p50_p99(figures: dict[str, Any]) -> str:
    return " / ".join("—" if v is None else f"≤{v:g}ms" for v in (figures["p50"], figures["p99"]))


_SCOPES = {"fleet": "fleet-wide", "local": "", "local_fallback": "LOCAL ONLY (fleet unreachable)"}


def slo_budgets(route: dict[str, Any]) -> Text:
    """Budget left per objective, saying whose counts they are; this process's beside the
    fleet's."""
    scope = route.get("slo_scope", "local")
    text = Text(f"{_SCOPES.get(scope, scope)}\n" if _SCOPES.get(scope, scope) else "")
    if scope == "local_fallback":
        text.stylize("bold yellow")
    mine = route.get("slo_local") if scope == "fleet" else None
    for slo, figure in route["slo"].items():
        left = figure["budget_remaining"]
        style = "green" if left > 0.5 else "yellow" if left > 0.2 else "red"
        text.append(f"{slo} {_pct(left)}", style=style)
        if mine and slo in mine:
            text.append(f" (this process {_pct(mine[slo]['budget_remaining'])})", style="dim")
        text.append("\n")
    return text


def slo_view(doc: dict[str, Any]) -> str:
    """Where the SLO figures come from, for the header."""
    view = doc.get("slo_view") or {}
    if not view.get("fleet"):
        return ""
    if "unavailable" in view:
        return f"  SLOs: local-only fallback ({view['unavailable']}), from {view['instance']}"
    return f"  SLOs: fleet-wide, read {view['age_s']:.1f}s ago, from {view['instance']}"


def routes_table(doc: dict[str, Any]) -> Table:
    table = Table(title="Routes", expand=True)
    for col in ("route", "tiers (share of answers)", "p50 / p99", "canary", "SLO budget left"):
        table.add_column(col)
    for name, route in doc["routes"].items():
        traffic = route["traffic"]
        total = sum(traffic["by_tier"].values())
        shares = [(t, n / total if total else 0.0) for t, n in traffic["by_tier"].items()]
        legend = " ".join(f"{t} {100 * s:.0f}%" for t, s in shares if s > 0) or "no traffic"
        latency = _p50_p99(traffic["latency_ms"])
        ttft = traffic.get("ttft_ms") or {}
        if ttft.get("p99") is not None:  # streams: their time to first token
            latency += "\nTTFT " + _p50_p99(ttft)
        canary = route.get("canary")
        state = canary["status"] if canary else "—"
        canary_text = Text(state, style=_STATE_STYLE.get(state, ""))
        if canary and canary["failed"]:
            canary_text.append(f"\n{'; '.join(canary['failed'])[:80]}", style="dim")
        budgets = slo_budgets(route)
        table.add_row(
            name,
            Group(
                _bar(shares),
                Text(f"{legend} ({total} in {traffic['window_s']:g}s)"),
                tier1_sparkline(traffic["series"]),
            ),
            latency,
            canary_text,
            budgets,
        )
    return table


def replicas_table(doc: dict[str, Any]) -> Table:
    table = Table(title="Replicas", expand=True)
    for col in ("backend", "replica", "zone", "breaker", "rotation", "in flight"):
        table.add_column(col)
    for backend, info in doc["backends"].items():
        for r in info["replicas"]:
            health = r.get("health") or {}
            rotation = (
                Text("in", style="green")
                if r["healthy"]
                else Text(f"out: {health.get('last_error') or 'down'}"[:70], style="red")
            )
            breaker = Text(r["breaker"], style="green" if r["breaker"] == "closed" else "yellow")
            table.add_row(backend, r["name"], r["zone"], breaker, rotation, str(r["outstanding"]))
    return table


def retrain_table(doc: dict[str, Any]) -> Table | None:
    """The retraining loop of each route that retrains (None: no route does)."""
    routes = (doc.get("retrain") or {}).get("routes") or {}
    if not routes:
        return None
    table = Table(title="Retraining", expand=True)
    for col in ("route", "state", "jobs today", "cooldown left", "last decision"):
        table.add_column(col)
    for name, r in routes.items():
        state = Text(str(r["state"]))
        if r.get("held"):
            state.append(f"\nheld: {r['held']}", style="yellow")
        if r.get("adopted_rollout"):
            state.append(f"\nfollowing rollout {r['adopted_rollout']}", style="dim")
        last = r.get("last") or {}
        decided = Text("—")
        if last.get("decision"):
            style = "green" if last["decision"] == "promoted" else "yellow"
            decided = Text(f"{last['decision']} {last.get('version') or ''}".strip(), style=style)
            decided.append(f"\n{str(last.get('reason') or '')[:80]}", style="dim")
        table.add_row(
            name,
            state,
            f"{r['jobs_today']}/{r['max_per_day']}",
            f"{r['cooldown_left']:.0f}s" if r.get("cooldown_left") else "—",
            decided,
        )
    return table


def render(doc: dict[str, Any], url: str) -> Group:
    ready = Text("ready", style="bold green") if doc["ready"] else Text("NOT READY", "bold red")
    firing = doc["alerts"]["firing"]
    header = Text.assemble(f"{url}  ", ready, f"  {len(firing)} alert(s) firing", slo_view(doc))
    parts: list[Any] = [header, routes_table(doc), replicas_table(doc)]
    retraining = retrain_table(doc)
    if retraining is not None:
        parts.append(retraining)
    if doc["alerts"]["recent"]:
        lines = [
            f"{time.strftime('%H:%M:%S', time.localtime(a['at']))} {a['state'].upper():8} "
            f"{a['alert']} route={a['route']} severity={a['severity']}"
            for a in doc["alerts"]["recent"][:8]
        ]
        parts.append(Panel("\n".join(lines), title="Recent alerts"))
    return Group(*parts)


@app.callback(invoke_without_command=True)
def status(
    url: Annotated[str, typer.Option(help="Gateway base URL.")] = "http://127.0.0.1:8080",
    watch: Annotated[bool, typer.Option("--watch", "-w", help="Refresh until Ctrl-C.")] = False,
    interval: Annotated[float, typer.Option(help="Seconds between refreshes.")] = 2.0,
    window: Annotated[float, typer.Option(help="Traffic window in seconds (10-600).")] = 300.0,
    key: KeyOption = None,
) -> None:
    """Routes, tier distribution, replicas and breakers, SLO budgets, canaries, alerts, and
    the retraining loop of each route that retrains."""
    url = url.rstrip("/")
    console = Console()
    try:
        if not watch:
            console.print(render(fetch(url, window, key), url))
            return
        with Live(
            render(fetch(url, window, key), url), console=console, auto_refresh=False
        ) as live:
            while True:
                time.sleep(interval)
                live.update(render(fetch(url, window, key), url), refresh=True)
    except (urllib.error.URLError, OSError) as exc:
        Console(stderr=True).print(f"[red]error[/red] cannot read {url}/dashboard/feed: {exc}")
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        return
