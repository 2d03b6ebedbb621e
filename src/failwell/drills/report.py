"""The drill report: one self-contained HTML file (inline SVG, no scripts, nothing fetched)
with the verdict, tier share and latency over time with the fault windows marked, and a
table per step."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from typing import Any

from failwell.drills.analysis import NO_ANSWER

PALETTE = ["#2b8a3e", "#1c7ed6", "#f08c00", "#ae3ec9", "#868e96", "#495057"]
FAILED_COLOUR = "#e03131"
W, H, LEFT, RIGHT, TOP, BOTTOM = 900, 236, 48, 12, 40, 26


def _colours(tiers: Sequence[str]) -> dict[str, str]:
    colours = {t: PALETTE[i % len(PALETTE)] for i, t in enumerate(tiers)}
    colours[NO_ANSWER] = FAILED_COLOUR
    return colours


def x_at(t: float, end: float) -> float:
    return LEFT + (W - LEFT - RIGHT) * (min(t, end) / end if end else 0)


def _windows(result: dict[str, Any], end: float) -> str:
    out = []
    for i, step in enumerate(result["steps"]):
        x0, x1 = x_at(step["start"], end), x_at(step["end"], end)
        kind = "restore-window" if any("restore" in a for a in step["actions"]) else "fault-window"
        title = escape(f"{step['name']}: {'; '.join(step['actions'])}")
        out.append(
            f'<g class="{kind}"><title>{title}</title>'
            f'<rect x="{x0:.1f}" y="{TOP}" width="{max(1.0, x1 - x0):.1f}" '
            f'height="{H - TOP - BOTTOM}" /><text x="{x0 + 3:.1f}" y="{TOP - 6 - 14 * (i % 2)}">'
            f"{escape(step['name'])}</text></g>"
        )
    return "".join(out)


def axis(end: float, y_labels: Sequence[tuple[float, str]]) -> str:
    parts = [
        f'<line class="axis" x1="{LEFT}" y1="{H - BOTTOM}" x2="{W - RIGHT}" y2="{H - BOTTOM}"/>'
    ]
    step = max(1, round(end / 10))
    for t in range(0, int(end) + 1, step):
        x = x_at(t, end)
        parts.append(f'<text class="tick" x="{x:.1f}" y="{H - 8}">{t}s</text>')
    for y, text in y_labels:
        parts.append(
            f'<text class="tick" x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{text}</text>'
        )
        parts.append(f'<line class="grid" x1="{LEFT}" y1="{y:.1f}" x2="{W - RIGHT}" y2="{y:.1f}"/>')
    return "".join(parts)


def share_plot(result: dict[str, Any]) -> str:
    series, end = result["series"], result["duration_s"] or 1.0
    labels = [*result["tiers"], NO_ANSWER]
    colours = _colours(result["tiers"])
    plot_h = H - TOP - BOTTOM
    bars = []
    for row in series:
        total = sum(row["tiers"].values())
        if not total:
            continue
        x0, x1 = x_at(row["t"], end), x_at(min(row["t"] + 1, end), end)
        y = float(TOP)
        for label in labels:
            n = row["tiers"].get(label, 0)
            if not n:
                continue
            h = plot_h * n / total
            bars.append(
                f'<rect class="share" x="{x0:.1f}" y="{y:.1f}" width="{max(0.5, x1 - x0 - 0.5):.1f}" '
                f'height="{h:.1f}" fill="{colours[label]}"><title>{row["t"]}s {escape(label)}: '
                f"{n} of {total}</title></rect>"
            )
            y += h
    ticks = [(TOP + plot_h * (1 - f), f"{int(f * 100)}%") for f in (0, 0.5, 1)]
    legend = "".join(
        f'<span class="key"><i style="background:{colours[label]}"></i>{escape(label)}</span>'
        for label in labels
    )
    return _svg("tier-share", "Who answered, per second", bars, axis(end, ticks), result, legend)


def latency_plot(result: dict[str, Any]) -> str:
    series, end = result["series"], result["duration_s"] or 1.0
    top = max([r["p99_ms"] for r in series] + [1.0]) * 1.1
    plot_h = H - TOP - BOTTOM
    lines = []
    for key, colour in (("p50_ms", "#1c7ed6"), ("p99_ms", "#e8590c")):
        points = " ".join(
            f"{x_at(r['t'] + 0.5, end):.1f},{TOP + plot_h * (1 - r[key] / top):.1f}"
            for r in series
            if r["sent"]
        )
        lines.append(
            f'<polyline class="latency {key[:3]}" points="{points}" fill="none" '
            f'stroke="{colour}" stroke-width="2"/>'
        )
    ticks = [(TOP + plot_h * (1 - f), f"{top * f:.0f}ms") for f in (0, 0.5, 1)]
    legend = (
        '<span class="key"><i style="background:#1c7ed6"></i>p50</span>'
        '<span class="key"><i style="background:#e8590c"></i>p99</span>'
    )
    return _svg("latency", "Latency of answered requests", lines, axis(end, ticks), result, legend)


def _svg(
    cls: str, title: str, body: Sequence[str], axis: str, result: dict[str, Any], legend: str
) -> str:
    end = result["duration_s"] or 1.0
    return (
        f'<figure class="{cls}"><figcaption>{escape(title)} {legend}</figcaption>'
        f'<svg viewBox="0 0 {W} {H}" width="100%" role="img" aria-label="{escape(title)}">'
        f"{axis}{''.join(body)}{_windows(result, end)}</svg></figure>"
    )


def _fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}s"


def _steps_table(result: dict[str, Any]) -> str:
    rows = []
    for s in result["steps"]:
        checks = "".join(
            f'<li class="{"ok" if c["ok"] else "bad"}">{"✔" if c["ok"] else "✘"} '
            f"{escape(c['what'])} — {escape(c['detail'])}</li>"
            for c in s["checks"]
        )
        mix = ", ".join(f"{escape(k)} {v * 100:.1f}%" for k, v in s["shares"].items())
        rows.append(
            f"<tr><td>{escape(s['name'])}<div class='actions'>{escape('; '.join(s['actions']))}"
            f"</div></td><td>{s['start']:.1f}-{s['end']:.1f}s</td><td>{_fmt(s['detect_s'])}</td>"
            f"<td>{_fmt(s['recover_s'])}</td><td>{s['failed']} / {s['requests']}</td>"
            f"<td>{mix}</td><td><ul>{checks}</ul></td></tr>"
        )
    return (
        "<table><thead><tr><th>step</th><th>window</th><th>detected</th><th>recovered</th>"
        "<th>failed</th><th>answers</th><th>expectations</th></tr></thead><tbody>"
        + "".join(rows)
        + "</tbody></table>"
    )


CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:24px auto;max-width:960px;color:#212529}
h1{font-size:22px;margin:0 0 4px} .verdict{font-weight:700;padding:2px 10px;border-radius:4px}
.pass{background:#d3f9d8;color:#2b8a3e} .fail{background:#ffe3e3;color:#c92a2a}
figure{margin:18px 0} figcaption{font-weight:600;margin-bottom:4px}
.key{font-weight:400;margin-left:12px} .key i{display:inline-block;width:10px;height:10px;
margin-right:4px} .fault-window rect{fill:#fa5252;fill-opacity:.12;stroke:#c92a2a;
stroke-width:1.5;stroke-dasharray:5 3} .restore-window rect{fill:#40c057;fill-opacity:.10;
stroke:#2b8a3e;stroke-dasharray:5 3} .fault-window text,.restore-window text{font-weight:600}
svg text{font-size:11px;fill:#495057} .axis{stroke:#adb5bd} .grid{stroke:#f1f3f5}
table{border-collapse:collapse;width:100%} td,th{border-top:1px solid #dee2e6;padding:6px;
vertical-align:top;text-align:left} ul{margin:0;padding-left:0;list-style:none}
.ok{color:#2b8a3e} .bad{color:#c92a2a} .actions{color:#868e96;font-size:12px}
"""


def render_html(result: dict[str, Any]) -> str:
    verdict = result["verdict"]
    reasons = "".join(f"<li>{escape(r)}</li>" for r in result["reasons"])
    steady = "".join(
        f'<li class="{"ok" if c["ok"] else "bad"}">{"✔" if c["ok"] else "✘"} '
        f"{escape(c['what'])} — {escape(c['detail'])}</li>"
        for c in result["steady_state"]
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>failwell drill: {escape(result["name"])} — {verdict}</title>
<style>{CSS}</style></head><body>
<h1>Drill “{escape(result["name"])}” on route {escape(result["route"])}
<span class="verdict {verdict}">{verdict.upper()}</span></h1>
<p>{result["requests"]} requests at {result["rate"]:g}/s over {result["duration_s"]:.1f}s;
{result["failed"]} failed; tier-1 share when healthy
{result["tier1_share_healthy"] * 100:.2f}%.</p>
{f'<ul class="reasons bad">{reasons}</ul>' if reasons else ""}
{share_plot(result)}
{latency_plot(result)}
<h2>Steps</h2>{_steps_table(result)}
<h2>Steady state</h2><ul>{steady}</ul>
</body></html>
"""
