"""Schemathesis against the gateway's own /openapi.json: generated valid and invalid requests
on every documented operation, with a key and without; no 5xx, every response conforms."""

from __future__ import annotations

import collections
import json
import subprocess
import sys
from pathlib import Path

from tests.integration.conftest import Stack

KEY = "schema-key-0123456789abcdef"
CHECKS = ",".join(
    [
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_headers_conformance",
        "response_schema_conformance",
    ]
)


def test_openapi_contract_holds_under_generated_input(stack: Stack, tmp_path: Path) -> None:
    config = stack.config(
        backends={
            "echo": {"protocol": "python", "target": "failwell.testing.models:Echo"},
        },
        routes={
            "recommend": {
                "input": {
                    "user_id": "str",
                    "n": "int",
                    "score": "float",
                    "fresh": "bool",
                    "tags": "list[str]",
                    "weights": "list[float]",
                },
                "tiers": [
                    {"name": "primary", "backend": "echo"},
                    {"name": "static", "value": {"items": []}},
                ],
            },
            "chat": {"kind": "chat", "tiers": [{"name": "static", "value": {"content": "hi"}}]},
        },
    )
    config["security"] = {
        "keys": [{"name": "fuzz", "secret": KEY, "scopes": ["predict:*", "metrics"]}]
    }
    gw = stack.gateway(config)
    st = Path(sys.executable).with_name("st")
    statuses: collections.Counter[int] = collections.Counter()
    for i, header in enumerate((f"authorization: Bearer {KEY}", "authorization: Bearer wrong")):
        report = tmp_path / f"report-{i}.ndjson"
        result = subprocess.run(
            [
                str(st), "run", f"{gw.url}/openapi.json", "--checks", CHECKS,
                # One worker: Hypothesis parses lambda sources with a shared AST cache that
                # breaks across threads on Python 3.11 ("AST constructor recursion depth").
                "--max-examples", "25", "--seed", "6", "--workers", "1", "--no-shrink",
                "--phases", "examples,coverage,fuzzing", "--request-timeout", "10",
                "--header", header, "--suppress-health-check", "all",
                "--report", "ndjson", "--report-ndjson-path", str(report),
            ],
            capture_output=True, text=True, timeout=240,
        )  # fmt: skip
        assert result.returncode == 0, result.stdout + result.stderr
        statuses.update(response_statuses(report))
    assert "Traceback" not in gw.proc.output()
    assert statuses[200] > 20 and statuses[401] > 50 and statuses[422] > 10, statuses
    assert not [s for s in statuses if s >= 500], statuses
    print(json.dumps({"schemathesis_requests": sum(statuses.values()), "statuses": statuses}))


def response_statuses(report: Path) -> collections.Counter[int]:
    """Status codes of every request Schemathesis sent, from its NDJSON report."""
    counts: collections.Counter[int] = collections.Counter()
    for line in report.read_text().splitlines():
        event = json.loads(line).get("ScenarioFinished")
        if event is None:
            continue
        for interaction in (event["recorder"].get("interactions") or {}).values():
            response = interaction.get("response")
            if response is not None:
                counts[response["status_code"]] += 1
    return counts
