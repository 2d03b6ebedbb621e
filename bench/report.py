"""The benchmark's results: one Markdown table and the raw numbers as JSON."""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from targets import ROOT

ROUTES = ("v2", "chat")
TARGETS = ("direct", "hop", "failwell", "litellm")
LABELS = {
    "direct": "upstream direct",
    "hop": "nginx hop",
    "failwell": "failwell",
    "litellm": "litellm",
}


@dataclass
class Cell:
    route: str
    target: str
    connections: int
    requests: int = 0
    rps: float | None = None
    p50_ms: float | None = None
    p90_ms: float | None = None
    p99_ms: float | None = None
    mean_ms: float | None = None
    max_ms: float | None = None
    status_errors: int = 0
    socket_errors: int = 0
    cpu_us_per_request: float | None = None
    target_cpu_pct: float | None = None  # CPU 0 time used by the target during the run
    other_cpu_pct: float | None = None  # CPU 0 time used by anything else (kernel, other work)
    not_primary: int | None = None  # failwell: answers not from the primary tier
    pinning: str = ""
    problem: str | None = None  # why the cell was not measured

    @property
    def errors(self) -> int:
        return self.status_errors + self.socket_errors

    @property
    def flagged(self) -> bool:
        return self.errors > 0 or bool(self.not_primary)


@dataclass
class Report:
    date: str
    started: str
    seconds_per_cell: float
    host: dict[str, str]
    cells: list[Cell] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def cell(self, route: str, target: str, connections: int) -> Cell | None:
        for c in self.cells:
            if (c.route, c.target, c.connections) == (route, target, connections):
                return c
        return None

    def added_p50(self, route: str, target: str, connections: int = 8) -> float | None:
        """p50 of ``target`` minus p50 of the upstream direct, same route and connections."""
        base, other = self.cell(route, "direct", connections), self.cell(route, target, connections)
        if base is None or other is None or base.p50_ms is None or other.p50_ms is None:
            return None
        return other.p50_ms - base.p50_ms


def host_facts(wrk_version: str) -> dict[str, str]:
    model = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    return {
        "nproc": str(os.cpu_count() or 0),
        "cpu": model,
        "commit": git_commit(),
        "python": platform.python_version(),
        "wrk": wrk_version,
    }


def _git(*args: str) -> str:
    # --no-optional-locks: read only, never touches the index others may be using
    argv = ["git", "--no-optional-locks", "-C", str(ROOT), *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=30).stdout.strip()


def git_commit() -> str:
    try:
        commit = _git("rev-parse", "--short=12", "HEAD") or "unknown"
        dirty = _git("status", "--porcelain", "--untracked-files=no", "--", "src")
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return f"{commit} (with uncommitted changes in src/)" if dirty else commit


def _ms(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"


OTHER_CPU_FLAG = 15.0  # % of CPU 0 taken by other work that makes a row suspect


def _cpu0(c: Cell) -> str:
    if c.target_cpu_pct is None or c.other_cpu_pct is None:
        return "—"
    text = f"{c.target_cpu_pct:.0f}% + {c.other_cpu_pct:.0f}% other"
    return f"**{text} ⚠**" if c.other_cpu_pct > OTHER_CPU_FLAG else text


def _row(c: Cell) -> str:
    if c.problem is not None:
        values = ["—"] * 6
        note = f"not measured: {c.problem}"
    else:
        rps = "—" if c.rps is None else f"{c.rps:,.0f}"
        errors = f"**{c.errors} ⚠**" if c.errors else "0"
        cpu = "—" if c.cpu_us_per_request is None else f"{c.cpu_us_per_request:.0f}"
        values = [rps, _ms(c.p50_ms), _ms(c.p99_ms), errors, cpu, _cpu0(c)]
        note = c.pinning
        if c.not_primary:
            note += f"; **⚠ {c.not_primary} answers not from tier primary**"
    note = note.replace("|", "\\|").replace("\n", " ")
    cells = [c.route, LABELS.get(c.target, c.target), str(c.connections), *values, note]
    return "| " + " | ".join(cells) + " |"


def markdown(r: Report) -> str:
    h = r.host
    lines = [
        f"# failwell core benchmark, {r.date}",
        "",
        f"- started: {r.started}; {r.seconds_per_cell:g} s per cell after a 1 s warm-up",
        f"- machine: nproc {h['nproc']}, CPU {h['cpu']}",
        f"- failwell commit: {h['commit']}; Python {h['python']}; {h['wrk']}",
        *[f"- {n}" for n in r.notes],
        "",
        "| route | target | connections | requests/s | p50 ms | p99 ms | errors "
        "| CPU µs/req | CPU 0 use | pinning, notes |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    order = {t: i for i, t in enumerate(TARGETS)}
    cells = sorted(
        r.cells, key=lambda c: (ROUTES.index(c.route), order.get(c.target, 9), c.connections)
    )
    lines += [_row(c) for c in cells]
    lines.append("")
    for route in ROUTES:
        added = r.added_p50(route, "failwell")
        hop = r.added_p50(route, "hop")
        text = "—" if added is None else f"{added:.3f} ms"
        extra = "" if hop is None else f" (nginx hop: {hop:.3f} ms)"
        lines.append(f"- {route}: failwell added p50 at 8 connections vs direct: {text}{extra}")
    lines += [
        "",
        "errors: responses with status ≥ 400 plus socket errors and timeouts, as wrk counts "
        "them; flagged ⚠ when not 0. CPU µs/req: user + system CPU time of the target's "
        "processes during the measured run over the requests answered (the least noisy "
        "figure here). CPU 0 use: the target's share of CPU 0 during the run, and everything "
        f"else's (kernel softirq work, other processes), flagged ⚠ above {OTHER_CPU_FLAG:.0f}%.",
    ]
    return "\n".join(lines) + "\n"


def to_json(r: Report) -> dict[str, Any]:
    doc = asdict(r)
    for cell, raw in zip(r.cells, doc["cells"], strict=True):
        for key, value in raw.items():
            if isinstance(value, float):
                raw[key] = round(value, 3)
        raw["errors"] = cell.errors
        raw["flagged"] = cell.flagged
        raw["noisy"] = (cell.other_cpu_pct or 0.0) > OTHER_CPU_FLAG
    for target in ("failwell", "hop"):
        added = {route: r.added_p50(route, target) for route in ROUTES}
        doc[f"{target}_added_p50_ms_at_8"] = {
            k: None if v is None else round(v, 3) for k, v in added.items()
        }
    return doc


def write(r: Report, results: Path) -> tuple[Path, Path]:
    results.mkdir(parents=True, exist_ok=True)
    md, js = results / f"core-{r.date}.md", results / f"core-{r.date}.json"
    for path, text in ((md, markdown(r)), (js, json.dumps(to_json(r), indent=2) + "\n")):
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(text)
        tmp.replace(path)
    return md, js


def save_markdown(results: Path, stem: str, title: str, doc: str | None, body: str) -> Path:
    """Write ``results/STEM-DATE.md``: the title with the date, the script's second docstring
    paragraph (its method), then ``body``; print it too."""
    date = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d-%H%M")
    method = (doc or "").split("\n\n")[1] if doc and "\n\n" in doc else ""
    text = f"# {title} ({date})\n\n{method}\n\n{body}\n"
    results.mkdir(parents=True, exist_ok=True)
    path = results / f"{stem}-{date}.md"
    path.write_text(text)
    print("\n" + text)
    return path
