"""``failwell log replay``: send logged inputs again and compare outputs and tiers.

Only records with full inputs (route policy ``log_input: full``) and an answer can be
replayed; the others are counted as skipped. Requests go out at most ``rate`` per second,
``concurrency`` at a time, each with ``x-request-id: replay-<original id>``."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import msgspec

from failwell.protocols.chat import is_completion, reply_text

_encode = msgspec.json.Encoder().encode


def chat_content(outputs: Any) -> Any:
    """The assistant content the chat front end sends for ``outputs`` (see api/chat.py)."""
    if is_completion(outputs):
        choices = outputs["choices"]
        return choices[0].get("message", {}).get("content") if choices else None
    return reply_text(outputs)[0]


@dataclass
class Difference:
    request_id: str
    route: str
    logged_tier: str | None
    replayed_tier: str | None
    logged_outputs: Any
    replayed_outputs: Any


@dataclass
class ReplayReport:
    sent: int = 0
    same_outputs: int = 0
    same_tier: int = 0
    errors: int = 0
    skipped: int = 0
    differences: list[Difference] = field(default_factory=list)

    @property
    def different_outputs(self) -> int:
        return self.sent - self.errors - self.same_outputs


def _request(base: str, fields: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    route, inputs = fields["route"], fields["inputs"]
    if fields.get("front_end") == "openai":
        return f"{base}/v1/chat/completions", {"model": route, **inputs}
    return f"{base}/v1/predict/{route}", {"inputs": inputs}


def _replayed(fields: dict[str, Any], body: dict[str, Any]) -> tuple[Any, Any, str | None]:
    """(logged outputs, replayed outputs, replayed tier) in comparable form."""
    if fields.get("front_end") == "openai":
        content = body["choices"][0]["message"]["content"]
        return chat_content(fields.get("outputs")), content, body.get("failwell", {}).get("tier")
    return fields.get("outputs"), body.get("outputs"), body.get("tier")


async def replay(
    records: Iterable[dict[str, Any]],
    to: str,
    *,
    rate: float | None = None,
    concurrency: int = 8,
    timeout: float = 10.0,
    keep: int = 20,
) -> ReplayReport:
    report = ReplayReport()
    base = to.rstrip("/")
    gate = asyncio.Semaphore(concurrency)
    started = time.monotonic()

    async def one(session: aiohttp.ClientSession, fields: dict[str, Any]) -> None:
        url, payload = _request(base, fields)
        headers = {"x-request-id": f"replay-{fields['request_id']}"[:128]}
        try:
            async with session.post(url, json=payload, headers=headers) as resp:
                body = await resp.json(content_type=None)
                ok = resp.status == 200
        except (aiohttp.ClientError, TimeoutError, ValueError):
            ok, body = False, {}
        if not ok:
            report.errors += 1
            return
        logged, replayed, tier = _replayed(fields, body)
        report.same_outputs += logged == replayed
        report.same_tier += tier == fields.get("tier")
        if (logged != replayed or tier != fields.get("tier")) and len(report.differences) < keep:
            report.differences.append(
                Difference(
                    fields["request_id"],
                    fields["route"],
                    fields.get("tier"),
                    tier,
                    logged,
                    replayed,
                )
            )

    async def paced(session: aiohttp.ClientSession, fields: dict[str, Any], i: int) -> None:
        async with gate:
            if rate:
                await asyncio.sleep(max(0.0, started + i / rate - time.monotonic()))
            await one(session, fields)

    client_timeout = aiohttp.ClientTimeout(total=timeout)
    tasks: set[asyncio.Task[None]] = set()
    async with aiohttp.ClientSession(timeout=client_timeout) as session:
        for fields in records:
            if fields.get("outcome") != "ok" or "inputs" not in fields or not fields.get("route"):
                report.skipped += 1
                continue
            task = asyncio.create_task(paced(session, fields, report.sent))
            report.sent += 1
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            if len(tasks) >= concurrency * 4:
                await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        if tasks:
            await asyncio.gather(*tasks)
    return report
