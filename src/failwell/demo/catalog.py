"""What the demo models know at serving time, and the feature rows both rankers score.

Training and serving build features with the same functions, so they cannot drift apart. The
catalog is saved as a plain ``.npz`` (no pickle) next to the models.

Primary ranker features (one row per user-item pair):
    taste ⊙ features (d), taste·features / sqrt(d), country one-hot, category one-hot,
    popularity in the country, mean popularity
Light ranker features (coarser): the first two taste ⊙ features products, category one-hot,
    popularity in the country, mean popularity
An unknown user has a zero taste vector; an unknown country has a zero one-hot and the mean
popularity in place of the local one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from failwell.demo.data import (
    CATEGORIES,
    COUNTRIES,
    LATENT_DIM,
    DemoData,
    FloatArray,
    IntArray,
    Items,
    Users,
)

LIGHT_DIMS = 2
UNKNOWN = -1


@dataclass(frozen=True, eq=False)
class Catalog:
    users: Users
    items: Items
    _user_row: dict[str, int] = field(init=False, repr=False)
    _category_rows: dict[str, IntArray] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_user_row", {u: i for i, u in enumerate(self.users.ids)})
        rows = {c: np.flatnonzero(self.items.category == k) for k, c in enumerate(CATEGORIES)}
        object.__setattr__(self, "_category_rows", rows)

    @classmethod
    def from_data(cls, data: DemoData) -> Catalog:
        return cls(data.users, data.items)

    def save(self, path: Path) -> None:
        with path.open("wb") as f:
            np.savez(
                f,
                user_ids=np.array(self.users.ids),
                user_country=self.users.country,
                user_taste=self.users.taste,
                item_ids=self.items.ids,
                item_category=self.items.category,
                item_features=self.items.features,
                item_popularity=self.items.popularity,
            )

    @classmethod
    def load(cls, path: Path) -> Catalog:
        with np.load(path, allow_pickle=False) as z:
            users = Users(
                tuple(str(u) for u in z["user_ids"]),
                z["user_country"].astype(np.int64),
                z["user_taste"].astype(np.float64),
            )
            items = Items(
                z["item_ids"].astype(np.int64),
                z["item_category"].astype(np.int64),
                z["item_features"].astype(np.float64),
                z["item_popularity"].astype(np.float64),
            )
        return cls(users, items)

    def taste(self, user_id: str) -> FloatArray:
        """The user's taste vector; zeros (the population mean) for an unknown user."""
        row = self._user_row.get(user_id)
        return np.zeros(LATENT_DIM) if row is None else self.users.taste[row]

    def candidates(self, category: str) -> IntArray:
        """Item rows of the category; every item row for an unknown category."""
        rows = self._category_rows.get(category)
        return np.arange(len(self.items.ids), dtype=np.int64) if rows is None else rows


def country_index(country: str) -> int:
    """Index into COUNTRIES, or UNKNOWN."""
    try:
        return COUNTRIES.index(country)
    except ValueError:
        return UNKNOWN


def _one_hot(index: IntArray, size: int) -> FloatArray:
    out = np.zeros((len(index), size))
    known = index >= 0
    out[np.flatnonzero(known), index[known]] = 1.0
    return out


def _popularity(items: Items, rows: IntArray, country: IntArray) -> tuple[FloatArray, FloatArray]:
    mean = items.popularity[rows].mean(axis=1)
    local = items.popularity[rows, np.maximum(country, 0)]
    return np.where(country >= 0, local, mean), mean


def ranker_features(
    items: Items, taste: FloatArray, country: IntArray, rows: IntArray
) -> FloatArray:
    """Primary ranker rows for aligned (taste (n, d) or (d,), country (n,), item row (n,))."""
    features = items.features[rows]
    products = np.broadcast_to(taste, features.shape) * features
    local, mean = _popularity(items, rows, country)
    return np.column_stack(
        [
            products,
            products.sum(axis=1) / np.sqrt(LATENT_DIM),
            _one_hot(country, len(COUNTRIES)),
            _one_hot(items.category[rows], len(CATEGORIES)),
            local,
            mean,
        ]
    )


def light_features(
    items: Items, taste: FloatArray, country: IntArray, rows: IntArray
) -> FloatArray:
    """Light ranker rows: the same inputs, coarser features."""
    features = items.features[rows, :LIGHT_DIMS]
    products = np.broadcast_to(taste[..., :LIGHT_DIMS], features.shape) * features
    local, mean = _popularity(items, rows, country)
    return np.column_stack([products, _one_hot(items.category[rows], len(CATEGORIES)), local, mean])
