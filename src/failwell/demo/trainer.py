"""The demo's training entry point for ``failwell train``: logistic regression by SGD
(``partial_fit``) over seeded mini-batches, checkpointed as it goes. Resuming really continues:
the checkpoint holds the model and the step, and the batches after it are the same as in an
uninterrupted run, so both end with the same model: ``params.json`` (coefficients, intercept,
classes and the step count, exact float text) is byte for byte the same. (``model.pkl``, for
serving, is not: a model unpickled mid-way shares its inner objects differently, so pickle lays
the same values out differently.)

Data: JSON lines ``{"inputs": {feature: number, ...}, "label": 0 or 1}``. Arguments: ``epochs``
(5), ``batch`` (200), ``holdout`` (share kept for the AUC, 0.2), ``step_delay`` (seconds slept
per step; for demonstrations and tests of a crash mid-way), ``serve`` (written to the artifact's
``serving.json``: ``fail_rate`` makes the served model fail that share of its calls, for a
candidate that passes its gate and misbehaves under live traffic).

``Scorer`` serves the artifact (a python backend with ``model_ref``): ``{"score": P(label=1),
"label": 0 or 1}``."""

from __future__ import annotations

import functools
import json
import math
import pickle
import time
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.linear_model import SGDClassifier
from sklearn.metrics import roc_auc_score

from failwell.training.job import Job

MODEL_FILE = "model.pkl"
PARAMS_FILE = "params.json"
SERVING_FILE = "serving.json"


def _matrix(job: Job) -> tuple[list[str], np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    rows = [json.loads(line) for line in job.data.read_text().splitlines() if line.strip()]
    names = sorted(rows[0]["inputs"])
    x = np.array([[float(r["inputs"][n]) for n in names] for r in rows])
    y = np.array([int(r["label"]) for r in rows])
    return names, x, y


def train(job: Job) -> None:
    names, x, y = _matrix(job)
    epochs, batch = int(job.args.get("epochs", 5)), int(job.args.get("batch", 200))
    delay = float(job.args.get("step_delay", 0.0))
    cut = int(len(x) * (1 - float(job.args.get("holdout", 0.2))))
    train_x, train_y, test_x, test_y = x[:cut], y[:cut], x[cut:], y[cut:]
    per_epoch = math.ceil(len(train_x) / batch)
    total = epochs * per_epoch
    found = job.resume()
    if found is not None:
        model, start = pickle.loads(found.state)
    else:
        model, start = SGDClassifier(loss="log_loss", random_state=job.seed), 0
    for step in range(start, total):
        epoch, index = divmod(step, per_epoch)
        order = np.random.default_rng(job.seed + epoch).permutation(len(train_x))
        rows = order[index * batch : (index + 1) * batch]
        model.partial_fit(train_x[rows], train_y[rows], classes=np.array([0, 1]))
        if delay:
            time.sleep(delay)
        done = step + 1
        job.step(done, total, functools.partial(pickle.dumps, (model, done)))
    (job.out / MODEL_FILE).write_bytes(pickle.dumps(model))
    (job.out / "features.json").write_text(json.dumps(names))
    params = {
        "coef": model.coef_.tolist(),
        "intercept": model.intercept_.tolist(),
        "classes": model.classes_.tolist(),
        "t": float(model.t_),
    }
    (job.out / PARAMS_FILE).write_text(json.dumps(params, sort_keys=True))
    if job.args.get("serve"):
        (job.out / SERVING_FILE).write_text(json.dumps(job.args["serve"]))
    scores = model.predict_proba(test_x)[:, 1] if len(test_x) else np.array([])
    job.held_out(
        [dict(zip(names, row, strict=True)) for row in test_x.tolist()],
        [{"score": round(float(p), 6), "label": int(p >= 0.5)} for p in scores],
    )
    auc = roc_auc_score(test_y, model.predict_proba(test_x)[:, 1]) if len(set(test_y)) > 1 else None
    job.record(holdout_auc=None if auc is None else round(float(auc), 6), steps=total)


class Scorer:
    """The trained model, served from its registry artifact (``model_dir``)."""

    def __init__(self, model_dir: str) -> None:
        folder = Path(model_dir)
        self.model = pickle.loads((folder / MODEL_FILE).read_bytes())
        self.names = json.loads((folder / "features.json").read_text())
        serving = folder / SERVING_FILE
        spec = json.loads(serving.read_text()) if serving.exists() else {}
        self.fail_every = round(1 / spec["fail_rate"]) if spec.get("fail_rate") else 0
        self.calls = 0

    def predict(self, inputs: dict[str, Any]) -> dict[str, Any]:
        self.calls += 1
        if self.fail_every and self.calls % self.fail_every == 0:
            raise RuntimeError("this version was trained to fail under traffic (serve.fail_rate)")
        row = np.array([[float(inputs[n]) for n in self.names]])
        score = float(self.model.predict_proba(row)[0, 1])
        return {"score": round(score, 6), "label": int(score >= 0.5)}
