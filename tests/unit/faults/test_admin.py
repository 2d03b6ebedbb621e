"""Fault book, faulty adapter, flags, the tier gate, the admin handlers and the canary drill,
in-process with fake adapters and a fake clock."""

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from failwell.config import parse_config
from failwell.contracts import AdminCall, Exchange, Request, Result
from failwell.errors import (
    ConfigError,
    Conflict,
    InvalidInput,
    UpstreamError,
    UpstreamMalformed,
    UpstreamStatus,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from failwell.faults.flags import Flags, FlagTarget
from failwell.faults.injection import FaultBook, FaultKind, FaultSpec, FaultyAdapter
from failwell.gateway import Gateway
from failwell.resilience.deadline import Deadline
from failwell.testing import FakeAdapter, FakeClock


async def _ok(request: Request, timeout: float) -> Result:
    return Result({"ok": True})


def _request() -> Request:
    return Request("r", {"x": "1"}, Deadline(1.0), request_id="rid")


def test_faults_expire_by_themselves() -> None:
    clock = FakeClock()
    book = FaultBook(clock)
    fault = book.add(FaultSpec(kind=FaultKind.ERROR, backend="b", duration=5.0))
    assert book.matching("b", "r1") == [fault]
    assert book.matching("other", "r1") == []
    clock.advance(5.0)
    assert book.matching("b", "r1") == []
    assert book.active() == []


def test_replica_fault_only_hits_that_replica() -> None:
    book = FaultBook(FakeClock())
    book.add(FaultSpec(kind=FaultKind.DROP, backend="b", replica="r2"))
    assert book.matching("b", "r1") == []
    assert len(book.matching("b", "r2")) == 1


@pytest.mark.parametrize(
    ("kind", "error"),
    [
        (FaultKind.ERROR, UpstreamStatus),
        (FaultKind.DROP, UpstreamUnavailable),
        (FaultKind.MALFORMED, UpstreamMalformed),
        (FaultKind.HANG, UpstreamTimeout),
    ],
)
def test_each_kind_raises_what_the_real_failure_raises(kind: FaultKind, error: type) -> None:
    book = FaultBook(FakeClock())
    inner = FakeAdapter(_ok)
    adapter = FaultyAdapter(inner, book, "b", "r1")
    book.add(FaultSpec(kind=kind, backend="b"))
    with pytest.raises(error) as info:
        asyncio.run(adapter.call(_request(), 0.001))
    assert isinstance(info.value, UpstreamError)
    assert info.value.backend == "b" and info.value.replica == "r1"
    assert "injected fault f1" in info.value.message
    assert inner.calls == []


def test_latency_over_the_timeout_is_a_timeout_and_under_it_passes() -> None:
    book = FaultBook(FakeClock())
    inner = FakeAdapter(_ok)
    adapter = FaultyAdapter(inner, book, "b", "r1")
    book.add(FaultSpec(kind=FaultKind.LATENCY, backend="b", latency=0.002))
    with pytest.raises(UpstreamTimeout):
        asyncio.run(adapter.call(_request(), 0.001))
    assert asyncio.run(adapter.call(_request(), 1.0)).outputs == {"ok": True}


def test_rate_applies_to_a_share_of_calls() -> None:
    book = FaultBook(FakeClock(), seed=1)
    adapter = FaultyAdapter(FakeAdapter(_ok), book, "b", "r1")
    book.add(FaultSpec(kind=FaultKind.ERROR, backend="b", rate=0.3))

    async def count() -> int:
        failed = 0
        for _ in range(400):
            try:
                await adapter.call(_request(), 1.0)
            except UpstreamStatus:
                failed += 1
        return failed

    assert 70 < asyncio.run(count()) < 170


def test_latency_distributions_draw_around_their_parameters() -> None:
    book = FaultBook(FakeClock(), seed=2)
    for dist, low, high in (("fixed", 0.1, 0.1), ("uniform", 0.1, 0.2), ("exponential", 0.1, 9)):
        fault = book.add(
            FaultSpec(
                kind=FaultKind.LATENCY, backend="b", latency=0.1, jitter=0.1, distribution=dist
            )
        )
        draws = [fault.delay(book.rng) for _ in range(200)]
        assert low <= min(draws) and max(draws) <= high, dist


def test_flags_persist_and_reject_bad_targets(tmp_path: Path) -> None:
    path = tmp_path / "flags.json"
    flags = Flags(path)
    seen: list[tuple[str, bool]] = []
    flags.on_change(lambda t, on: seen.append((t, on)))
    assert flags.set(FlagTarget.backend("light"), False)
    assert not flags.set("backend:light", False)
    assert seen == [("backend:light", False)]
    again = Flags(path)
    assert not again.enabled("backend:light") and again.enabled("tier:r/primary")
    assert again.set("backend:light", True) and Flags(path).off() == []
    for bad in ("light", "zone:x", "tier:noslash"):
        with pytest.raises(ValueError, match=r"expected|ROUTE/TIER"):
            flags.set(bad, False)
    path.write_text("{nope")
    with pytest.raises(ValueError, match="cannot read flags"):
        Flags(path)


def _gateway(tmp_path: Path, **control: Any) -> Gateway:
    cfg = parse_config(
        {
            "gateway": {"cache": {"path": ":memory:"}},
            "backends": {"echo": {"protocol": "python", "target": "failwell.testing.models:Echo"}},
            "routes": {
                "r": {
                    "input": {"x": "str"},
                    "tiers": [
                        {"name": "primary", "backend": "echo"},
                        {"name": "rules", "rules": "failwell.testing.models:constant_rule"},
                        {"name": "static", "value": {"items": []}},
                    ],
                }
            },
            "control": {"flags_path": str(tmp_path / "flags.json"), **control},
        }
    )
    return Gateway(cfg)


def _admin(gw: Gateway, method: str, path: str, body: Any = None, query: bytes = b"") -> Any:
    raw = b"" if body is None else json.dumps(body).encode()
    return asyncio.run(gw.admin.call(method, path, query, raw, Exchange("rid", {})))


def _tier(gw: Gateway) -> str:
    async def run() -> str:
        try:
            return (await gw.routes["r"].chain.run(_request(), 0.0)).tier
        finally:
            await gw.close()

    return asyncio.run(run())


def test_admin_faults_are_audited_and_reach_the_chain(tmp_path: Path) -> None:
    gw = _gateway(tmp_path)
    audit: list[tuple[str, dict[str, Any]]] = []
    gw.audit_sinks.append(lambda action, detail, caller: audit.append((action, detail)))
    status, body = _admin(gw, "POST", "/admin/faults", {"kind": "error", "backend": "echo"})
    assert status == 201 and body["fault"]["id"] == "f1"
    assert _admin(gw, "GET", "/admin/faults")[1]["faults"][0]["kind"] == "error"
    assert _tier(gw) == "rules"
    assert _admin(gw, "DELETE", "/admin/faults", query=b"id=f1")[1] == {"cleared": ["f1"]}
    assert [a for a, _ in audit] == ["fault.add", "fault.clear"]
    assert audit[0][1]["backend"] == "echo"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"kind": "boom", "backend": "echo"}, "kind"),
        ({"kind": "error", "backend": "nope"}, "backend"),
        ({"kind": "error", "backend": "echo", "replica": "x"}, "replica"),
        ({"kind": "error", "backend": "echo", "duration": "2h"}, "duration"),
        ({"kind": "latency", "backend": "echo"}, None),
        ({"kind": "error"}, "backend"),
    ],
)
def test_bad_faults_are_4xx_naming_the_field(
    tmp_path: Path, body: dict[str, Any], field: str | None
) -> None:
    gw = _gateway(tmp_path)
    with pytest.raises(InvalidInput) as info:
        _admin(gw, "POST", "/admin/faults", body)
    assert info.value.field == field


