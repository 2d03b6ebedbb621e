"""Training rows joined from a real inference log (written by the log writer, read back
through the store), and the job config that asks for them."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from pydantic import ValidationError

from failwell.config.log import LogConfig
from failwell.config.training import FromLog, TrainingJobConfig
from failwell.contracts import Answer, Exchange
from failwell.log.recorder import InferenceLog
from failwell.log.store import open_store
from failwell.training.logdata import join, write_rows


def exchange(rid: str, route: str, started: float, x: float, status: int = 200) -> Exchange:
    ex = Exchange(rid, {}, f"/v1/predict/{route}", front_end="predict", route=route)
    ex.started, ex.inputs, ex.status = started, {"x": x}, status
    if status == 200:
        ex.answer = Answer({"cls": "dog"}, "m", "primary", "b", "v1", 0.001, 0)
    else:
        ex.error = "invalid_input"
    return ex


def feedback(route: str, items: list[tuple[str, Any]], status: int = 200) -> Exchange:
    ex = Exchange("fb", {}, f"/v1/feedback/{route}", front_end="feedback", route=route)
    ex.inputs = {"items": [{"request_id": r, "label": label} for r, label in items]}
    ex.status, ex.started = status, 2000.0
    return ex


def write_log(cfg: LogConfig, exchanges: list[Exchange]) -> None:
    log = InferenceLog(cfg, CollectorRegistry())

    async def go() -> None:
        await log.inference.start()
        for ex in exchanges:
            log.observe(ex)
        await log.inference.barrier()
        await log.inference.stop()

    asyncio.run(go())


def test_join_keeps_labelled_requests_of_the_route_in_the_window(tmp_path: Path) -> None:
    cfg = LogConfig(enabled=True, path=str(tmp_path / "log"))
    exchanges = [exchange(f"r{i}", "scorer", 1000.0 + i * 100, float(i)) for i in range(10)]
    exchanges += [
        exchange("bad", "scorer", 1500.0, 9.0, status=422),  # refused: not a training row
        exchange("other", "images", 1500.0, 1.0),  # another route
        feedback("scorer", [("r1", 1), ("r3", 0), ("r5", 1), ("r7", 0), ("r8", 1), ("gone", 1)]),
        feedback("scorer", [("r9", 1)], status=404),  # refused: its label does not count
        feedback("scorer", [("r5", 0)]),  # a later label does not replace the first
        feedback("images", [("other", 1)]),
    ]
    write_log(cfg, exchanges)
    store = open_store(cfg, "inference")
    try:
        every = join(store, FromLog(route="scorer"))
        recent = join(store, FromLog(route="scorer", since=450), now=2000.0)
        newest = join(store, FromLog(route="scorer", records=2))
    finally:
        store.close()
    assert [r["request_id"] for r in every.rows] == ["r1", "r3", "r5", "r7", "r8"]
    assert every.rows[2] == {
        "inputs": {"x": 5.0},
        "outputs": {"cls": "dog"},
        "label": 1,
        "request_id": "r5",
    }
    assert every.summary() == {
        "rows": 5,
        "requests": 10,
        "unlabelled": 5,
        "labels": 6,
        "orphans": 1,
    }
    # since 450 s before 2000: requests logged at 1600 and later (r6..r9)
    assert [r["request_id"] for r in recent.rows] == ["r7", "r8"]
    assert recent.unlabelled == 2
    assert [r["request_id"] for r in newest.rows] == ["r7", "r8"]

    out = tmp_path / "rows.jsonl"
    write_rows(every.rows, out)
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert lines == every.rows


def test_a_job_takes_exactly_one_data_source() -> None:
    base = {"model": "m", "entry": "a.b:c"}
    TrainingJobConfig.model_validate({**base, "from_log": {"route": "r", "since": "6h"}})
    for wrong in ({}, {"data": "d.jsonl", "from_log": {"route": "r"}}):
        with pytest.raises(ValidationError, match="exactly one of data"):
            TrainingJobConfig.model_validate({**base, **wrong})
    with pytest.raises(ValidationError) as caught:
        TrainingJobConfig.model_validate({**base, "from_log": {"route": "r", "records": 0}})
    assert caught.value.errors()[0]["loc"] == ("from_log", "records")
