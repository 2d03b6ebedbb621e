"""A training job on Kubernetes: a ``batch/v1`` Job that runs ``failwell train`` for one
route's ``retrain.job``, with its checkpoints in the registry's S3 replica, so a pod that is
killed (evicted, preempted, OOM-killed) is replaced by one on any node that resumes from the
last checkpoint:

    python -m failwell.deploy.training CONFIG [OUT_DIR] [--image IMAGE] [--data-claim NAME]

| the local loop (retrain/process.py)     | the Job                                                 |
| --------------------------------------- | ------------------------------------------------------- |
| ``retrain.restarts``: a dead job reruns | ``backoffLimit``: a failed pod is replaced              |
| ``retrain.timeout``                     | ``activeDeadlineSeconds``                               |
| exit 3 (gate rejected) is final         | ``podFailurePolicy``: exit 3 or 2 fails the Job at once |
| one job per model (a lock file)         | ``parallelism: 1``, ``completions: 1``                  |
| checkpoints in every registry store     | the pod's primary is an ``emptyDir``; an init container |
|                                         | restores it from the S3 replica, and checkpoints are    |
|                                         | read back from S3 when the primary has none             |

The pod reads the gateway's own config (its ``registry`` section, with the replica's secrets
from the ``failwell-keys`` Secret) and the job file, both from a ConfigMap; the training data
comes from a PersistentVolumeClaim (``--data-claim``) mounted at ``/data``.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import yaml

from failwell.config.load import load_config
from failwell.deploy.keda import seconds
from failwell.deploy.kubernetes import ENV_REF as ENV
from failwell.deploy.kubernetes import Doc, bundle, meta, write_files
from failwell.errors import ConfigError, ConfigIssue
from failwell.training.runner import load_job

STATE = "/var/lib/failwell"
ETC = "/etc/failwell"
DATA = "/data"


def job_name(route: str) -> str:
    return f"failwell-train-{route}".replace("_", "-").lower()


def pod_config(raw: Doc) -> Doc:
    """The gateway's config with the registry's primary on the pod's scratch volume."""
    out: Doc = yaml.safe_load(yaml.safe_dump(raw, sort_keys=False))
    registry = out.setdefault("registry", {})
    registry["path"] = f"{STATE}/registry"
    registry["checkouts"] = f"{STATE}/checkouts"
    return out


def training_manifests(
    route: str, raw: Doc, config_path: Path, image: str, data_claim: str
) -> list[Doc]:
    stand_in = dict.fromkeys(ENV.findall(config_path.read_text()), "s" * 32)
    config = load_config(config_path, env=stand_in, resolve=False)
    retrain = config.routes[route].retrain
    assert retrain is not None
    s3 = next((r for r in config.registry.replicas if r.url.startswith("s3://")), None)
    if s3 is None:
        where = "registry.replicas"
        raise ConfigError([ConfigIssue(where, "a training Job needs an s3:// replica")])
    job_path = Path(retrain.job)
    job = load_job(job_path)
    job_raw = yaml.safe_load(job_path.read_text())
    if job.data is not None:
        job_raw["data"] = f"{DATA}/{Path(job.data).name}"
    name = job_name(route)
    body = yaml.safe_dump(pod_config(raw), sort_keys=False)
    secrets = sorted(set(ENV.findall(body)))
    env = [
        {"name": n, "valueFrom": {"secretKeyRef": {"name": "failwell-keys", "key": n}}}
        for n in secrets
    ]
    config_arg = ["--config", f"{ETC}/failwell.yaml"]
    mounts = [
        {"name": "config", "mountPath": ETC, "readOnly": True},
        {"name": "state", "mountPath": STATE},
    ]
    security = {"runAsNonRoot": True, "allowPrivilegeEscalation": False}
    restore: dict[str, Any] = {
        "name": "restore-registry",
        "image": image,
        # The loop retrains a model that has a version in production, so the replica holds
        # it: a restore that fails (S3 unreachable) stops the pod before it pushes anything.
        "command": ["python", "-m", "failwell", "registry", "restore", "--from", s3.name],
        "args": config_arg,
        "env": env,
        "volumeMounts": mounts,
        "securityContext": security,
    }
    train = {
        "name": "train",
        "image": image,
        "command": ["python", "-m", "failwell.cli.train", f"{ETC}/job.yaml", "--events"],
        "args": config_arg,
        "env": env,
        "volumeMounts": [*mounts, {"name": "data", "mountPath": DATA, "readOnly": True}],
        "resources": {"requests": {"cpu": "1", "memory": "1Gi"}},
        "securityContext": security,
    }
    return [
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": meta(f"{name}-config", "training"),
            "data": {"failwell.yaml": body, "job.yaml": yaml.safe_dump(job_raw, sort_keys=False)},
        },
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {
                **meta(name, "training"),
                "annotations": {"failwell.dev/model": job.model, "failwell.dev/route": route},
            },
            "spec": {
                "parallelism": 1,
                "completions": 1,
                "backoffLimit": retrain.restarts,
                "activeDeadlineSeconds": seconds(retrain.timeout),
                "ttlSecondsAfterFinished": 86400,
                "podFailurePolicy": {
                    "rules": [
                        {  # 3: the gate rejected the candidate; 2: a config or registry error
                            "action": "FailJob",
                            "onExitCodes": {
                                "containerName": "train",
                                "operator": "In",
                                "values": [2, 3],
                            },
                        },
                        {  # evicted or preempted: not the job's fault, no retry counted
                            "action": "Ignore",
                            "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}],
                        },
                    ]
                },
                "template": {
                    "metadata": {"labels": meta(name, "training")["labels"]},
                    "spec": {
                        "restartPolicy": "Never",
                        "initContainers": [restore],
                        "containers": [train],
                        "volumes": [
                            {"name": "config", "configMap": {"name": f"{name}-config"}},
                            {"name": "state", "emptyDir": {}},
                            {"name": "data", "persistentVolumeClaim": {"claimName": data_claim}},
                        ],
                    },
                },
            },
        },
    ]


def render(config_path: Path, image: str, data_claim: str) -> dict[str, str]:
    """File name → YAML text: one Job (and its ConfigMap) per route with ``retrain``."""
    raw = yaml.safe_load(config_path.read_text())
    files = {
        f"train-{route}.yaml": training_manifests(route, raw, config_path, image, data_claim)
        for route, rc in (raw.get("routes") or {}).items()
        if isinstance(rc, dict) and rc.get("retrain") is not None
    }
    return bundle("failwell.deploy.training", config_path, files)


SOURCE = Path("examples/retrain.yaml")
OUT = Path("deploy/training")
IMAGE = "ghcr.io/failwell/failwell:0.1.0"
DATA_CLAIM = "failwell-training-data"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m failwell.deploy.training")
    parser.add_argument("config", type=Path, nargs="?", default=SOURCE)
    parser.add_argument("out", type=Path, nargs="?", default=OUT)
    parser.add_argument("--image", default=IMAGE, help="image with failwell and the trainer")
    parser.add_argument("--data-claim", default=DATA_CLAIM, help="PVC holding the data")
    args = parser.parse_args(argv)
    write_files(args.out, render(args.config, args.image, args.data_claim))


if __name__ == "__main__":
    main()
