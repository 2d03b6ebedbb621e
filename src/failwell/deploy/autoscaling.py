"""A managed backend on Kubernetes: its Deployment and Service, and the KEDA ``ScaledObject``
that applies the backend's ``managed.autoscale`` policy (the table in ``kubernetes.py``)."""

from __future__ import annotations

from failwell.config.models import BackendConfig, FailwellConfig
from failwell.deploy.manifests import (
    BACKEND_PORT,
    Doc,
    backend_name,
    labels,
    meta,
    probe,
    seconds,
    service_doc,
    spread,
)
from failwell.observe import families


def tier1_routes(config: FailwellConfig, backend: str) -> list[tuple[str, str]]:
    """(route, tier name) of each route whose first tier is ``backend``."""
    return [
        (name, rc.tiers[0].name)
        for name, rc in config.routes.items()
        if rc.tiers[0].backend == backend
    ]


def scaled_object(name: str, bc: BackendConfig, config: FailwellConfig, prometheus: str) -> Doc:
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
        "metadata": meta(backend_name(name), "backend"),
        "spec": {
            "scaleTargetRef": {"name": backend_name(name)},
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


def backend_manifests(
    name: str, bc: BackendConfig, config: FailwellConfig, image: str, prometheus: str
) -> list[Doc]:
    assert bc.managed is not None
    m, health = bc.managed, bc.health
    selector = {**labels("backend"), "failwell.dev/backend": name}
    # In a pod the model server listens on the pod's address, not on loopback.
    command = [part.replace("127.0.0.1", "0.0.0.0") for part in m.argv(BACKEND_PORT)]
    container = {
        "name": "model",
        "image": image,
        "command": command,
        "ports": [{"name": "http", "containerPort": BACKEND_PORT}],
        "env": [{"name": k, "value": v} for k, v in sorted(m.env.items())],
        "readinessProbe": probe(
            bc.probe_path, BACKEND_PORT, health.interval, health.timeout, health.down_after
        ),
        "livenessProbe": probe(
            bc.probe_path, BACKEND_PORT, health.interval * 2, health.timeout, health.down_after
        ),
        "startupProbe": probe(
            bc.probe_path, BACKEND_PORT, 1, health.timeout, seconds(m.start_timeout)
        ),
    }
    service = service_doc(backend_name(name), "backend", BACKEND_PORT)
    service["spec"]["selector"] = selector
    return [
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": meta(backend_name(name), "backend"),
            "spec": {
                "replicas": m.min,
                "selector": {"matchLabels": selector},
                "template": {
                    "metadata": {"labels": selector},
                    "spec": {
                        "terminationGracePeriodSeconds": seconds(m.drain + m.stop_grace),
                        "containers": [container],
                        "affinity": spread(selector),
                    },
                },
            },
        },
        service,
        {
            "apiVersion": "policy/v1",
            "kind": "PodDisruptionBudget",
            "metadata": meta(backend_name(name), "backend"),
            "spec": {"minAvailable": max(1, m.min - 1), "selector": {"matchLabels": selector}},
        },
        scaled_object(name, bc, config, prometheus),
    ]
