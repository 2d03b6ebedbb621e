"""Kubernetes manifests from a failwell config: the gateway (Deployment, Service,
PodDisruptionBudget, the config as a ConfigMap, the keys it references as a Secret) and one
Deployment, Service and KEDA ``ScaledObject`` per managed backend, so the autoscaling policy a
backend's ``managed.autoscale`` gives the local autoscaler is the one KEDA applies (the
ScaledObject is built in ``deploy/keda.py``):

    python -m failwell.deploy.kubernetes CONFIG [OUT_DIR] [--image IMAGE] [--prometheus URL]

| local (supervisor/autoscale.py)        | Kubernetes (KEDA → HPA)                                  |
| -------------------------------------- | -------------------------------------------------------- |
| ``min`` / ``max``                      | ``minReplicaCount`` / ``maxReplicaCount``                |
| ``ceil(in flight / target_in_flight)`` | Prometheus trigger, ``AverageValue``: the summed          |
|                                        | ``failwell_replica_outstanding_requests`` of the backend |
| p99 over ``target_p99`` votes up       | Prometheus trigger, ``Value``: tier-1 p99 of its routes  |
| ``trend`` (opt-in) votes up            | Prometheus trigger, ``AverageValue``: queue depth times   |
|                                        | ``predict_linear`` of the tier-1 rate / the rate now      |
| ``interval``                           | ``pollingInterval``                                      |
| ``up_window`` / ``down_window``        | ``behavior.scaleUp/scaleDown.stabilizationWindowSeconds`` |
| ``max_step_*`` per ``*_cooldown``      | ``behavior.*.policies: Pods value per periodSeconds``    |

On Kubernetes the engine runs the replicas: the gateway's config points a managed backend at
its Service instead (``managed`` dropped), and the warm standby is the engine's business (a
readiness probe and the PodDisruptionBudget). kustomize rather than Helm: the files are plain
generated YAML, diffable and checked by a test; ``kubectl apply -k`` needs nothing else, and an
overlay changes namespace, images or replicas without a template language.
"""

from __future__ import annotations

import argparse
import hashlib
import re
from pathlib import Path
from typing import Any

import yaml

from failwell.config.backends import BackendConfig
from failwell.config.load import load_config
from failwell.config.models import FailwellConfig
from failwell.deploy.keda import scaled_object
from failwell.deploy.keda import seconds as _seconds

GATEWAY = "failwell-gateway"
PORT = 8080
BACKEND_PORT = 9000
CONFIG_PATH = "/etc/failwell/failwell.yaml"
DRAIN_SECONDS = 30  # the gateway's drain of replaced pools (gateway/core.py DRAIN_TIMEOUT)
ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
Doc = dict[str, Any]


