"""Generates the Prometheus alerting rules and the Grafana dashboard shipped in deploy/ from the
metric families of observe/families.py (``families.SLO_EVENTS.sample`` and so on), so they
cannot drift from the code: ``python -m failwell.observe.deploy`` writes them; a test checks
the files are current, that every metric they use is exported by a gateway, and runs
``promtool check rules`` on the rules.

The burn-rate alerts follow the SRE workbook's multi-window, multi-burn-rate rules over
``failwell_slo_events_total`` (events and bad events per route and objective) against the
objective each gateway exports (``failwell_slo_objective_ratio``).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import yaml

from failwell.observe import families

RUNBOOK = "https://github.com/failwell/failwell/blob/main/docs/operations.md"
RATE_WINDOWS = ("5m", "30m", "1h", "6h", "1d", "3d")
# (name, long, short, burn rate, severity, for)
BURN_ALERTS = (
    ("FailwellErrorBudgetBurnFast", "1h", "5m", 14.4, "page", "2m"),
    ("FailwellErrorBudgetBurnSlow", "6h", "30m", 6.0, "page", "15m"),
    ("FailwellErrorBudgetBurnTicket", "3d", "6h", 1.0, "ticket", "1h"),
)


def _ratio(window: str) -> str:
    by = "sum by (route, slo)"
    return (
        f'{by} (rate({families.SLO_EVENTS.sample}{{kind="bad"}}[{window}]))\n'
        f'/ {by} (rate({families.SLO_EVENTS.sample}{{kind="total"}}[{window}]) > 0)'
    )


def _alert(
    name: str, expr: str, severity: str, for_: str, summary: str, anchor: str
) -> dict[str, Any]:
    return {
        "alert": name,
        "expr": expr,
        "for": for_,
        "labels": {"severity": severity},
        "annotations": {"summary": summary, "runbook_url": f"{RUNBOOK}#{anchor}"},
    }


def rules() -> dict[str, Any]:
    recording = [
        {"record": f"failwell:slo_error_ratio:rate{w}", "expr": _ratio(w)} for w in RATE_WINDOWS
    ]
    objective = f"max by (route, slo) ({families.SLO_OBJECTIVE.sample})"
    burn = []
    for name, long, short, rate, severity, for_ in BURN_ALERTS:
        budget = f"on (route, slo) ({rate} * (1 - {objective}))"
        burn.append(
            _alert(
                name,
                f"failwell:slo_error_ratio:rate{long} > {budget}\n"
                f"and failwell:slo_error_ratio:rate{short} > {budget}",
                severity,
                for_,
                f"Route {{{{ $labels.route }}}} burns its {{{{ $labels.slo }}}} error budget "
                f"{rate}x too fast ({long}/{short} windows).",
                name.lower(),
            )
        )
    health = [
        _alert(
            "FailwellTier1ShareLow",
            f"sum by (route) (rate({families.TIER1_ANSWERS.sample}[10m]))\n"
            f"/ sum by (route) (rate({families.SLO_REQUESTS.sample}[10m]) > 0)\n"
            f"< on (route) max by (route) ({families.SLO_TIER1_FLOOR.sample})",
            "page",
            "5m",
            "Route {{ $labels.route }}: tier 1 answers less than its floor; fallbacks carry it.",
            "failwelltier1sharelow",
        ),
        _alert(
            "FailwellAllTiersFailed",
            "sum by (route) "
            f'(rate({families.REQUESTS.sample}{{outcome="all_tiers_failed"}}[5m])) > 0',
            "page",
            "2m",
            "Route {{ $labels.route }}: requests fail on every tier, including the last resort.",
            "failwellalltiersfailed",
        ),
        _alert(
            "FailwellCanaryFailing",
            f"max by (route) ({families.CANARY_STATUS.sample}) < 1",
            "ticket",
            "5m",
            "Route {{ $labels.route }}: canary inferences fail or are slow on tier 1.",
            "failwellcanaryfailing",
        ),
        _alert(
            "FailwellReplicaOutOfRotation",
            f"max by (backend, replica) ({families.REPLICA_HEALTHY.sample}) == 0",
            "ticket",
            "5m",
            "Replica {{ $labels.replica }} of {{ $labels.backend }} fails its probes or canaries.",
            "failwellreplicaoutofrotation",
        ),
        _alert(
            "FailwellBreakerOpen",
            f"max by (backend, replica) ({families.BREAKER_STATE.sample}) == 2",
            "ticket",
            "5m",
            "Breaker of {{ $labels.replica }} ({{ $labels.backend }}) stays open.",
            "failwellbreakeropen",
        ),
    ]
    return {
        "groups": [
            {"name": "failwell-slo-recording", "interval": "30s", "rules": recording},
            {"name": "failwell-slo-burn", "rules": burn},
            {"name": "failwell-health", "rules": health},
        ]
    }


def _panel(
    pid: int, title: str, targets: list[tuple[str, str]], x: int, y: int, kind: str = "timeseries"
) -> dict[str, Any]:
    panel: dict[str, Any] = {
        "id": pid,
        "type": kind,
        "title": title,
        "datasource": {"type": "prometheus", "uid": "${datasource}"},
        "gridPos": {"h": 8, "w": 12, "x": x, "y": y},
        "targets": [
            {"refId": chr(65 + i), "expr": expr, "legendFormat": legend}
            for i, (expr, legend) in enumerate(targets)
        ],
    }
    if title.startswith("Answers by tier"):
        panel["fieldConfig"] = {
            "defaults": {"custom": {"stacking": {"mode": "percent"}, "fillOpacity": 60}},
            "overrides": [],
        }
    return panel


PANELS: list[tuple[str, list[tuple[str, str]], str]] = [
    (
        "Answers by tier (share)",
        [(f'sum by (tier) (rate({families.REQUESTS.sample}{{route=~"$route"}}[1m]))', "{{tier}}")],
        "timeseries",
    ),
    (
        "Latency p50 / p99 by tier",
        [
            (
                "histogram_quantile(0.5, sum by (tier, le) "
                f'(rate({families.REQUEST_DURATION.bucket}{{route=~"$route"}}[5m])))',
                "p50 {{tier}}",
            ),
            (
                "histogram_quantile(0.99, sum by (tier, le) "
                f'(rate({families.REQUEST_DURATION.bucket}{{route=~"$route"}}[5m])))',
                "p99 {{tier}}",
            ),
        ],
        "timeseries",
    ),
    (
        "Fallbacks by tier and error",
        [
            (
                "sum by (from_tier, error) "
                f'(rate({families.FALLBACKS.sample}{{route=~"$route"}}[1m]))',
                "{{from_tier}}: {{error}}",
            )
        ],
        "timeseries",
    ),
    (
        "Error budget remaining",
        [
            (
                f'min by (route, slo) ({families.SLO_BUDGET_REMAINING.sample}{{route=~"$route"}})',
                "{{route}} {{slo}}",
            )
        ],
        "timeseries",
    ),
    (
        "Burn rate (1h, from Prometheus)",
        [
            (
                'failwell:slo_error_ratio:rate1h{route=~"$route"} / on (route, slo) '
                f"(1 - max by (route, slo) ({families.SLO_OBJECTIVE.sample}))",
                "{{route}} {{slo}}",
            )
        ],
        "timeseries",
    ),
    (
        "In flight and outstanding per replica",
        [
            (f'sum by (route) ({families.IN_FLIGHT.sample}{{route=~"$route"}})', "route {{route}}"),
            (
                f"sum by (backend, replica) ({families.REPLICA_OUTSTANDING.sample})",
                "{{backend}}/{{replica}}",
            ),
        ],
        "timeseries",
    ),
    (
        "Breaker state (0 closed, 1 half-open, 2 open)",
        [
            (
                f"max by (backend, replica) ({families.BREAKER_STATE.sample})",
                "{{backend}}/{{replica}}",
            )
        ],
        "timeseries",
    ),
    (
        "Replica in rotation",
        [
            (
                f"min by (backend, replica) ({families.REPLICA_HEALTHY.sample})",
                "{{backend}}/{{replica}}",
            )
        ],
        "timeseries",
    ),
    (
        "Canary status and latency",
        [
            (
                f'min by (route) ({families.CANARY_STATUS.sample}{{route=~"$route"}})',
                "status {{route}}",
            ),
            (
                "histogram_quantile(0.99, sum by (route, le) "
                f'(rate({families.CANARY_DURATION.bucket}{{route=~"$route"}}[5m])))',
                "p99 {{route}}",
            ),
        ],
        "timeseries",
    ),
    (
        "Cache tier: lookups and stale age p50",
        [
            (
                f'sum by (result) (rate({families.CACHE_LOOKUPS.sample}{{route=~"$route"}}[5m]))',
                "{{result}}",
            ),
            (
                "histogram_quantile(0.5, sum by (le) "
                f'(rate({families.STALE_ANSWER_AGE.bucket}{{route=~"$route"}}[5m])))',
                "stale age p50 (s)",
            ),
        ],
        "timeseries",
    ),
    (
        "Active probes: failures and p99 duration",
        [
            (
                f'sum by (backend) (rate({families.PROBES.sample}{{result="fail"}}[5m]))',
                "{{backend}}",
            ),
            (
                "histogram_quantile(0.99, sum by (backend, le) "
                f"(rate({families.PROBE_DURATION.bucket}[5m])))",
                "p99 {{backend}}",
            ),
        ],
        "timeseries",
    ),
    (
        "Model versions answering",
        [
            (
                "max by (route, backend, version) "
                f'({families.MODEL_VERSION.sample}{{route=~"$route"}})',
                "",
            )
        ],
        "table",
    ),
    (
        "Freshness: model age and feature age p90",
        [
            (f"max by (backend) ({families.MODEL_AGE.sample})", "model {{backend}}"),
            (
                "histogram_quantile(0.9, sum by (route, feature, le) "
                f'(rate({families.FEATURE_AGE.bucket}{{route=~"$route"}}[5m])))',
                "p90 {{route}} {{feature}}",
            ),
        ],
        "timeseries",
    ),
    (
        "Alerts firing",
        [(f"max by (route, slo, severity) ({families.ALERT_FIRING.sample}) == 1", "")],
        "table",
    ),
]


def dashboard() -> dict[str, Any]:
    panels = [
        _panel(i + 1, title, targets, 12 * (i % 2), 8 * (i // 2), kind)
        for i, (title, targets, kind) in enumerate(PANELS)
    ]
    return {
        "uid": "failwell-overview",
        "title": "failwell",
        "tags": ["failwell"],
        "timezone": "browser",
        "schemaVersion": 39,
        "refresh": "10s",
        "time": {"from": "now-1h", "to": "now"},
        "templating": {
            "list": [
                {
                    "name": "datasource",
                    "type": "datasource",
                    "query": "prometheus",
                    "current": {},
                },
                {
                    "name": "route",
                    "type": "query",
                    "datasource": {"type": "prometheus", "uid": "${datasource}"},
                    "query": f"label_values({families.REQUESTS.sample}, route)",
                    "includeAll": True,
                    "multi": True,
                    "current": {"text": "All", "value": "$__all"},
                },
            ]
        },
        "panels": panels,
    }


class _Dumper(yaml.SafeDumper):
    """Multi-line expressions as literal blocks, as people write them by hand."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def render_rules() -> str:
    header = "# Generated by `python -m failwell.observe.deploy`; do not edit by hand.\n"
    return header + yaml.dump(rules(), Dumper=_Dumper, sort_keys=False, width=120)


def render_dashboard() -> str:
    return json.dumps(dashboard(), indent=2) + "\n"


FILES = {
    "deploy/prometheus/failwell-rules.yml": render_rules,
    "deploy/grafana/failwell-dashboard.json": render_dashboard,
}


def write(root: Path) -> None:
    for rel, render in FILES.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(render())


if __name__ == "__main__":
    write(Path(sys.argv[1]) if len(sys.argv) > 1 else Path.cwd())
