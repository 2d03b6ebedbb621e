"""Deterministic demo data: users, items and clicks drawn from a latent model.

Every user has a taste vector and a country; every item has latent features, a category and a
popularity per country. An impression shows a user an item (popular items are shown more); the
click probability is ``sigmoid(bias + TASTE_WEIGHT * taste·features / sqrt(d) + POP_WEIGHT *
popularity[country])``, so both personal taste and local popularity carry real signal.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

COUNTRIES: tuple[str, ...] = ("US", "DE", "FR", "JP", "BR")
CATEGORIES: tuple[str, ...] = ("books", "music", "games", "electronics", "garden")
DEFAULT_SEED = 0
LATENT_DIM = 8

CLICK_BIAS = -1.0
TASTE_WEIGHT = 1.4
POP_WEIGHT = 0.8

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


def user_id(index: int) -> str:
    """The id of the user at row ``index``: 0 → "u0000"."""
    return f"u{index:04d}"


@dataclass(frozen=True, eq=False)
class Users:
    ids: tuple[str, ...]
    country: IntArray  # (n,) index into COUNTRIES
    taste: FloatArray  # (n, LATENT_DIM)


@dataclass(frozen=True, eq=False)
class Items:
    ids: IntArray  # (n,) 1..n
    category: IntArray  # (n,) index into CATEGORIES
    features: FloatArray  # (n, LATENT_DIM)
    popularity: FloatArray  # (n, len(COUNTRIES)), standardised log-popularity per country


@dataclass(frozen=True, eq=False)
class Interactions:
    user: IntArray  # (m,) user row
    item: IntArray  # (m,) item row
    clicked: IntArray  # (m,) 0 or 1


@dataclass(frozen=True, eq=False)
class DemoData:
    seed: int
    users: Users
    items: Items
    interactions: Interactions


def _sigmoid(x: FloatArray) -> FloatArray:
    return 1.0 / (1.0 + np.exp(-x))


def click_logit(taste: FloatArray, features: FloatArray, popularity: FloatArray) -> FloatArray:
    """The generator's true click logit for aligned rows of taste, features and popularity."""
    affinity: FloatArray = np.sum(taste * features, axis=-1) / np.sqrt(LATENT_DIM)
    logit: FloatArray = CLICK_BIAS + TASTE_WEIGHT * affinity + POP_WEIGHT * popularity
    return logit


def generate(
    seed: int = DEFAULT_SEED,
    *,
    n_users: int = 500,
    n_items: int = 200,
    n_interactions: int = 6000,
) -> DemoData:
    """Draw the demo world. The same arguments always give the same arrays."""
    rng = np.random.default_rng(seed)
    n_countries, n_categories = len(COUNTRIES), len(CATEGORIES)

    users = Users(
        ids=tuple(user_id(i) for i in range(n_users)),
        country=rng.integers(0, n_countries, n_users).astype(np.int64),
        taste=rng.normal(0.0, 1.0, (n_users, LATENT_DIM)),
    )
    category = np.arange(n_items, dtype=np.int64) % n_categories
    rng.shuffle(category)
    base = rng.normal(0.0, 1.0, (n_items, 1))
    local = rng.normal(0.0, 0.7, (n_items, n_countries))
    popularity = base + local
    popularity = (popularity - popularity.mean()) / popularity.std()
    items = Items(
        ids=np.arange(1, n_items + 1, dtype=np.int64),
        category=category,
        features=rng.normal(0.0, 1.0, (n_items, LATENT_DIM)),
        popularity=popularity,
    )

    user_rows = rng.integers(0, n_users, n_interactions).astype(np.int64)
    countries = users.country[user_rows]
    # Exposure: items popular in the user's country are shown more often.
    exposure = np.exp(0.5 * popularity.T)  # (countries, items)
    exposure /= exposure.sum(axis=1, keepdims=True)
    cumulative = np.cumsum(exposure, axis=1)
    draws = rng.random(n_interactions)
    item_rows = np.empty(n_interactions, dtype=np.int64)
    for c in range(n_countries):
        mask = countries == c
        item_rows[mask] = np.searchsorted(cumulative[c], draws[mask], side="right")
    item_rows = np.minimum(item_rows, n_items - 1)
    logit = click_logit(
        users.taste[user_rows], items.features[item_rows], popularity[item_rows, countries]
    )
    clicked = (rng.random(n_interactions) < _sigmoid(logit)).astype(np.int64)
    return DemoData(seed, users, items, Interactions(user_rows, item_rows, clicked))


@dataclass(frozen=True)
class PopularityTable:
    """Item ids ranked by clicks: per (country, category), per category, per country, overall."""

    by_country_category: dict[str, dict[str, list[int]]]
    by_category: dict[str, list[int]]
    by_country: dict[str, list[int]]
    overall: list[int]

    def top(self, country: str, category: str, k: int = 10) -> list[int]:
        """The k most popular items, falling back from the (country, category) cell to the
        category (unknown country), then to the country (unknown category), then overall."""
        cell = self.by_country_category.get(country, {}).get(category)
        if cell is None:
            cell = self.by_category.get(category)
        if cell is None:
            cell = self.by_country.get(country, self.overall)
        return cell[:k]

    def to_json(self) -> dict[str, Any]:
        return {
            "by_country_category": self.by_country_category,
            "by_category": self.by_category,
            "by_country": self.by_country,
            "overall": self.overall,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PopularityTable:
        return cls(
            by_country_category=data["by_country_category"],
            by_category=data["by_category"],
            by_country=data["by_country"],
            overall=data["overall"],
        )


def _ranked(
    clicks: IntArray, shows: IntArray, ids: IntArray, rows: IntArray, top_k: int
) -> list[int]:
    # Most clicks first; ties go to the most shown, then to the lower id.
    order = np.lexsort((ids[rows], -shows[rows], -clicks[rows]))
    return [int(i) for i in ids[rows[order]][:top_k]]


def popularity_table(data: DemoData | None = None, top_k: int = 20) -> PopularityTable:
    """The most-clicked items of ``data`` (default: ``generate()``), ``top_k`` per list."""
    data = generate() if data is None else data
    users, items, log = data.users, data.items, data.interactions
    n_items = len(items.ids)
    country_of = users.country[log.user]
    clicks = np.zeros((len(COUNTRIES), n_items), dtype=np.int64)
    shows = np.zeros((len(COUNTRIES), n_items), dtype=np.int64)
    np.add.at(clicks, (country_of, log.item), log.clicked)
    np.add.at(shows, (country_of, log.item), 1)
    all_clicks, all_shows = clicks.sum(axis=0), shows.sum(axis=0)
    every = np.arange(n_items, dtype=np.int64)
    in_category = [np.flatnonzero(items.category == k) for k in range(len(CATEGORIES))]

    return PopularityTable(
        by_country_category={
            country: {
                category: _ranked(clicks[c], shows[c], items.ids, in_category[k], top_k)
                for k, category in enumerate(CATEGORIES)
            }
            for c, country in enumerate(COUNTRIES)
        },
        by_category={
            category: _ranked(all_clicks, all_shows, items.ids, in_category[k], top_k)
            for k, category in enumerate(CATEGORIES)
        },
        by_country={
            country: _ranked(clicks[c], shows[c], items.ids, every, top_k)
            for c, country in enumerate(COUNTRIES)
        },
        overall=_ranked(all_clicks, all_shows, items.ids, every, top_k),
    )
