#!/usr/bin/env bash
# Sets up everything failwell's demo, tests and benchmarks need on a fresh
# machine: Debian packages (when missing) and the project's virtualenvs.
# The three slow parts (apt, the project's virtualenv, MLServer's virtualenv)
# are independent and run side by side; any one failing fails the script.
# Usage: scripts/setup.sh [test|bench|demo]
set -euo pipefail
cd "$(dirname "$0")/.."
what="${1:-test}"
PY="${PYTHON:-python3}"

# COMMAND:PACKAGE pairs this use needs; a package is installed only when its command is missing.
needs=()
if [ "$what" = test ]; then
  needs+=(
    redis-server:redis-server   # shared stores and rate limits, tested for real
    promtool:prometheus         # alerting rules checked, a real scrape tested
    chromium:chromium           # dashboard and reports checked in a real browser
    openssl:openssl             # TLS tests make their own certificates
    nginx:nginx                 # the fleet test puts a real balancer in front of gateways
  )
fi
if [ "$what" = demo ]; then
  needs+=(redis-server:redis-server)  # `make demo DEMO_ARGS=--fleet` shares state through it
fi
if [ "$what" = bench ]; then
  needs+=(nginx:nginx wrk:wrk valgrind:valgrind)  # valgrind: instr_bench counts instructions
fi

debian_packages() {
  local missing=() pair cmd
  for pair in "${needs[@]}"; do
    cmd="${pair%%:*}"
    if ! command -v "$cmd" >/dev/null 2>&1 && ! [ -x "/usr/sbin/$cmd" ] && ! [ -x "/usr/bin/$cmd" ]; then
      missing+=("${pair#*:}")
    fi
  done
  if [ "${#missing[@]}" -gt 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}

project_venv() {
  local stamp=.venv/.installed
  [ -x .venv/bin/python ] || "$PY" -m venv .venv
  if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    .venv/bin/pip install -q --upgrade pip >/dev/null
    .venv/bin/pip install -q -e '.[dev]'
    touch "$stamp"
  fi
}

# A tool whose pins clash with ours gets its own virtualenv: MLServer (the demo's and the
# tests' V2 model server) and KServe's Python SDK (its V2 REST client drags in the Kubernetes
# client, FastAPI, gRPC and pandas; only the tests that drive it use it).
side_venv() {  # side_venv DIR REQUIREMENTS
  local stamp="$1/.installed"
  if [ ! -f "$stamp" ] || [ "$2" -nt "$stamp" ]; then
    [ -x "$1/bin/python" ] || "$PY" -m venv "$1"
    "$1/bin/pip" install -q -r "$2"
    touch "$stamp"
  fi
}

pids=()
debian_packages & pids+=($!)
project_venv & pids+=($!)
if [ "$what" = test ] || [ "$what" = demo ]; then
  side_venv .venv-mlserver scripts/mlserver-requirements.txt & pids+=($!)
fi
if [ "$what" = test ]; then
  side_venv .venv-kserve scripts/kserve-requirements.txt & pids+=($!)
fi
failed=0
for pid in "${pids[@]}"; do
  wait "$pid" || failed=1
done
exit "$failed"
