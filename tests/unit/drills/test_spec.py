"""Process actions of a drill on a URL target: declared processes or managed replicas."""

from __future__ import annotations

from typing import Any

import pytest

from failwell.drills.spec import parse_drill
from failwell.errors import ConfigError


def drill(replicas: list[str]) -> dict[str, Any]:
    step = {
        "name": "kill",
        "duration": "1s",
        "actions": [{"process": "kill", "replicas": replicas}],
    }
    return {"target": "http://127.0.0.1:8080", "steps": [step]}


def test_a_managed_backend_needs_no_declared_process() -> None:
    parsed = parse_drill(drill(["managed:ranker"]))
    assert parsed.steps[0].actions[0].replicas == ("managed:ranker",)


@pytest.mark.parametrize("name", ["managed:", "ranker-east-1"])
def test_an_undeclared_process_is_refused_with_its_name(name: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_drill(drill([name]))
    assert name in str(caught.value) and "managed:BACKEND" in str(caught.value)
