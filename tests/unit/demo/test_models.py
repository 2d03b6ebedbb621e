"""The demo's data generator, training, in-process rankers and rule tiers."""

from __future__ import annotations

import json
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from failwell.demo import rules
from failwell.demo.data import CATEGORIES, COUNTRIES, generate, popularity_table
from failwell.demo.models import LightRanker, Ranker
from failwell.demo.train import TrainReport, read_report, train

WORLD = generate()
CATEGORY_OF = {
    int(i): CATEGORIES[int(c)] for i, c in zip(WORLD.items.ids, WORLD.items.category, strict=True)
}
RANKERS = [Ranker, LightRanker]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> TrainReport:
    return train(tmp_path_factory.mktemp("models"), seed=0)


def test_generator_is_deterministic_per_seed() -> None:
    again, other = generate(0), generate(1)
    for a, b in [
        (WORLD.users.taste, again.users.taste),
        (WORLD.items.features, again.items.features),
        (WORLD.interactions.clicked, again.interactions.clicked),
    ]:
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(WORLD.users.taste, other.users.taste)


def test_generator_shapes_and_domains() -> None:
    users, items, log = WORLD.users, WORLD.items, WORLD.interactions
    assert len(users.ids) == 500 and users.ids[42] == "u0042"
    assert set(users.country.tolist()) == set(range(len(COUNTRIES)))
    assert items.ids.tolist() == list(range(1, 201))
    assert np.bincount(items.category).tolist() == [40] * len(CATEGORIES)
    assert items.popularity.shape == (200, len(COUNTRIES))
    assert 2000 <= len(log.clicked) <= 10000
    assert 0.1 < log.clicked.mean() < 0.9


def test_popularity_table_ranks_by_clicks_within_the_cell() -> None:
    table = popularity_table(WORLD)
    country_of = WORLD.users.country[WORLD.interactions.user]
    for c, country in enumerate(COUNTRIES):
        for category in CATEGORIES:
            cell = table.by_country_category[country][category]
            assert len(cell) == 20 and len(set(cell)) == 20
            assert {CATEGORY_OF[i] for i in cell} == {category}
            mask = (country_of == c) & np.isin(WORLD.interactions.item, np.array(cell) - 1)
            clicks = np.bincount(
                WORLD.interactions.item[mask], WORLD.interactions.clicked[mask], minlength=200
            )
            counts = [clicks[i - 1] for i in cell]
            assert counts == sorted(counts, reverse=True)
    assert len(table.by_country["US"]) == 20 and len(table.overall) == 20


def test_train_writes_a_complete_model_dir(trained: TrainReport) -> None:
    for path in (
        trained.ranker_path,
        trained.light_path,
        trained.catalog_path,
        trained.popularity_path,
        trained.meta_path,
    ):
        assert path.is_file()
    assert re.fullmatch(r"ranker-[0-9a-f]{8}", trained.ranker_version)
    assert re.fullmatch(r"light-[0-9a-f]{8}", trained.light_version)
    meta = json.loads(trained.meta_path.read_text())
    assert meta["seed"] == 0
    assert meta["models"]["ranker"]["version"] == trained.ranker_version
    assert read_report(trained.model_dir) == trained


def test_train_is_deterministic(trained: TrainReport, tmp_path: Path) -> None:
    again = train(tmp_path, seed=0)
    assert (again.ranker_version, again.light_version) == (
        trained.ranker_version,
        trained.light_version,
    )
    assert (again.ranker_auc, again.light_auc) == (trained.ranker_auc, trained.light_auc)
    assert again.catalog_path.read_bytes() == trained.catalog_path.read_bytes()


def test_ranker_clearly_beats_the_light_model(trained: TrainReport) -> None:
    assert trained.light_auc > 0.6
    assert trained.ranker_auc > 0.75
    assert trained.ranker_auc > trained.light_auc + 0.05


def test_read_report_is_none_for_an_incomplete_dir(trained: TrainReport, tmp_path: Path) -> None:
    assert read_report(tmp_path) is None
    (tmp_path / "meta.json").write_text(trained.meta_path.read_text())
    assert read_report(tmp_path) is None  # the model files are missing


def test_read_report_is_none_for_a_damaged_model(trained: TrainReport, tmp_path: Path) -> None:
    for path in trained.model_dir.iterdir():
        (tmp_path / path.name).write_bytes(path.read_bytes())
    assert read_report(tmp_path) is not None
    (tmp_path / "ranker.joblib").write_bytes(b"garbage")
    assert read_report(tmp_path) is None


def test_popularity_json_is_the_rules_table(trained: TrainReport) -> None:
    assert json.loads(trained.popularity_path.read_text()) == popularity_table().to_json()


