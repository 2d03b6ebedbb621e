"""``failwell train JOB.yaml``: run a training job to a new registry version.

One job per model at a time (an exclusive lock file in the registry's folder; a second job
for the same model is refused at once). The job's identity is a digest of what defines its
result (model, entry point, data bytes, arguments, seed), so running the same job again after
a crash resumes from its last checkpoint, and a changed job starts afresh. The finished model
is pushed as a new version (no alias moves: promotion is a rollout's decision) with the job's
metrics, identity and gate verdict in its metadata; the job's checkpoints are then removed."""

from __future__ import annotations

import fcntl
import hashlib
import json
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from failwell.config.load import resolve_import
from failwell.config.paths import anchored
from failwell.config.registry import RegistryConfig
from failwell.config.training import TrainingJobConfig
from failwell.errors import ConfigError, ConfigIssue, RegistryError
from failwell.registry import open_registry
from failwell.registry.artifacts import Version
from failwell.registry.registry import PRODUCTION
from failwell.training.checkpoints import Checkpoints
from failwell.training.gate import judge
from failwell.training.job import Job, Progress


class TrainingBusy(RegistryError):
    """Another job trains this model now."""


def load_job(path: Path) -> TrainingJobConfig:
    try:
        data = yaml.safe_load(path.read_text())
        config = TrainingJobConfig.model_validate(data)
    except OSError as exc:
        raise ConfigError([ConfigIssue("", f"cannot read {path}: {exc.strerror}")]) from None
    except yaml.YAMLError as exc:
        raise ConfigError([ConfigIssue("", f"invalid YAML: {exc}")]) from None
    except ValidationError as exc:
        issues = [
            ConfigIssue(".".join(str(p) for p in e["loc"]), e["msg"].removeprefix("Value error, "))
            for e in exc.errors()
        ]
        raise ConfigError(issues) from None
    return config.model_copy(update={"data": anchored(config.data, path.resolve().parent)})


def job_id(config: TrainingJobConfig) -> str:
    """What defines the job's result, as a digest: same digest, same model."""
    digest = hashlib.sha256()
    with open(config.data, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    spec = {"model": config.model, "entry": config.entry, "args": config.args, "seed": config.seed}
    digest.update(json.dumps(spec, sort_keys=True, default=str).encode())
    return digest.hexdigest()[:16]


@contextmanager
def exclusive(registry: RegistryConfig, model: str) -> Iterator[None]:
    locks = Path(registry.path) / "locks"
    locks.mkdir(parents=True, exist_ok=True)
    with open(locks / f"{model}.lock", "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise TrainingBusy(f"a training job for {model!r} is running") from None
        yield  # the lock goes with the file handle, also when the process is killed


Describe = Callable[[Path], dict[str, Any]]


def run_job(
    config: TrainingJobConfig,
    registry_config: RegistryConfig,
    progress: Progress | None = None,
    describe: Describe | None = None,
    checkpointed: Callable[[int], None] | None = None,
) -> tuple[Version, Job]:
    """Train, judge and register the candidate. ``describe`` makes the drift reference of the
    training data, stored with the version (``reference`` metadata)."""
    registry = open_registry(registry_config)
    stores = [registry.primary, *(r.store for r in registry.replicas)]
    entry = resolve_import(config.entry)
    with exclusive(registry_config, config.model), tempfile.TemporaryDirectory() as out:
        identity = job_id(config)
        checkpoints = Checkpoints(stores, config.model, identity)
        job = Job(config, Path(config.data), Path(out), checkpoints)
        if progress is not None:
            job.progress = progress
        if checkpointed is not None:
            job.checkpointed = checkpointed
        entry(job)
        gate = None
        if config.gate is not None:
            production = registry.aliases(config.model).get(PRODUCTION)
            baseline = registry.get(config.model, production) if production else None
            gate = judge(config.gate, job.metrics, baseline)
        meta = {
            "training": {
                "job": identity,
                "entry": config.entry,
                "seed": config.seed,
                "resumed_from": job.resumed_from,
            },
            "metrics": job.metrics,
            **({"gate": gate} if gate is not None else {}),
        }
        if describe is not None:
            meta["reference"] = describe(Path(config.data))
        version = registry.push(config.model, Path(out), meta, creator="failwell train")
        checkpoints.clear()
    return version, job
