"""The hash chain, the segment store's recovery and retention, consumers, and the writer."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from typer.testing import CliRunner

from failwell.cli.main import app
from failwell.config.log import InputPolicy
from failwell.errors import LogUnavailable
from failwell.log.metrics import LogMetrics
from failwell.log.query import Consumer, scan
from failwell.log.recorder import inference_record
from failwell.log.records import GENESIS, seal, verify
from failwell.log.segments import LogLocked, SegmentLog
from failwell.log.writer import LogWriter


def chain(n: int) -> list[bytes]:
    lines, prev = [], GENESIS
    for seq in range(1, n + 1):
        r = seal(seq, prev, {"i": seq})
        lines.append(r.line()[:-1])
        prev = r.hash
    return lines


def check(lines: list[bytes]) -> str:
    v = verify((line, f"line {i + 1}") for i, line in enumerate(lines))
    return "ok" if v.ok else f"{v.problem.position}: {v.problem.reason}"  # type: ignore[union-attr]


def test_chain_verifies_and_names_the_first_bad_record() -> None:
    lines = chain(6)
    assert check(lines) == "ok"
    edited = [*lines]
    edited[2] = edited[2].replace(b'"i":3', b'"i":4')
    assert check(edited).startswith("3: hash does not match")
    assert check(lines[:2] + lines[3:]).startswith("3: expected seq 3, found 4")
    swapped = [lines[0], lines[2], lines[1], *lines[3:]]
    assert check(swapped).startswith("2: expected seq 2")


def test_rehashed_edit_is_caught_by_the_next_record() -> None:
    lines = chain(4)
    forged = seal(2, lines[0][:64].decode(), {"i": 99}).line()[:-1]
    assert check([lines[0], forged, *lines[2:]]).startswith("3: prev does not match")


def fill(path: Path, n: int, **kw: int) -> SegmentLog:
    log = SegmentLog(path, "inference", writer=True, **kw)
    for i in range(n):
        log.append([{"i": i + 1, "pad": "x" * 50}])
    return log


def test_torn_tail_is_recovered_and_an_old_flip_is_reported(tmp_path: Path) -> None:
    log = fill(tmp_path, 20)
    log.close()
    (seg,) = [p for _, p in log.segments()]
    data = bytearray(seg.read_bytes())
    data = data[: len(data) - 30]  # the last record torn mid-way
    fifth = data.index(b'"i":5')
    data[fifth + 4] = ord("7")  # flip a byte in record 5
    seg.write_bytes(bytes(data))

    reopened = SegmentLog(tmp_path, "inference", writer=True)
    assert reopened.recovered_bytes > 0
    assert reopened.next_seq == 20  # record 20 was torn: cut off, the chain goes on from 19
    reopened.append([{"i": "after restart"}])
    reopened.close()
    reader = SegmentLog(tmp_path, "inference")
    v = verify(reader.lines())
    assert v.problem is not None and v.problem.position == 5
    assert v.problem.where.endswith(":5")

    result = CliRunner().invoke(app, ["log", "verify", "-c", str(config(tmp_path))])
    assert result.exit_code == 1
    assert "record 5" in result.output


def config(tmp_path: Path) -> Path:
    path = tmp_path / "failwell.yaml"
    path.write_text(
        "log: {enabled: true, path: " + str(tmp_path) + "}\n"
        "routes: {r: {input: {a: str}, tiers: [{name: s, value: 1}]}}\n"
    )
    return path


def test_rotation_retention_and_continuity(tmp_path: Path) -> None:
    log = fill(tmp_path, 200, segment_size=4096, max_size=3 * 4096)
    segments = log.segments()
    assert 1 < len(segments) <= 4
    log.close()
    reopened = SegmentLog(tmp_path, "inference", writer=True, segment_size=4096)
    assert reopened.next_seq == 201
    reopened.append([{"i": 201}])
    reopened.close()
    v = verify(SegmentLog(tmp_path, "inference").lines())
    assert v.ok and v.last == 201 and v.first == segments[0][0]


def test_one_writer_per_log(tmp_path: Path) -> None:
    log = SegmentLog(tmp_path, "inference", writer=True)
    with pytest.raises(LogLocked):
        SegmentLog(tmp_path, "inference", writer=True)
    log.close()


def test_consumer_resumes_after_its_last_ack(tmp_path: Path) -> None:
    fill(tmp_path, 30).close()
    store = SegmentLog(tmp_path, "inference")
    first = Consumer(store, "exporter")
    seen = [r.seq for r in first.poll(limit=12)]
    for seq in seen:
        first.ack(seq)
    assert store.next_seq == 31  # a reader sees where the stream ends
    again = Consumer(SegmentLog(tmp_path, "inference"), "exporter")
    rest = [r.seq for r in scan(again.store, again.offset)]
    assert seen + rest == list(range(1, 31))


class FailingStore:
    stream = "inference"
    recovered_bytes = 0
    next_seq = 1

    def __init__(self) -> None:
        self.fail = True
        self.written: list[dict[str, object]] = []

    def append(self, batch: list[dict[str, object]]) -> list[object]:
        if self.fail:
            raise OSError(28, "No space left on device")
        self.written += batch
        return []

    def free_bytes(self) -> int:
        return 10**9

    def close(self) -> None:
        pass


def test_writer_fails_futures_then_recovers() -> None:
    store = FailingStore()
    registry = CollectorRegistry()
    writer = LogWriter(lambda: store, "inference", LogMetrics(registry))  # type: ignore[arg-type,return-value]

    async def go() -> None:
        await writer.start()
        with pytest.raises(LogUnavailable):
            await writer.durable({"n": 1})
        assert not writer.ready and "No space" in (writer.last_error or "")
        store.fail = False
        await writer.durable({"n": 2})
        assert writer.ready
        writer.submit({"n": 3})
        await writer.barrier()
        await writer.stop()

    asyncio.run(go())
    assert [json.loads(f) for f in store.written] == [{"n": 2}, {"n": 3}]  # type: ignore[arg-type]
    dropped = registry.get_sample_value(
        "failwell_log_dropped_records_total", {"stream": "inference", "reason": "write_failed"}
    )
    assert dropped == 1


def test_input_policies() -> None:
    from failwell.contracts import Exchange

    ex = Exchange("rid", {}, "/v1/predict/r", front_end="predict", route="r")
    ex.inputs, ex.status, ex.error = {"b": 1, "a": "x"}, 422, "invalid_input"
    full = inference_record(ex, InputPolicy.FULL)
    hashed = inference_record(ex, InputPolicy.HASHED)
    omitted = inference_record(ex, InputPolicy.OMITTED)
    assert full is not None and full["inputs"] == {"b": 1, "a": "x"}
    assert full["outcome"] == "refused"
    assert hashed is not None and "inputs" not in hashed and len(hashed["input_sha256"]) == 64
    assert omitted is not None and "inputs" not in omitted and "input_sha256" not in omitted
    ex.front_end = ""
    assert inference_record(ex, InputPolicy.FULL) is None


def test_tail_prints_the_last_records(tmp_path: Path) -> None:
    fill(tmp_path, 30).close()
    result = CliRunner().invoke(app, ["log", "tail", "-c", str(config(tmp_path)), "-n", "3"])
    assert result.exit_code == 0, result.output
    assert [json.loads(line)["seq"] for line in result.output.splitlines()] == [28, 29, 30]


def test_export_jsonl_and_parquet(tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    fill(tmp_path, 5).close()
    cfg = str(config(tmp_path))
    for fmt in ("jsonl", "parquet"):
        out = tmp_path / f"out.{fmt}"
        args = ["log", "export", "-c", cfg, "--format", fmt, "--out", str(out), "--since", "1h"]
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 0, result.output
    assert len((tmp_path / "out.jsonl").read_text().splitlines()) == 0  # no 'time' field: 1970
    all_rows = ["log", "export", "-c", cfg, "--format", "parquet", "--out", str(tmp_path / "a.pq")]
    assert CliRunner().invoke(app, all_rows).exit_code == 0
    assert pq.read_table(tmp_path / "a.pq").column("seq").to_pylist() == [1, 2, 3, 4, 5]


def test_records_cut_from_the_start_are_reported(tmp_path: Path) -> None:
    fill(tmp_path, 8).close()
    (seg,) = [p for _, p in SegmentLog(tmp_path, "inference").segments()]
    seg.write_bytes(b"".join(seg.read_bytes().splitlines(keepends=True)[3:]))
    result = CliRunner().invoke(app, ["log", "verify", "-c", str(config(tmp_path))])
    assert result.exit_code == 1
    assert "record 1" in result.output and "expected seq 1, found 4" in result.output
