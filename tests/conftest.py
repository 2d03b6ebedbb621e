"""Suite-wide settings: every test under tests/integration/ starts real processes and is
marked ``integration`` by its directory (``pytest -m "not integration"`` runs the unit tests
alone); Hypothesis has no per-example deadline (no test here is a timing test, and a loaded
machine must not turn a slow example into a failure)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import settings

INTEGRATION = Path(__file__).parent / "integration"
settings.register_profile("failwell", deadline=None)
settings.load_profile("failwell")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if INTEGRATION in item.path.parents:
            item.add_marker(pytest.mark.integration)
