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
from failwell.config.log import LogConfig
from failwell.config.paths import anchored
from failwell.config.registry import RegistryConfig
from failwell.config.training import TrainingJobConfig
from failwell.drift.stats import Reference
from failwell.errors import ConfigError, ConfigIssue, RegistryError
from failwell.log.store import open_store
from failwell.registry import open_registry
from failwell.registry.artifacts import Version
from failwell.registry.registry import PRODUCTION
from failwell.training.checkpoints import Checkpoints
from failwell.training.fit import RouteSchema, drift_problems, schema_problems, with_outputs
from failwell.training.gate import judge
from failwell.training.job import Job, Progress
from failwell.training.logdata import join, write_rows


class TrainingBusy(RegistryError):
    """Another job trains this model now."""


class NoTrainingData(RegistryError):
    """The log holds too few labelled requests for the job."""


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
    if config.data is None:
        return config
    return config.model_copy(update={"data": anchored(config.data, path.resolve().parent)})


def job_id(config: TrainingJobConfig, data: Path) -> str:
    """What defines the job's result, as a digest: same digest, same model."""
    digest = hashlib.sha256()
    with open(data, "rb") as f:
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


def fit_problems(
    config: TrainingJobConfig,
    job: Job,
    reference: dict[str, Any] | None,
    schema: RouteSchema | None,
) -> list[str]:
    """What the gate holds against the candidate beyond its metric: a misfit with the route's
    schema, held-out inputs that drift from the training data's reference."""
    gate = config.gate
    if reference is None or gate is None:
        return []
    ref = Reference.from_json(reference)
    inputs, outputs = job.holdout if job.holdout is not None else ([], None)
    problems = [] if schema is None else schema_problems(schema, ref, outputs)
    if len(inputs) >= gate.min_holdout:
        problems += drift_problems(ref, inputs, gate.max_psi)
    return problems


@contextmanager
def training_data(
    config: TrainingJobConfig, registry: RegistryConfig, log: LogConfig | None
) -> Iterator[tuple[Path, dict[str, Any] | None]]:
    """The job's data file and, for ``from_log``, what the join found. Logged data is written
    once to ``REGISTRY/training/MODEL.jsonl`` and kept until the job ends, so a job killed
    mid-way resumes on the same rows (same identity) even though traffic went on."""
    if config.data is not None:
        yield Path(config.data), None
        return
    spec = config.from_log
    assert spec is not None
    snapshot = Path(registry.path) / "training" / f"{config.model}.jsonl"
    summary_file = snapshot.with_suffix(".json")
    if snapshot.exists() and summary_file.exists():
        summary = json.loads(summary_file.read_text())
    else:
        if log is None or not log.enabled:
            issue = ConfigIssue("log.enabled", "from_log reads the inference log: enable it")
            raise ConfigError([issue])
        store = open_store(log, "inference")
        try:
            joined = join(store, spec)
        finally:
            store.close()
        summary = joined.summary()
        if len(joined.rows) < spec.min_rows:
            raise NoTrainingData(
                f"from_log: {len(joined.rows)} labelled requests of route {spec.route!r} in the"
                f" window, fewer than min_rows {spec.min_rows} ({summary})"
            )
        write_rows(joined.rows, snapshot)
        summary_file.write_text(json.dumps(summary))
    try:
        yield snapshot, summary
    finally:  # a SIGKILL skips this: the snapshot stays for the resumed run
        snapshot.unlink(missing_ok=True)
        summary_file.unlink(missing_ok=True)


def run_job(
    config: TrainingJobConfig,
    registry_config: RegistryConfig,
    progress: Progress | None = None,
    describe: Describe | None = None,
    checkpointed: Callable[[int], None] | None = None,
    log: LogConfig | None = None,
    schema: RouteSchema | None = None,
) -> tuple[Version, Job]:
    """Train, judge and register the candidate. ``describe`` makes the drift reference of the
    training data, stored with the version (``reference`` metadata). ``log`` is where a
    ``from_log`` job reads its rows; ``schema`` is what the route serving the model declares
    (the gate checks the candidate against it)."""
    registry = open_registry(registry_config)
    stores = [registry.primary, *(r.store for r in registry.replicas)]
    entry = resolve_import(config.entry)
    with (
        exclusive(registry_config, config.model),
        tempfile.TemporaryDirectory() as out,
        training_data(config, registry_config, log) as (data, logged),
    ):
        identity = job_id(config, data)
        checkpoints = Checkpoints(stores, config.model, identity)
        job = Job(config, data, Path(out), checkpoints)
        if progress is not None:
            job.progress = progress
        if checkpointed is not None:
            job.checkpointed = checkpointed
        entry(job)
        reference = None if describe is None else describe(data)
        if reference is not None and job.holdout is not None:
            reference = with_outputs(reference, job.holdout[1], config.seed)
        gate = None
        if config.gate is not None:
            production = registry.aliases(config.model).get(PRODUCTION)
            baseline = registry.get(config.model, production) if production else None
            problems = fit_problems(config, job, reference, schema)
            gate = judge(config.gate, job.metrics, baseline, problems)
        meta = {
            "training": {
                "job": identity,
                "entry": config.entry,
                "seed": config.seed,
                "resumed_from": job.resumed_from,
                **({"from_log": logged} if logged is not None else {}),
            },
            "metrics": job.metrics,
            **({"gate": gate} if gate is not None else {}),
        }
        if reference is not None:
            meta["reference"] = reference
        version = registry.push(config.model, Path(out), meta, creator="failwell train")
        checkpoints.clear()
    return version, job
