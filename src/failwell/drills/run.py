"""Run a drill: open the target, start the open-loop load, play the steps, measure, judge.

result = asyncio.run(run_drill(load_drill(Path("drill.yaml")), progress=print))
json_path, html_path = write_result(result, Path("drill-out"))
sys.exit(0 if result["verdict"] == "pass" else 1)
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from failwell.drills.analysis import NO_ANSWER, Window, analyse, percentile, recovery
from failwell.drills.demo import DemoTarget
from failwell.drills.load import OpenLoop, Shot
from failwell.drills.report import render_html
from failwell.drills.spec import Drill, Step, StreamProbe
from failwell.drills.target import GatewayTarget

Progress = Callable[[str], None]


def request_body(drill: Drill) -> Callable[[int], Any]:
    inputs, users = drill.load.inputs, drill.load.users

    def body(i: int) -> Any:
        n = i % users
        return {
            "inputs": {k: v.format(i=n) if isinstance(v, str) else v for k, v in inputs.items()}
        }

    return body


def _delta(
    before: dict[str, dict[str, int]], after: dict[str, dict[str, int]]
) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for tier, errors in after.items():
        for error, n in errors.items():
            d = n - before.get(tier, {}).get(error, 0)
            if d > 0:
                out.setdefault(tier, {})[error] = d
    return out


async def _ticker(load: OpenLoop, tiers: list[str], progress: Progress, label: list[str]) -> None:
    second = 0
    while True:
        now = label[0]
        await asyncio.sleep(1.0)
        inside = [s for s in load.shots if second <= s.sent < second + 1]
        counts = Counter(s.tier if s.status == 200 and s.tier else NO_ANSWER for s in inside)
        total = sum(counts.values()) or 1
        mix = "  ".join(
            f"{t} {counts[t] * 100 // total:3d}%" for t in [*tiers, NO_ANSWER] if counts[t]
        )
        p99 = percentile([s.latency for s in inside if s.status == 200], 0.99) * 1000
        progress(f"{second:4d}s  {now:<24} {mix}  p99 {p99:.0f}ms")
        second += 1


async def _hold(load: OpenLoop, step: Step, start: float, tier1: str, share: float) -> None:
    """Wait out the step: its duration, or (``settle``) until tier 1 has been back that long."""
    ends = start + step.duration
    if step.settle is None:
        await asyncio.sleep(max(0.0, ends - load.now()))
        return
    while load.now() < ends:
        await asyncio.sleep(min(0.25, max(0.0, ends - load.now())))
        back = recovery(list(load.shots), tier1, start, share)
        if back is not None and load.now() >= start + back + step.settle:
            return


def stream_body(probe: StreamProbe) -> Callable[[int], Any]:
    def body(i: int) -> Any:
        return {
            "model": probe.route,
            "stream": True,
            "messages": [{"role": "user", "content": f"{probe.prompt} ({i})"}],
        }

    return body


def stream_ends(shots: list[Shot]) -> dict[str, int]:
    """How a stream probe's streams ended: ``STREAM_ENDS``, or why there was no stream."""
    ends: Counter[str] = Counter()
    for s in shots:
        if s.status != 200:
            ends[f"status {s.status}" if s.status else "no answer"] += 1
        else:
            ends[s.stream_end or "not a stream"] += 1
    return dict(ends)


async def _probe(target: GatewayTarget, probe: StreamProbe) -> tuple[OpenLoop, asyncio.Task[None]]:
    url = f"{target.url}/v1/chat/completions"
    streams = OpenLoop(url, stream_body(probe), probe.rate, probe.timeout)
    return streams, asyncio.create_task(streams.run())


async def run_drill(drill: Drill, progress: Progress | None = None) -> dict[str, Any]:
    """Run ``drill`` and return its result (see ``drill_analysis.analyse``)."""
    say = progress or (lambda line: None)
    target = DemoTarget(drill) if drill.target == "demo" else GatewayTarget(drill.target, drill)
    say(f"drill {drill.name!r}: opening target {drill.target} ...")
    await target.open()
    windows: list[Window] = []
    try:
        tiers = list(drill.tiers) or await target.tiers(drill.route)
        url = f"{target.url}/v1/predict/{drill.route}"
        load = OpenLoop(url, request_body(drill), drill.load.rate, drill.load.timeout)
        label = ["warm-up (healthy)"]
        say(f"target {target.url}; load {drill.load.rate:g} req/s on {drill.route}; tiers {tiers}")
        running = asyncio.create_task(load.run())
        ticker = asyncio.create_task(_ticker(load, tiers, say, label))
        try:
            await asyncio.sleep(drill.warmup)
            for step in drill.steps:
                before = await target.fallbacks(drill.route)
                start = load.now()
                label[0] = step.name
                for action in step.actions:
                    say(f"      → {step.name}: {action.describe()}")
                    await target.apply(action)
                probe = None if step.stream is None else await _probe(target, step.stream)
                await _hold(load, step, start, tiers[0], drill.steady_state.tier1_share)
                ends = None
                if probe is not None:
                    probe[0].stop()
                    await probe[1]  # bounded: the streams out get their timeout, then stop
                    ends = stream_ends(probe[0].shots)
                    say(f"      → {step.name}: streams {ends}")
                after = await target.fallbacks(drill.route)
                windows.append(Window(step, start, load.now(), _delta(before, after), ends))
            end = load.now()
        finally:
            load.stop()
            ticker.cancel()
            await asyncio.gather(running, ticker, return_exceptions=True)
        await target.restore()
    finally:
        await target.close()
    shots = [s for s in load.shots if s.sent < end]
    return analyse(drill, tiers, shots, windows, end)


def write_result(result: dict[str, Any], out: Path) -> tuple[Path, Path]:
    """Write ``drill.json`` and ``drill.html`` into ``out``; their paths."""
    out.mkdir(parents=True, exist_ok=True)
    json_path, html_path = out / "drill.json", out / "drill.html"
    json_path.write_text(json.dumps(result, indent=1) + "\n")
    html_path.write_text(render_html(result))
    return json_path, html_path


def summary(result: dict[str, Any]) -> list[str]:
    """The closing lines: verdict, per-step figures, reasons."""
    lines = [
        f"verdict: {result['verdict'].upper()}  ({result['requests']} requests, "
        f"{result['failed']} failed, tier-1 share when healthy "
        f"{result['tier1_share_healthy'] * 100:.2f}%)"
    ]
    for s in result["steps"]:
        detect = "—" if s["detect_s"] is None else f"{s['detect_s'] * 1000:.0f} ms"
        recover = "—" if s["recover_s"] is None else f"{s['recover_s']:.2f} s"
        mix = ", ".join(f"{k} {v * 100:.1f}%" for k, v in s["shares"].items())
        lines.append(
            f"  {s['name']:<24} detect {detect:>8}  recover {recover:>7}  "
            f"failed {s['failed']:>3}/{s['requests']:<4} {mix}"
        )
        if s.get("streams") is not None:
            ends = ", ".join(f"{k} {v}" for k, v in sorted(s["streams"].items()))
            lines.append(f"  {'':<24} streams: {ends}")
    lines += [f"  ✘ {r}" for r in result["reasons"]]
    return lines