def test_faults_can_be_disabled(tmp_path: Path) -> None:
    gw = _gateway(tmp_path, faults=False)
    with pytest.raises(Conflict):
        _admin(gw, "POST", "/admin/faults", {"kind": "error", "backend": "echo"})


def test_flags_switch_tiers_and_backends_off(tmp_path: Path) -> None:
    gw = _gateway(tmp_path)
    audit: list[str] = []
    gw.audit_sinks.append(lambda action, detail, caller: audit.append(action))
    flags = _admin(gw, "GET", "/admin/flags")[1]["flags"]
    assert flags == {
        "tier:r/primary": True,
        "tier:r/rules": True,
        "tier:r/static": True,
        "backend:echo": True,
    }
    _admin(gw, "POST", "/admin/flags", {"target": "backend:echo", "on": False})
    assert _tier(gw) == "rules"
    gw = _gateway(tmp_path)  # a restart keeps the flag
    _admin(gw, "POST", "/admin/flags", {"target": "tier:r/rules", "on": False})
    assert _tier(gw) == "static"
    with pytest.raises(InvalidInput) as info:
        _admin(gw, "POST", "/admin/flags", {"target": "backend:nope", "on": False})
    assert info.value.field == "target"
    with pytest.raises(InvalidInput) as info:
        _admin(gw, "POST", "/admin/flags", {"target": "backend:echo"})
    assert info.value.field == "on"
    assert audit == ["flag.set"]


