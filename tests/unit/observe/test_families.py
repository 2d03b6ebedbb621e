"""Every metric family is declared once in observe/families.py: names are unique, a built
gateway registers nothing that is not declared there, and the operations doc lists them all."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

from failwell.config import parse_config
from failwell.gateway import Gateway
from failwell.observe.families import FAMILIES

ROOT = Path(__file__).resolve().parents[3]


def gateway(tmp_path: Path) -> Gateway:
    """Every part that exports metrics switched on: log, canary, SLOs with freshness,
    admission, the canary drill, the fleet (built, never connected)."""
    cfg = parse_config(
        {
            "gateway": {"cache": {"path": ":memory:"}},
            "backends": {"echo": {"protocol": "python", "target": "failwell.testing.models:Echo"}},
            "routes": {
                "r": {
                    "input": {"x": "str", "ts": "str"},
                    "canary": {"checks": [{"inputs": {"x": "a", "ts": "2027-01-01T00:00:00"}}]},
                    "slo": {
                        "quality": 0.9,
                        "tier1_floor": 0.5,
                        "latency_p99": "100ms",
                        "freshness": {"max_model_age": "30d", "features": {"ts": "6h"}},
                    },
                    "admission": {
                        "rate": {"rate": 10, "burst": 10},
                        "concurrency": {"limit": 2, "queue": 1, "queue_timeout": "50ms"},
                    },
                    "tiers": [
                        {"name": "primary", "backend": "echo"},
                        {"name": "rules", "rules": "failwell.testing.models:constant_rule"},
                        {"name": "static", "value": {"items": []}},
                    ],
                }
            },
            "log": {"enabled": True, "path": str(tmp_path / "log"), "min_free": "1KiB"},
            "control": {
                "flags_path": str(tmp_path / "flags.json"),
                "canary_drill": {"enabled": True, "route": "r", "share": 0.5},
            },
            "fleet": {"redis": "redis://127.0.0.1:1/0", "instance": "test"},
        }
    )
    return Gateway(cfg)


def test_family_names_are_unique() -> None:
    names = Counter(f.name for f in FAMILIES)
    assert [n for n, c in names.items() if c > 1] == []
    samples = Counter(f.sample for f in FAMILIES)
    assert [n for n, c in samples.items() if c > 1] == []
    assert all(f.name.startswith("failwell_") for f in FAMILIES)


def test_a_gateway_registers_only_declared_families(tmp_path: Path) -> None:
    gw = gateway(tmp_path)
    try:
        registered = {(m.name, m.type, m.documentation) for m in gw.metrics.registry.collect()}
    finally:
        asyncio.run(gw.close())
    declared = {(f.name, f.kind.value, f.help) for f in FAMILIES}
    assert registered - declared == set(), "declare these in observe/families.py"
    # and this gateway, with every part on, exports all of them: none is left over
    assert declared - registered == set()


def test_operations_doc_lists_every_family() -> None:
    text = (ROOT / "docs/operations.md").read_text()
    for f in FAMILIES:
        row = f"| `{f.sample}` | {f.kind.value} | {', '.join(f.labels) or '—'} |"
        assert row in text, row
    assert sum(1 for line in text.splitlines() if line.startswith("| `failwell_")) == len(FAMILIES)
