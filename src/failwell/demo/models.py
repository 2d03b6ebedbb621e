"""In-process demo models for the gateway's ``python`` backend (and for the model server).

The gateway calls ``Factory(**args)`` once, then ``obj.predict(inputs)`` from worker threads,
and reads ``obj.version``. Both rankers take ``{"user_id": str, "country": str, "category":
str}`` and return ``{"items": [10 item ids]}``, best first, from the requested category.
Unknown users, countries or categories are scored from what is known (see ``catalog``); a
well-typed input never raises. A missing or non-string field raises ``ValueError``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import joblib
import numpy as np

from failwell.demo.catalog import (
    Catalog,
    country_index,
    light_features,
    ranker_features,
)
from failwell.demo.data import FloatArray, IntArray, Items
from failwell.demo.train import CATALOG_FILE, LIGHT_FILE, META_FILE, RANKER_FILE

TOP_K = 10
INPUT_FIELDS = ("user_id", "country", "category")

FeatureFn = Callable[[Items, FloatArray, IntArray, IntArray], FloatArray]


def read_inputs(inputs: Mapping[str, Any]) -> tuple[str, str, str]:
    """(user_id, country, category) from a ranker input; ValueError names a bad field."""
    values = []
    for name in INPUT_FIELDS:
        value = inputs.get(name)
        if not isinstance(value, str):
            problem = (
                "is missing" if value is None else f"must be a string, got {type(value).__name__}"
            )
            raise ValueError(f"input {name!r} {problem}")
        values.append(value)
    return values[0], values[1], values[2]


class _CatalogRanker:
    """Scores the candidate items of one request in a single ``predict_proba`` call."""

    def __init__(
        self, model_dir: str | Path, model_key: str, model_file: str, features: FeatureFn
    ) -> None:
        directory = Path(model_dir)
        meta = json.loads((directory / META_FILE).read_text())
        self.version: str = str(meta["models"][model_key]["version"])
        self._model = joblib.load(directory / model_file)
        self._catalog = Catalog.load(directory / CATALOG_FILE)
        self._features = features

    def __repr__(self) -> str:
        return f"{type(self).__name__}(version={self.version!r})"

    def scores(self, user_id: str, country: str, category: str) -> tuple[IntArray, FloatArray]:
        """(candidate item ids, click probabilities) for one request."""
        catalog = self._catalog
        rows = catalog.candidates(category)
        countries = np.full(len(rows), country_index(country), dtype=np.int64)
        x = self._features(catalog.items, catalog.taste(user_id), countries, rows)
        probability: FloatArray = self._model.predict_proba(x)[:, 1]
        return catalog.items.ids[rows], probability

    def predict(self, inputs: Mapping[str, Any]) -> dict[str, list[int]]:
        ids, probability = self.scores(*read_inputs(inputs))
        # Best first; equal scores go to the lower id, so answers are stable.
        order = np.lexsort((ids, -probability))[:TOP_K]
        return {"items": [int(i) for i in ids[order]]}


class Ranker(_CatalogRanker):
    """The primary ranker: gradient-boosted trees on the full user-item features."""

    def __init__(self, model_dir: str | Path) -> None:
        super().__init__(model_dir, "ranker", RANKER_FILE, ranker_features)


class LightRanker(_CatalogRanker):
    """The fallback ranker: logistic regression on coarser features, much cheaper."""

    def __init__(self, model_dir: str | Path) -> None:
        super().__init__(model_dir, "light", LIGHT_FILE, light_features)
