#!/usr/bin/env bash
# Sets up everything failwell's demo, tests and benchmarks need on a fresh
# machine: Debian packages (when missing) and the project's virtualenvs.
# Usage: scripts/setup.sh [test|bench|demo]
set -euo pipefail
cd "$(dirname "$0")/.."
what="${1:-test}"
PY="${PYTHON:-python3}"

apt_updated=0
ensure_apt() {  # ensure_apt COMMAND PACKAGE
  if ! command -v "$1" >/dev/null 2>&1 && ! [ -x "/usr/sbin/$1" ] && ! [ -x "/usr/bin/$1" ]; then
    if [ "$apt_updated" = 0 ]; then
      DEBIAN_FRONTEND=noninteractive apt-get update -qq
      apt_updated=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null
  fi
}

stamp=.venv/.installed
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/pip install -q --upgrade pip >/dev/null
  .venv/bin/pip install -q -e '.[dev]'
  touch "$stamp"
fi

# MLServer pins clash with ours, so it lives in its own virtualenv.
mstamp=.venv-mlserver/.installed
if [ "$what" = test ] && { [ ! -f "$mstamp" ] || [ scripts/mlserver-requirements.txt -nt "$mstamp" ]; }; then
  [ -x .venv-mlserver/bin/python ] || "$PY" -m venv .venv-mlserver
  .venv-mlserver/bin/pip install -q -r scripts/mlserver-requirements.txt
  touch "$mstamp"
fi

# KServe's Python SDK (its V2 REST client) drags in the Kubernetes client, FastAPI, gRPC and
# pandas: it lives in its own virtualenv too, used only by the tests that drive it.
kstamp=.venv-kserve/.installed
if [ "$what" = test ] && { [ ! -f "$kstamp" ] || [ scripts/kserve-requirements.txt -nt "$kstamp" ]; }; then
  [ -x .venv-kserve/bin/python ] || "$PY" -m venv .venv-kserve
  .venv-kserve/bin/pip install -q -r scripts/kserve-requirements.txt
  touch "$kstamp"
fi

if [ "$what" = test ]; then
  ensure_apt redis-server redis-server     # shared stores and rate limits, tested for real
  ensure_apt promtool prometheus           # alerting rules checked, a real scrape tested
  ensure_apt chromium chromium             # dashboard and reports checked in a real browser
  ensure_apt openssl openssl               # TLS tests make their own certificates
fi

if [ "$what" = bench ]; then
  ensure_apt nginx nginx
  ensure_apt wrk wrk
fi
