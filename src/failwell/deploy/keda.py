"""The KEDA ``ScaledObject`` of a managed backend: the local autoscaler's policy
(``managed.autoscale``) as Prometheus triggers and HPA behaviour (docs/kubernetes.md maps each
field). The trend (``autoscale.trend``) becomes a third trigger: the queue depth scaled by the
tier-1 request rate ``predict_linear`` expects ``horizon`` ahead over the rate now (at least 1,
so it only votes up, like the local one); its window is at least 2 minutes, as Prometheus
scrapes every 15-60 s."""

from __future__ import annotations

import math
from typing import Any

from failwell.config.backends import BackendConfig
from failwell.config.managed import AutoscaleConfig
from failwell.config.models import FailwellConfig
from failwell.observe import families

Doc = dict[str, Any]
TREND_WINDOW = 120  # seconds: the shortest fit window worth having at Prometheus' scrape rates


def seconds(value: float) -> int:
    return max(1, math.ceil(value))


def trend_trigger(
    queue: str, routes: list[tuple[str, str]], policy: AutoscaleConfig, prometheus: str
) -> Doc:
    """Queue depth times (tier-1 rate ``horizon`` ahead / rate now), per replica, against the
    same ``target_in_flight``."""
    trend = policy.trend
    names = "|".join(r for r, _ in routes)
    tiers = "|".join(sorted({t for _, t in routes}))
    rate = (
        f"sum(rate({families.REQUEST_DURATION.name}_count"
        f'{{route=~"{names}", tier=~"{tiers}"}}[1m]))'
    )
    window = max(TREND_WINDOW, seconds(trend.window))
    ahead = f"predict_linear(({rate})[{window}s:15s], {seconds(trend.horizon)})"
    return {
        "type": "prometheus",
        "name": "queue-depth-trend",
        "metricType": "AverageValue",
        "metadata": {
            "serverAddress": prometheus,
            "query": f"{queue} * clamp({ahead} / clamp_min({rate}, 0.001), 1, 10)",
            "threshold": f"{policy.target_in_flight:g}",
        },
    }


def tier1_routes(config: FailwellConfig, backend: str) -> list[tuple[str, str]]:
    """(route, tier name) of each route whose first tier is ``backend``."""
    return [
        (name, rc.tiers[0].name)
        for name, rc in config.routes.items()
        if rc.tiers[0].backend == backend
    ]


def scaled_object(
    name: str, bc: BackendConfig, config: FailwellConfig, prometheus: str, meta: Doc
) -> Doc:
    """The ScaledObject of managed backend ``name`` (``meta``: its metadata, named like the
    Deployment it scales)."""
    assert bc.managed is not None
    m, policy = bc.managed, bc.managed.autoscale
    queue = f'sum({families.REPLICA_OUTSTANDING.sample}{{backend="{name}"}})'
    triggers: list[Doc] = [
        {
            "type": "prometheus",
            "name": "queue-depth",
            "metricType": "AverageValue",
            "metadata": {
                "serverAddress": prometheus,
                "query": queue,
                "threshold": f"{policy.target_in_flight:g}",
            },
        }
    ]
    routes = tier1_routes(config, name)
    if policy.target_p99 is not None and routes:
        names = "|".join(r for r, _ in routes)
        tiers = "|".join(sorted({t for _, t in routes}))
        latency = (
            f"max(histogram_quantile(0.99, sum by (route, le) (rate("
            f'{families.REQUEST_DURATION.bucket}{{route=~"{names}", tier=~"{tiers}"}}[1m]))))'
        )
        triggers.append(
            {
                "type": "prometheus",
                "name": "tier1-p99",
                "metricType": "Value",
                "metadata": {
                    "serverAddress": prometheus,
                    "query": latency,
                    "threshold": f"{policy.target_p99:g}",
                },
            }
        )

    if policy.trend.enabled and routes:
        triggers.append(trend_trigger(queue, routes, policy, prometheus))

    def rule(window: float, step: int, period: float) -> Doc:
        return {
            "stabilizationWindowSeconds": min(3600, round(window)),
            "selectPolicy": "Max",
            "policies": [
                {"type": "Pods", "value": step, "periodSeconds": min(1800, seconds(period))}
            ],
        }

    return {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": meta,
        "spec": {
            "scaleTargetRef": {"name": meta["name"]},
            "pollingInterval": seconds(policy.interval),
            "minReplicaCount": m.min,
            "maxReplicaCount": m.max if policy.enabled else m.min,
            "advanced": {
                "horizontalPodAutoscalerConfig": {
                    "behavior": {
                        "scaleUp": rule(policy.up_window, policy.max_step_up, policy.up_cooldown),
                        "scaleDown": rule(
                            policy.down_window, policy.max_step_down, policy.down_cooldown
                        ),
                    }
                }
            },
            "triggers": triggers,
        },
    }
