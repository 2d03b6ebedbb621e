"""The ramp report: one self-contained HTML file (inline SVG, no scripts) with the load, the
latency against the SLO, and the replicas with each scaling decision, on one time axis; then
the checks and the decisions with their reasons."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from typing import Any

from failwell.drills.report import BOTTOM, CSS, TOP, H, W, axis, x_at

PLOT_H = H - TOP - BOTTOM
RAMP_CSS = """
.marker{stroke-width:1.5;stroke-dasharray:4 3} .marker.up{stroke:#2b8a3e}
.marker.breach{stroke:#e03131} .marker.falls{stroke:#868e96} .slo{stroke:#e03131;
stroke-dasharray:6 4} .decision.up{fill:#2b8a3e} .decision.down{fill:#1c7ed6}
"""


def _y(value: float, top: float) -> float:
    return TOP + PLOT_H * (1 - min(value, top) / top)


def _line(
    points: Sequence[tuple[float, float]], top: float, end: float, colour: str, dash: str = ""
) -> str:
    xy = " ".join(f"{x_at(t, end):.1f},{_y(v, top):.1f}" for t, v in points)
    dashes = f' stroke-dasharray="{dash}"' if dash else ""
    return f'<polyline points="{xy}" fill="none" stroke="{colour}" stroke-width="2"{dashes}/>'


def _steps(points: Sequence[tuple[float, float]], top: float, end: float, colour: str) -> str:
    stepped: list[tuple[float, float]] = []
    for t, v in points:
        if stepped:
            stepped.append((t, stepped[-1][1]))
        stepped.append((t, v))
    return _line(stepped, top, end, colour)


def _markers(result: dict[str, Any]) -> str:
    end, out = result["duration_s"], []
    marks = [
        ("up", result["first_up_s"], "first scale-up"),
        ("breach", result["first_breach_s"], "first second over the SLO"),
        ("falls", result["falls_s"], "load starts falling"),
    ]
    for kind, t, what in marks:
        if t is None:
            continue
        x = x_at(t, end)
        out.append(
            f'<line class="marker {kind}" x1="{x:.1f}" y1="{TOP}" x2="{x:.1f}" '
            f'y2="{H - BOTTOM}"><title>{escape(what)} at {t:.1f}s</title></line>'
        )
    return "".join(out)


def _figure(cls: str, title: str, legend: Sequence[tuple[str, str]], svg: str) -> str:
    keys = "".join(
        f'<span class="key"><i style="background:{c}"></i>{escape(k)}</span>' for k, c in legend
    )
    return (
        f'<figure class="{cls}"><figcaption>{escape(title)} {keys}</figcaption>'
        f'<svg viewBox="0 0 {W} {H}" width="100%" role="img" aria-label="{escape(title)}">'
        f"{svg}</svg></figure>"
    )


def _ticks(top: float, unit: str) -> list[tuple[float, str]]:
    return [(_y(top * f, top), f"{top * f:.0f}{unit}") for f in (0, 0.5, 1)]


def load_plot(result: dict[str, Any]) -> str:
    series, end = result["series"], result["duration_s"]
    top = max([r["planned"] for r in series] + [r["sent"] for r in series] + [1.0]) * 1.1
    body = [  # planned last, dashed: it lies on the sent line while the sender keeps up
        _line([(r["t"] + 0.5, r["sent"]) for r in series], top, end, "#1c7ed6"),
        _line([(r["t"] + 0.5, r["planned"]) for r in series], top, end, "#495057", "6 4"),
    ]
    svg = axis(end, _ticks(top, "/s")) + "".join(body) + _markers(result)
    legend = [("planned (dashed)", "#495057"), ("sent", "#1c7ed6")]
    return _figure("load", "Load, requests per second", legend, svg)


def latency_plot(result: dict[str, Any]) -> str:
    series, end, slo = result["series"], result["duration_s"], result["slo_p99_ms"]
    worst = max([r["p99_ms"] for r in series] + [1.0])
    top = max(slo * 1.5, min(worst, slo * 4)) * 1.05  # higher values drawn at the top edge
    live = [r for r in series if r["sent"]]
    y = _y(slo, top)
    body = [
        f'<line class="slo" x1="{x_at(0, end):.1f}" y1="{y:.1f}" x2="{x_at(end, end):.1f}" '
        f'y2="{y:.1f}"><title>SLO: p99 {slo:g} ms</title></line>',
        _line([(r["t"] + 0.5, r["p50_ms"]) for r in live], top, end, "#1c7ed6"),
        _line([(r["t"] + 0.5, r["p99_ms"]) for r in live], top, end, "#e8590c"),
    ]
    svg = axis(end, _ticks(top, "ms")) + "".join(body) + _markers(result)
    legend = [("p50", "#1c7ed6"), ("p99", "#e8590c"), (f"SLO {slo:g} ms", "#e03131")]
    return _figure(
        "latency", "Latency per second (every request, as the client saw it)", legend, svg
    )


def replicas_plot(result: dict[str, Any]) -> str:
    samples, end = result["replicas"], result["duration_s"]
    top = max([s["desired"] for s in samples] + [s["serving"] for s in samples] + [1]) + 1.0
    body = [
        _steps([(s["t"], s["desired"]) for s in samples], top, end, "#f08c00"),
        _steps([(s["t"], s["serving"]) for s in samples], top, end, "#2b8a3e"),
    ]
    for d in result["decisions"]:
        x, y = x_at(d["t"], end), _y(d["to"], top)
        tip = 6 if d["direction"] == "up" else -6
        body.append(
            f'<path class="decision {d["direction"]}" d="M{x:.1f},{y - tip:.1f} '
            f'l-5,{tip * 1.6:.1f} h10 z"><title>{d["t"]:.1f}s {d["from"]}→{d["to"]}: '
            f"{escape(d['reason'])}</title></path>"
        )
    ticks = [(_y(n, top), str(n)) for n in range(0, int(top) + 1, max(1, int(top) // 4))]
    svg = axis(end, ticks) + "".join(body) + _markers(result)
    legend = [("desired", "#f08c00"), ("serving", "#2b8a3e"), ("▲ up / ▼ down", "#495057")]
    return _figure("replicas", "Replicas and the autoscaler's decisions", legend, svg)


def _decisions_table(result: dict[str, Any]) -> str:
    rows = "".join(
        f"<tr><td>{d['t']:.1f}s</td><td>{d['from']} → {d['to']}</td>"
        f"<td>{'—' if d.get('rate') is None else format(d['rate'], '.0f')}</td>"
        f"<td>{'—' if d.get('forecast') is None else format(d['forecast'], '.0f')}</td>"
        f"<td>{escape(d['reason'])}</td></tr>"
        for d in result["decisions"]
    )
    return (
        "<table><thead><tr><th>at</th><th>replicas</th><th>req/s</th><th>forecast</th>"
        f"<th>reason</th></tr></thead><tbody>{rows}</tbody></table>"
    )


def render_ramp_html(result: dict[str, Any]) -> str:
    verdict = result["verdict"]
    checks = "".join(
        f'<li class="{"ok" if c["ok"] else "bad"}">{"✔" if c["ok"] else "✘"} '
        f"{escape(c['what'])} — {escape(c['detail'])}</li>"
        for c in result["checks"]
    )
    ready = ", ".join(f"{s:.2f}s" for s in result["decide_to_serving_s"]) or "—"
    peak = max((r["planned"] for r in result["series"]), default=0)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>failwell autoscaling ramp — {verdict}</title>
<style>{CSS}{RAMP_CSS}</style></head><body>
<h1>Autoscaling ramp to {peak:.0f} requests/s
<span class="verdict {verdict}">{verdict.upper()}</span></h1>
<p>{result["requests"]} requests over {result["duration_s"]:g}s; {result["failed"]} failed.
Decision to add → the added replicas serving: {ready}.</p>
<ul>{checks}</ul>
{load_plot(result)}
{latency_plot(result)}
{replicas_plot(result)}
<h2>Decisions</h2>{_decisions_table(result)}
</body></html>
"""
