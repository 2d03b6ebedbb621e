"""The log at the edge, in-process: sync mode holds the answer until its record is durable;
on_failure decides between serving and refusing when the log cannot write."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import msgspec
import pytest

from failwell.api.app import App
from failwell.api.http import Message
from failwell.config import parse_config
from failwell.errors import LogUnavailable
from failwell.gateway import Gateway
from failwell.log.records import Record
from failwell.log.segments import SegmentLog


def gateway(tmp_path: Path, **log: Any) -> Gateway:
    cfg = parse_config(
        {
            "gateway": {"cache": {"path": ":memory:"}},
            "routes": {
                "r": {
                    "input": {"a": "str"},
                    "tiers": [{"name": "rules", "rules": "failwell.testing.models:constant_rule"}],
                }
            },
            "log": {"enabled": True, "path": str(tmp_path), "min_free": "1KiB", **log},
        }
    )
    return Gateway(cfg)


async def post(app: App, seen: list[Any], rid: str, on_start: Any = None) -> int:
    body = msgspec.json.encode({"inputs": {"a": "x"}})
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/v1/predict/r",
        "headers": [(b"x-request-id", rid.encode()), (b"content-length", str(len(body)).encode())],
        "query_string": b"",
    }
    messages = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive() -> dict[str, Any]:
        return messages.pop(0)

    status = 0

    async def send(message: Message) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
            if on_start is not None:
                on_start()
        seen.append(message)

    await app(scope, receive, send)
    return status


def logged_ids(tmp_path: Path) -> list[str]:
    store = SegmentLog(tmp_path, "inference")
    return [str(r.fields().get("request_id")) for r in store.read(0, 1000)]


def test_sync_mode_answers_only_after_the_record_is_durable(tmp_path: Path) -> None:
    gw = gateway(tmp_path, durability="sync")
    app = App(gw)
    at_start: list[list[str]] = []

    async def go() -> int:
        await gw.start()
        try:
            return await post(app, [], "req-1", lambda: at_start.append(logged_ids(tmp_path)))
        finally:
            await gw.close()

    assert asyncio.run(go()) == 200
    assert at_start == [["req-1"]]  # on disk before the first byte of the answer left
    assert logged_ids(tmp_path) == ["req-1"]  # once: the observer did not write it again
    audit = [r.fields()["action"] for r in SegmentLog(tmp_path, "audit").read(0, 10)]
    assert audit == ["gateway.start", "gateway.stop"]


def failing(gw: Gateway) -> None:
    assert gw.log is not None
    store = gw.log.inference.store
    assert store is not None

    def broken(batch: list[dict[str, Any] | bytes]) -> list[Record]:
        raise OSError(28, "No space left on device")

    store.append = broken  # type: ignore[method-assign]


def run_with_failing_log(tmp_path: Path, **log: Any) -> tuple[int, str, Gateway]:
    gw = gateway(tmp_path, **log)
    app = App(gw)
    seen: list[Any] = []

    async def go() -> int:
        await gw.start()
        failing(gw)
        try:
            if log.get("durability") == "batch":  # learn of the failure from a first record
                await post(app, [], "first")
                assert gw.log is not None
                with pytest.raises(LogUnavailable):  # nothing before it became durable
                    await gw.log.inference.barrier()
            return await post(app, seen, "req-2")
        finally:
            await gw.close()

    status = asyncio.run(go())
    return status, seen[-1]["body"].decode(), gw


def test_refuse_turns_an_unloggable_answer_into_503(tmp_path: Path) -> None:
    status, body, gw = run_with_failing_log(tmp_path, durability="sync", on_failure="refuse")
    assert status == 503 and "log_unavailable" in body
    drops = gw.metrics.registry.get_sample_value(
        "failwell_log_dropped_records_total", {"stream": "inference", "reason": "write_failed"}
    )
    assert drops == 1


def test_refuse_in_batch_mode_refuses_while_the_log_is_failing(tmp_path: Path) -> None:
    status, body, _ = run_with_failing_log(tmp_path, durability="batch", on_failure="refuse")
    assert status == 503 and "log_unavailable" in body


def test_serve_answers_and_counts_the_drop(tmp_path: Path) -> None:
    status, body, gw = run_with_failing_log(tmp_path, durability="sync", on_failure="serve")
    assert status == 200 and "req-2" in body
    assert gw.log is not None and not gw.log.inference.ready
    checks = gw.log.readiness()
    assert checks["log:inference"]["ok"] is False and "No space" in checks["log:inference"]["error"]