@pytest.mark.parametrize("cls", RANKERS)
def test_rankers_answer_ten_items_of_the_category(cls: type[Ranker], trained: TrainReport) -> None:
    model = cls(str(trained.model_dir))
    for country in COUNTRIES:
        for category in CATEGORIES:
            items = model.predict({"user_id": "u0042", "country": country, "category": category})
            assert list(items) == ["items"]
            assert len(items["items"]) == 10 and len(set(items["items"])) == 10
            assert all(type(i) is int for i in items["items"])
            assert {CATEGORY_OF[i] for i in items["items"]} == {category}


def test_model_versions(trained: TrainReport) -> None:
    assert Ranker(trained.model_dir).version == trained.ranker_version
    assert LightRanker(str(trained.model_dir)).version == trained.light_version


def test_the_primary_ranker_personalises(trained: TrainReport) -> None:
    model = Ranker(trained.model_dir)
    lists = {
        tuple(
            model.predict({"user_id": f"u{u:04d}", "country": "US", "category": "games"})["items"]
        )
        for u in range(10)
    }
    assert len(lists) >= 5


@pytest.mark.parametrize("cls", RANKERS)
@pytest.mark.parametrize(
    "inputs",
    [
        {"user_id": "nobody", "country": "DE", "category": "books"},
        {"user_id": "u0001", "country": "XX", "category": "books"},
        {"user_id": "u0001", "country": "DE", "category": "toys"},
        {"user_id": "", "country": "", "category": ""},
        {"user_id": "ü🙂" * 50, "country": "de", "category": "BOOKS", "extra": 1},
    ],
)
def test_rankers_never_raise_on_well_typed_input(
    cls: type[Ranker], inputs: dict[str, object], trained: TrainReport
) -> None:
    items = cls(trained.model_dir).predict(inputs)["items"]
    assert len(items) == 10 and len(set(items)) == 10
    assert all(1 <= i <= 200 for i in items)


def test_unknown_user_is_ranked_from_country_and_category(trained: TrainReport) -> None:
    model = LightRanker(trained.model_dir)
    a = model.predict({"user_id": "nobody", "country": "JP", "category": "music"})
    b = model.predict({"user_id": "someone-else", "country": "JP", "category": "music"})
    assert a == b
    assert {CATEGORY_OF[i] for i in a["items"]} == {"music"}


@pytest.mark.parametrize("cls", RANKERS)
@pytest.mark.parametrize(
    "inputs",
    [
        {},
        {"user_id": "u0001", "country": "DE"},
        {"user_id": 7, "country": "DE", "category": "books"},
    ],
)
def test_rankers_reject_ill_typed_input(
    cls: type[Ranker], inputs: dict[str, object], trained: TrainReport
) -> None:
    with pytest.raises(ValueError, match="input '"):
        cls(trained.model_dir).predict(inputs)


def test_rankers_are_safe_to_call_from_threads(trained: TrainReport) -> None:
    model = Ranker(trained.model_dir)
    requests = [
        {"user_id": f"u{u:04d}", "country": COUNTRIES[u % 5], "category": CATEGORIES[u % 5]}
        for u in range(40)
    ]
    expected = [model.predict(r) for r in requests]
    with ThreadPoolExecutor(4) as pool:
        assert list(pool.map(model.predict, requests * 3)) == expected * 3


def test_popular_rule_answers_ten_items_of_the_category() -> None:
    for country in COUNTRIES:
        for category in CATEGORIES:
            items = rules.popular({"user_id": "u0001", "country": country, "category": category})
            assert len(items["items"]) == 10 and len(set(items["items"])) == 10
            assert {CATEGORY_OF[i] for i in items["items"]} == {category}


def test_popular_rule_falls_back() -> None:
    table = popularity_table()
    assert (
        rules.popular({"country": "XX", "category": "garden"})["items"]
        == (table.by_category["garden"][:10])
    )
    assert (
        rules.popular({"country": "FR", "category": "toys"})["items"] == table.by_country["FR"][:10]
    )
    assert rules.popular({"country": "XX", "category": "toys"})["items"] == table.overall[:10]
    assert rules.popular({})["items"] == table.overall[:10]


def test_canned_reply_says_it_is_degraded_and_echoes_the_question() -> None:
    reply = rules.canned_reply(
        {
            "messages": [
                {"role": "system", "content": "be nice"},
                {"role": "user", "content": "Which   garden tools are best?"},
            ]
        }
    )["content"]
    assert "degraded" in reply and '"Which garden tools are best?"' in reply
    long = rules.canned_reply({"messages": [{"role": "user", "content": "x" * 500}]})["content"]
    assert len(long) < 400


@pytest.mark.parametrize(
    "inputs",
    [
        {},
        {"messages": "nope"},
        {"messages": [1, None]},
        {"messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]},
    ],
)
def test_canned_reply_never_raises(inputs: dict[str, object]) -> None:
    assert "degraded" in rules.canned_reply(inputs)["content"]
