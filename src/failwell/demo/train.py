"""Train the demo rankers into a model directory.

    <out_dir>/ranker.joblib     primary: GradientBoostingClassifier on the full features
    <out_dir>/light.joblib      fallback: LogisticRegression on coarser features
    <out_dir>/catalog.npz       users and items the models score (see ``catalog``)
    <out_dir>/popularity.json   most-clicked items (see ``data.popularity_table``)
    <out_dir>/meta.json         seed, versions ("ranker-<sha256 prefix of the file>"), held-out AUCs

``meta.json`` is written last: a directory with one holds a complete, usable set of models.
Training is deterministic given the seed.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import joblib
import numpy as np
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from failwell.demo.catalog import Catalog, light_features, ranker_features
from failwell.demo.data import DemoData, generate, popularity_table

RANKER_FILE = "ranker.joblib"
LIGHT_FILE = "light.joblib"
CATALOG_FILE = "catalog.npz"
POPULARITY_FILE = "popularity.json"
META_FILE = "meta.json"
HELD_OUT = 0.2


@dataclass(frozen=True)
class TrainReport:
    model_dir: Path
    seed: int
    ranker_path: Path
    light_path: Path
    catalog_path: Path
    popularity_path: Path
    meta_path: Path
    ranker_version: str
    light_version: str
    ranker_auc: float
    light_auc: float


def file_version(prefix: str, path: Path) -> str:
    """``<prefix>-<first 8 hex digits of the file's sha256>``."""
    return f"{prefix}-{hashlib.sha256(path.read_bytes()).hexdigest()[:8]}"


def _split(data: DemoData, seed: int) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    n = len(data.interactions.clicked)
    order = np.random.default_rng(seed + 1).permutation(n)
    cut = int(n * (1 - HELD_OUT))
    return np.sort(order[:cut]), np.sort(order[cut:])


def train(out_dir: Path, seed: int = 0) -> TrainReport:
    """Generate the data for ``seed``, fit both rankers, save them and return the report."""
    out_dir.mkdir(parents=True, exist_ok=True)
    data = generate(seed)
    items, log = data.items, data.interactions
    taste = data.users.taste[log.user]
    country = data.users.country[log.user]
    train_rows, test_rows = _split(data, seed)
    y = log.clicked

    x_rank = ranker_features(items, taste, country, log.item)
    ranker = GradientBoostingClassifier(
        n_estimators=50, max_depth=3, learning_rate=0.1, random_state=seed
    )
    ranker.fit(x_rank[train_rows], y[train_rows])
    ranker_auc = float(roc_auc_score(y[test_rows], ranker.predict_proba(x_rank[test_rows])[:, 1]))

    x_light = light_features(items, taste, country, log.item)
    light = LogisticRegression(max_iter=1000)
    light.fit(x_light[train_rows], y[train_rows])
    light_auc = float(roc_auc_score(y[test_rows], light.predict_proba(x_light[test_rows])[:, 1]))

    ranker_path, light_path = out_dir / RANKER_FILE, out_dir / LIGHT_FILE
    joblib.dump(ranker, ranker_path)
    joblib.dump(light, light_path)
    catalog_path = out_dir / CATALOG_FILE
    Catalog.from_data(data).save(catalog_path)
    popularity_path = out_dir / POPULARITY_FILE
    popularity_path.write_text(json.dumps(popularity_table(data).to_json(), indent=1) + "\n")

    meta = {
        "seed": seed,
        "catalog": CATALOG_FILE,
        "popularity": POPULARITY_FILE,
        "train_rows": len(train_rows),
        "test_rows": len(test_rows),
        "models": {
            "ranker": {
                "file": RANKER_FILE,
                "version": file_version("ranker", ranker_path),
                "auc": round(ranker_auc, 6),
                "estimator": "GradientBoostingClassifier(n_estimators=50, max_depth=3)",
                "features": int(x_rank.shape[1]),
            },
            "light": {
                "file": LIGHT_FILE,
                "version": file_version("light", light_path),
                "auc": round(light_auc, 6),
                "estimator": "LogisticRegression",
                "features": int(x_light.shape[1]),
            },
        },
    }
    meta_path = out_dir / META_FILE
    tmp = meta_path.with_suffix(".tmp")
    tmp.write_text(json.dumps(meta, indent=2) + "\n")
    tmp.replace(meta_path)
    report = read_report(out_dir)
    assert report is not None
    return report


def read_report(model_dir: Path) -> TrainReport | None:
    """The report of a complete, intact model directory; None when it holds no usable models."""
    try:
        meta = json.loads((model_dir / META_FILE).read_text())
        ranker, light = meta["models"]["ranker"], meta["models"]["light"]
        report = TrainReport(
            model_dir=model_dir,
            seed=int(meta["seed"]),
            ranker_path=model_dir / ranker["file"],
            light_path=model_dir / light["file"],
            catalog_path=model_dir / meta["catalog"],
            popularity_path=model_dir / meta["popularity"],
            meta_path=model_dir / META_FILE,
            ranker_version=str(ranker["version"]),
            light_version=str(light["version"]),
            ranker_auc=float(ranker["auc"]),
            light_auc=float(light["auc"]),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None
    paths = (report.catalog_path, report.popularity_path)
    if not all(p.is_file() for p in paths):
        return None
    try:  # the versions are content hashes: a changed or damaged model file is not this model
        intact = file_version("ranker", report.ranker_path) == report.ranker_version and (
            file_version("light", report.light_path) == report.light_version
        )
    except OSError:
        return None
    return report if intact else None