def test_a_broken_flags_file_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "flags.json").write_text('{"off": ["nonsense"]}')
    with pytest.raises(ConfigError, match=r"control\.flags_path"):
        _gateway(tmp_path)


def test_canary_drill_skips_the_tier_for_its_share_and_reports(tmp_path: Path) -> None:
    gw = _gateway(tmp_path, canary_drill={"enabled": True, "route": "r", "share": 0.5})
    canary = gw.faults.canary
    assert canary is not None and canary.tier == "primary"
    assert canary in gw.services and canary.observe in gw.observers
    canary.open_window()

    async def run() -> list[tuple[str, str]]:
        out = []
        for i in range(60):
            request = Request("r", {"x": "1"}, Deadline(1.0), request_id=f"q{i}")
            out.append((request.request_id, (await gw.routes["r"].chain.run(request, 0.0)).tier))
        await gw.close()
        return out

    answers = asyncio.run(run())
    assert {t for _, t in answers} == {"primary", "rules"}
    for rid, _ in answers:
        ex = Exchange(rid, {})
        ex.status = 200
        ex.answer = object()  # type: ignore[assignment]
        canary.observe(ex)
    assert canary.close_window() == "pass"
    text = gw.metrics.render().decode()
    assert 'failwell_canary_drill_runs_total{result="pass",route="r"} 1.0' in text
    assert 'failwell_canary_drill_last_pass{route="r"} 1.0' in text
    assert canary.close_window() == "no_traffic"


@pytest.mark.parametrize(
    ("canary", "key"),
    [
        ({"enabled": True}, "control.canary_drill"),
        ({"enabled": True, "route": "nope"}, "control.canary_drill.route"),
        ({"enabled": True, "route": "r", "tier": "static"}, "control.canary_drill.tier"),
    ],
)
def test_canary_drill_config_errors_name_the_key(
    tmp_path: Path, canary: dict[str, Any], key: str
) -> None:
    with pytest.raises(ConfigError) as info:
        _gateway(tmp_path, canary_drill=canary)
    assert any(i.path == key for i in info.value.issues), info.value.issues


def test_admin_call_shape() -> None:
    call = AdminCall("GET", "/admin/faults", {}, b"", Exchange("rid", {}))
    assert call.json() == {}


def test_a_fault_book_tells_its_own_changes_and_adopts_others_silently() -> None:
    clock = FakeClock()
    book = FaultBook(clock)
    book.tag = ".gw-a"
    heard: list[tuple[str, str]] = []
    book.on_change(lambda event, record: heard.append((event, record["id"])))
    spec = FaultSpec(kind=FaultKind.DROP, backend="b", duration=10.0)
    mine = book.add(spec)
    assert mine.id == "f1.gw-a"
    other = FaultBook(clock)
    other.tag = ".gw-b"
    theirs = other.add(spec)
    assert book.adopt(theirs.record())
    assert not book.adopt(theirs.record())  # known already
    assert sorted(r["id"] for r in book.records()) == ["f1.gw-a", "f1.gw-b"]
    assert book.discard("f1.gw-b") is not None
    assert book.clear() == [mine]
    assert heard == [("add", "f1.gw-a"), ("remove", "f1.gw-a")]
    clock.advance(11.0)
    assert not book.adopt(theirs.record())  # expired
