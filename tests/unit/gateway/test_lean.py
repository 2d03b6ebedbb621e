"""The serve path loads what the data plane uses: a config with no drift, quality or rollout
builds its server without importing scipy, scikit-learn or pyarrow (checked in a fresh
interpreter's ``sys.modules``, not by timing)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml

HEAVY = ("scipy", "sklearn", "pyarrow")

CONFIG = {
    "backends": {
        "up": {"protocol": "v2", "model": "m", "replicas": [{"url": "http://127.0.0.1:9"}]},
        "chat": {"protocol": "openai", "model": "c", "replicas": [{"url": "http://127.0.0.1:9"}]},
    },
    "routes": {
        "r": {
            "input": {"x": "float"},
            "tiers": [{"name": "model", "backend": "up"}, {"name": "static", "value": 0}],
        },
        "c": {
            "kind": "chat",
            "tiers": [{"name": "model", "backend": "chat"}, {"name": "static", "value": "s"}],
        },
    },
}

SCRIPT = """
import json, sys
from pathlib import Path
import failwell.cli.main  # the command, as `python -m failwell serve` loads it
from failwell.cli.configfile import load
from failwell.cli.serve import server
server(load(Path(sys.argv[1])), None)
print(json.dumps(sorted({m.split(".")[0] for m in sys.modules})))
"""


def test_serve_without_drift_quality_or_rollout_does_not_import_scipy(tmp_path: Path) -> None:
    config = {**CONFIG, "gateway": {"cache": {"path": str(tmp_path / "cache.sqlite")}}}
    path = tmp_path / "failwell.yaml"
    path.write_text(yaml.safe_dump(config))
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    loaded = set(json.loads(done.stdout.strip().splitlines()[-1]))
    assert "failwell" in loaded
    assert not loaded & set(HEAVY), sorted(loaded & set(HEAVY))
