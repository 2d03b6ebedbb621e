#!/usr/bin/env bash
# Regenerates what the docs generate from the code: the config key reference in
# docs/configuration.md and the Prometheus rules and Grafana dashboard in deploy/.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
$PY - <<'PYEOF'
import pathlib, re
from failwell.config.reference import reference
doc = pathlib.Path("docs/configuration.md")
text = re.sub(
    r"<!-- BEGIN GENERATED: python -m failwell.config.reference -->.*?<!-- END GENERATED -->",
    lambda _: reference().rstrip("\n"),
    doc.read_text(),
    flags=re.S,
)
doc.write_text(text)
PYEOF
$PY -m failwell.observe.deploy
