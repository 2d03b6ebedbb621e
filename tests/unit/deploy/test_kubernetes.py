"""The shipped Kubernetes manifests are generated from examples/managed.yaml, pass the
Kubernetes schemas (kubernetes-validate, offline) and KEDA's ScaledObject fields (a schema
vendored in failwell/deploy/schemas), and express the local autoscaler's policy."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from failwell.config import load_config
from failwell.deploy import kubernetes
from failwell.observe import families

ROOT = Path(__file__).resolve().parents[3]
SCHEMA = json.loads((ROOT / "src/failwell/deploy/schemas/keda-scaledobject.json").read_text())
K8S = "1.30.0"


def shipped() -> dict[str, str]:
    return kubernetes.render(ROOT / kubernetes.SOURCE, kubernetes.IMAGE, kubernetes.PROMETHEUS)


def docs() -> list[dict[str, Any]]:
    return [
        d
        for name, text in shipped().items()
        if name != "kustomization.yaml"
        for d in yaml.safe_load_all(text)
    ]


def test_manifests_are_current() -> None:
    for name, text in shipped().items():
        path = ROOT / kubernetes.OUT / name
        assert path.read_text() == text, "regenerate: python -m failwell.deploy.kubernetes"
    assert sorted(p.name for p in (ROOT / kubernetes.OUT).iterdir()) == sorted(shipped())


def test_kubernetes_objects_pass_the_kubernetes_schemas() -> None:
    kinds = []
    for doc in docs():
        if doc["kind"] == "ScaledObject":
            continue
        kubernetes_validate.validate(doc, K8S, strict=True)
        kinds.append(doc["kind"])
    assert sorted(set(kinds)) == [
        "ConfigMap", "Deployment", "PodDisruptionBudget", "Secret", "Service"
    ]  # fmt: skip


def test_scaled_objects_pass_the_keda_schema_and_their_behavior_the_hpa_schema() -> None:
    scaled = [d for d in docs() if d["kind"] == "ScaledObject"]
    assert scaled
    for doc in scaled:
        jsonschema.Draft202012Validator(SCHEMA).validate(doc)
        spec = doc["spec"]
        assert spec["minReplicaCount"] <= spec["maxReplicaCount"]
        hpa = {
            "apiVersion": "autoscaling/v2",
            "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": doc["metadata"]["name"]},
            "spec": {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "x"},
                "minReplicas": spec["minReplicaCount"],
                "maxReplicas": spec["maxReplicaCount"],
                "behavior": spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"],
            },
        }
        kubernetes_validate.validate(hpa, K8S, strict=True)


@pytest.mark.parametrize(
    "broken",
    [
        {"spec": {"scaleTargetRef": {"name": "x"}, "triggers": [], "pollingInterval": 5}},
        {"spec": {"scaleTargetRef": {"name": "x"}, "minReplicas": 1, "triggers": [{"type": "cpu", "metadata": {}}]}},
        {"spec": {"scaleTargetRef": {"name": "x"}, "triggers": [{"type": "prometheus", "metadata": {"query": "up"}}]}},
    ],
)  # fmt: skip
def test_the_keda_schema_refuses_what_keda_would(broken: dict[str, Any]) -> None:
    doc = {"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject", "metadata": {"name": "x"}}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft202012Validator(SCHEMA).validate({**doc, **broken})


def test_the_scaled_object_expresses_the_local_policy() -> None:
    config = load_config(ROOT / kubernetes.SOURCE, resolve=False)
    managed = config.backends["ranker"].managed
    assert managed is not None
    policy = managed.autoscale
    (doc,) = [d for d in docs() if d["kind"] == "ScaledObject"]
    spec = doc["spec"]
    assert (spec["minReplicaCount"], spec["maxReplicaCount"]) == (managed.min, managed.max)
    assert spec["pollingInterval"] == policy.interval
    behavior = spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]
    assert behavior["scaleUp"]["stabilizationWindowSeconds"] == policy.up_window
    assert behavior["scaleDown"]["stabilizationWindowSeconds"] == policy.down_window
    assert behavior["scaleUp"]["policies"] == [
        {"type": "Pods", "value": policy.max_step_up, "periodSeconds": policy.up_cooldown}
    ]
    assert behavior["scaleDown"]["policies"][0]["periodSeconds"] == policy.down_cooldown
    queue, latency = spec["triggers"]
    assert queue["metricType"] == "AverageValue"
    assert float(queue["metadata"]["threshold"]) == policy.target_in_flight
    assert families.REPLICA_OUTSTANDING.sample in queue["metadata"]["query"]
    assert float(latency["metadata"]["threshold"]) == policy.target_p99
    assert families.REQUEST_DURATION.bucket in latency["metadata"]["query"]
    names = set(re.findall(r"\bfailwell_[a-z0-9_]+", json.dumps(spec["triggers"])))
    declared = {f.sample for f in families.FAMILIES} | {
        f.bucket for f in families.FAMILIES if f.kind is families.Kind.HISTOGRAM
    }
    assert names <= declared


def test_the_gateway_reads_its_config_from_the_configmap_and_probes_health() -> None:
    by_kind = {d["kind"]: d for d in yaml.safe_load_all(shipped()["gateway.yaml"])}
    gateway = yaml.safe_load(by_kind["ConfigMap"]["data"]["failwell.yaml"])
    ranker = gateway["backends"]["ranker"]
    assert "managed" not in ranker
    assert ranker["replicas"] == [
        {"url": "http://failwell-backend-ranker:9000", "name": "failwell-backend-ranker"}
    ]
    (container,) = by_kind["Deployment"]["spec"]["template"]["spec"]["containers"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/health/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/health/live"
    assert by_kind["PodDisruptionBudget"]["spec"]["minAvailable"] == 1


def test_keys_the_config_references_become_a_secret(tmp_path: Path) -> None:
    text = (ROOT / kubernetes.SOURCE).read_text() + (
        'security:\n  keys:\n    - {name: ops, secret: "${OPS_KEY}", scopes: [admin, metrics]}\n'
    )
    path = tmp_path / "keys.yaml"
    path.write_text(text)
    files = kubernetes.render(path, "img", kubernetes.PROMETHEUS)
    by_kind = {d["kind"]: d for d in yaml.safe_load_all(files["gateway.yaml"])}
    assert by_kind["Secret"]["stringData"] == {"OPS_KEY": "REPLACE-ME"}
    (container,) = by_kind["Deployment"]["spec"]["template"]["spec"]["containers"]
    assert container["env"] == [
        {
            "name": "OPS_KEY",
            "valueFrom": {"secretKeyRef": {"name": "failwell-keys", "key": "OPS_KEY"}},
        }
    ]
    assert "${OPS_KEY}" in by_kind["ConfigMap"]["data"]["failwell.yaml"]
    for doc in by_kind.values():
        kubernetes_validate.validate(doc, K8S, strict=True)
