"""Config reload on a real gateway under load: a bad config is rejected and the good one keeps
serving; a good one is swapped in; `failwell config history` and `config rollback`."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.error
from pathlib import Path
from typing import Any

import pytest
import yaml

from failwell.reload.history import config_version
from tests.integration.conftest import Stack, http_json, wait_until
from tests.integration.test_rollout import steady_load


def routes(static: int, extra: bool) -> dict[str, Any]:
    out: dict[str, Any] = {
        "r": {
            "input": {"x": "float"},
            "tiers": [{"name": "model", "backend": "echo"}, {"name": "static", "value": static}],
        }
    }
    if extra:
        out["r2"] = {"input": {"x": "float"}, "tiers": [{"name": "static", "value": 2}]}
    return out


def test_bad_config_never_replaces_a_good_one_and_rollback_puts_the_old_one_back(
    stack: Stack, tmp_path: Path
) -> None:
    backends = {"echo": {"protocol": "python", "target": "failwell.testing.models:Echo"}}
    good = stack.config(backends, routes(1, extra=False))
    gw = stack.gateway(good)
    path = gw.config_path
    v1 = config_version(path.read_text())

    def state() -> dict[str, Any]:
        found: dict[str, Any] = http_json(f"{gw.url}/admin/config")
        return found

    assert state()["version"] == v1
    with steady_load(gw.predict_url("r")) as load:
        assert wait_until(lambda: len(load) > 20, timeout=10)
        bad = {
            **good,
            "routes": {"r": {"input": {"x": "float"}, "tiers": [{"name": "t", "nope": 1}]}},
        }
        path.write_text(yaml.safe_dump(bad))
        gw.proc.kill(signal.SIGHUP)
        assert wait_until(lambda: bool(state()["last_error"]), timeout=10)
        assert state()["version"] == v1
        assert "routes.r.tiers[0]" in state()["last_error"][0]

        path.write_text(yaml.safe_dump({**good, "routes": routes(1, extra=True)}))
        v2 = config_version(path.read_text())
        assert wait_until(lambda: state()["version"] == v2, timeout=10)
        assert state()["last_error"] == []
        assert http_json(gw.predict_url("r2"), {"inputs": {"x": 1.0}})["outputs"] == 2

        history = subprocess.run(
            [
                sys.executable,
                "-m",
                "failwell",
                "config",
                "history",
                "--json",
                "--config",
                str(path),
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        events = [(e["event"], e["version"]) for e in json.loads(history.stdout)]
        assert events[0] == ("applied", v1) and events[-1] == ("applied", v2)
        assert any(e == "rejected" for e, _ in events)

        rolled = subprocess.run(
            [sys.executable, "-m", "failwell", "config", "rollback", "--config", str(path)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert rolled.returncode == 0, rolled.stderr
        assert wait_until(lambda: state()["version"] == v1, timeout=10)
        with pytest.raises(urllib.error.HTTPError) as gone:
            http_json(gw.predict_url("r2"), {"inputs": {"x": 1.0}})
        assert gone.value.code == 404
        time.sleep(0.2)
    assert len(load) > 100
    assert load.failed == [], load.failed[:5]
