"""What every generated manifest shares: the names and ports, plain YAML for people, labels,
probes, a Service, spreading replicas over nodes."""

from __future__ import annotations

import math
import re
from typing import Any

import yaml

GATEWAY = "failwell-gateway"
PORT = 8080
BACKEND_PORT = 9000
CONFIG_PATH = "/etc/failwell/failwell.yaml"
DRAIN_SECONDS = 30  # the gateway's drain of replaced pools (gateway/core.py DRAIN_TIMEOUT)
ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
Doc = dict[str, Any]


class Dumper(yaml.SafeDumper):
    """Plain YAML for people: no anchors for repeated label maps, multi-line strings (the
    config in the ConfigMap) as literal blocks."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _text(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


Dumper.add_representer(str, _text)


def dump_all(docs: list[Doc]) -> str:
    return yaml.dump_all(docs, Dumper=Dumper, sort_keys=False)


def labels(component: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": "failwell", "app.kubernetes.io/component": component}


def meta(name: str, component: str) -> Doc:
    return {"name": name, "labels": labels(component)}


def seconds(value: float) -> int:
    return max(1, math.ceil(value))


def probe(path: str, port: int, period: float, timeout: float, failures: int) -> Doc:
    return {
        "httpGet": {"path": path, "port": port},
        "periodSeconds": seconds(period),
        "timeoutSeconds": seconds(timeout),
        "failureThreshold": failures,
    }


def backend_name(name: str) -> str:
    return f"failwell-backend-{name}".replace("_", "-").lower()


def spread(selector: dict[str, str]) -> Doc:
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


def service_doc(name: str, component: str, port: int) -> Doc:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": meta(name, component),
        "spec": {
            "selector": labels(component),
            "ports": [{"name": "http", "port": port, "targetPort": port}],
        },
    }