class _Dumper(yaml.SafeDumper):
    """Plain YAML for people: no anchors for repeated label maps, multi-line strings (the
    config in the ConfigMap) as literal blocks."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _text(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _text)


def dump_all(docs: list[Doc]) -> str:
    return yaml.dump_all(docs, Dumper=_Dumper, sort_keys=False)


def _labels(component: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": "failwell", "app.kubernetes.io/component": component}


def meta(name: str, component: str) -> Doc:
    return {"name": name, "labels": _labels(component)}


def _probe(path: str, port: int, period: float, timeout: float, failures: int) -> Doc:
    return {
        "httpGet": {"path": path, "port": port},
        "periodSeconds": _seconds(period),
        "timeoutSeconds": _seconds(timeout),
        "failureThreshold": failures,
    }


def backend_name(name: str) -> str:
    return f"failwell-backend-{name}".replace("_", "-").lower()


def gateway_config(raw: Doc, config: FailwellConfig) -> Doc:
    """The config the gateway pods read: listening on every interface, stores on the pod's
    volume, each managed backend pointed at its Service."""
    out: Doc = yaml.safe_load(yaml.safe_dump(raw, sort_keys=False))
    gateway = out.setdefault("gateway", {})
    gateway["listen"] = f"0.0.0.0:{PORT}"
    gateway["cache"] = {**gateway.get("cache", {}), "path": "/var/lib/failwell/cache.sqlite"}
    for name, bc in config.backends.items():
        if bc.managed is None:
            continue
        section = out["backends"][name]
        del section["managed"]
        section["replicas"] = [
            {"url": f"http://{backend_name(name)}:{BACKEND_PORT}", "name": backend_name(name)}
        ]
    return out


def gateway_manifests(raw: Doc, config: FailwellConfig, text: str, image: str) -> list[Doc]:
    body = dump_all([gateway_config(raw, config)])
    secrets = sorted(set(ENV_REF.findall(text)))
    env = [
        {"name": n, "valueFrom": {"secretKeyRef": {"name": "failwell-keys", "key": n}}}
        for n in secrets
    ]
    selector = _labels("gateway")
    container = {
        "name": "gateway",
        "image": image,
        "args": ["serve", "--config", CONFIG_PATH],
        "ports": [{"name": "http", "containerPort": PORT}],
        "env": env,
        # Ready while any tier can answer (degraded routes are listed); a global balancer
        # that should move traffic away from a region whose tier 1 is down reads
        # /health/ready?tier1=true instead (docs/operations.md).
        "readinessProbe": _probe("/health/ready", PORT, 2, 1, 2),
        "livenessProbe": _probe("/health/live", PORT, 5, 1, 3),
        "startupProbe": _probe("/health/live", PORT, 1, 1, 60),
        "resources": {"requests": {"cpu": "500m", "memory": "256Mi"}},
        "securityContext": {"runAsNonRoot": True, "allowPrivilegeEscalation": False},
        "volumeMounts": [
            {"name": "config", "mountPath": "/etc/failwell", "readOnly": True},
            {"name": "state", "mountPath": "/var/lib/failwell"},
        ],
    }
    digest = hashlib.sha256(body.encode()).hexdigest()[:16]
    return [
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": meta("failwell-config", "gateway"),
            "data": {"failwell.yaml": body},
        },
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": meta("failwell-keys", "gateway"),
            "type": "Opaque",
            # Placeholders: set the real values with an overlay or a secret manager.
            "stringData": {n: "REPLACE-ME" for n in secrets},
        },
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": meta(GATEWAY, "gateway"),
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": selector},
                "strategy": {
                    "type": "RollingUpdate",
                    "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
                },
                "template": {
                    "metadata": {
                        "labels": selector,
                        "annotations": {
                            "failwell.dev/config-sha256": digest,
                            "prometheus.io/scrape": "true",
                            "prometheus.io/port": str(PORT),
                        },
                    },
                    "spec": {
                        "terminationGracePeriodSeconds": DRAIN_SECONDS + 5,
                        "containers": [container],
                        "volumes": [
                            {"name": "config", "configMap": {"name": "failwell-config"}},
                            {"name": "state", "emptyDir": {}},
                        ],
                        "affinity": _spread(selector),
                    },
                },
            },
        },
        _service(GATEWAY, "gateway", PORT),
        {
            "apiVersion": "policy/v1",
            "kind": "PodDisruptionBudget",
            "metadata": meta(GATEWAY, "gateway"),
            "spec": {"minAvailable": 1, "selector": {"matchLabels": selector}},
        },
    ]


def _spread(selector: dict[str, str]) -> Doc:
    return {
        "podAntiAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {
                    "weight": 100,
                    "podAffinityTerm": {
                        "topologyKey": "kubernetes.io/hostname",
                        "labelSelector": {"matchLabels": selector},
                    },
                }
            ]
        }
    }


def _service(name: str, component: str, port: int) -> Doc:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": meta(name, component),
        "spec": {
            "selector": _labels(component),
            "ports": [{"name": "http", "port": port, "targetPort": port}],
        },
    }


def backend_manifests(
    name: str, bc: BackendConfig, config: FailwellConfig, image: str, prometheus: str
) -> list[Doc]:
    assert bc.managed is not None
    m, health = bc.managed, bc.health
    selector = {**_labels("backend"), "failwell.dev/backend": name}
    # In a pod the model server listens on the pod's address, not on loopback.
    command = [part.replace("127.0.0.1", "0.0.0.0") for part in m.argv(BACKEND_PORT)]
    container = {
        "name": "model",
        "image": image,
        "command": command,
        "ports": [{"name": "http", "containerPort": BACKEND_PORT}],
        "env": [{"name": k, "value": v} for k, v in sorted(m.env.items())],
        "readinessProbe": _probe(
            bc.probe_path, BACKEND_PORT, health.interval, health.timeout, health.down_after
        ),
        "livenessProbe": _probe(
            bc.probe_path, BACKEND_PORT, health.interval * 2, health.timeout, health.down_after
        ),
        "startupProbe": _probe(
            bc.probe_path, BACKEND_PORT, 1, health.timeout, _seconds(m.start_timeout)
        ),
    }
    service = _service(backend_name(name), "backend", BACKEND_PORT)
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
                        "terminationGracePeriodSeconds": _seconds(m.drain + m.stop_grace),
                        "containers": [container],
                        "affinity": _spread(selector),
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
        scaled_object(name, bc, config, prometheus, meta(backend_name(name), "backend")),
    ]


def render(config_path: Path, image: str, prometheus: str) -> dict[str, str]:
    """File name → YAML text of every manifest, and the kustomization listing them."""
    text = config_path.read_text()
    raw = yaml.safe_load(text)
    # Checked with stand-ins for the secrets: the pods get the real ones from the Secret.
    stand_in = dict.fromkeys(ENV_REF.findall(text), "s" * 32)
    config = load_config(config_path, env=stand_in, resolve=False)
    files = {"gateway.yaml": gateway_manifests(raw, config, text, image)}
    for name, bc in config.backends.items():
        if bc.managed is not None:
            files[f"backend-{name}.yaml"] = backend_manifests(name, bc, config, image, prometheus)
    return bundle("failwell.deploy.kubernetes", config_path, files)


def bundle(module: str, config_path: Path, files: dict[str, list[Doc]]) -> dict[str, str]:
    """File name → YAML text of ``files``, each with a do-not-edit header naming ``module``,
    and the kustomization listing them."""
    header = f"# Generated by python -m {module} {config_path.name}; do not edit.\n"
    out = {name: header + dump_all(docs) for name, docs in files.items()}
    kustomization = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": sorted(out),
    }
    out["kustomization.yaml"] = header + dump_all([kustomization])
    return out


def write_files(out: Path, files: dict[str, str]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (out / name).write_text(text)


SOURCE = Path("examples/managed.yaml")  # the description the shipped manifests come from
OUT = Path("deploy/kubernetes")
IMAGE = "ghcr.io/failwell/failwell:0.1.0"
PROMETHEUS = "http://prometheus-operated.monitoring.svc:9090"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m failwell.deploy.kubernetes")
    parser.add_argument("config", type=Path, nargs="?", default=SOURCE)
    parser.add_argument("out", type=Path, nargs="?", default=OUT)
    parser.add_argument("--image", default=IMAGE, help="image of the gateway and the backends")
    parser.add_argument("--prometheus", default=PROMETHEUS, help="Prometheus URL KEDA queries")
    args = parser.parse_args(argv)
    write_files(args.out, render(args.config, args.image, args.prometheus))


if __name__ == "__main__":
    main()
