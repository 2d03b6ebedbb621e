# The two commands: `make demo` and `make test`. Each sets up what it needs.
PY := .venv/bin/python

.PHONY: demo test lint bench setup clean

setup:
	scripts/setup.sh test

demo:
	scripts/setup.sh demo
	$(PY) -m failwell demo $(DEMO_ARGS)

test:
	scripts/setup.sh test
	$(MAKE) --no-print-directory lint
	$(PY) -m pytest -q -p no:cacheprovider --durations=20

lint:
	.venv/bin/ruff check src tests bench
	.venv/bin/ruff format --check src tests bench
	.venv/bin/mypy
	.venv/bin/lint-imports

bench:
	scripts/setup.sh bench
	$(PY) bench/run.py $(BENCH_ARGS)
	$(PY) bench/tensor_bench.py $(TENSOR_BENCH_ARGS)
	$(PY) bench/log_bench.py $(LOG_BENCH_ARGS)
	$(PY) bench/auth_bench.py $(AUTH_BENCH_ARGS)
	$(PY) bench/drift_bench.py $(DRIFT_BENCH_ARGS)
	$(PY) bench/stream_bench.py $(STREAM_BENCH_ARGS)
	$(PY) bench/workers_bench.py $(WORKERS_BENCH_ARGS)
	$(PY) bench/rss_bench.py $(RSS_BENCH_ARGS)
	$(PY) bench/floor_bench.py $(FLOOR_BENCH_ARGS)
	$(PY) bench/instr_bench.py $(INSTR_BENCH_ARGS)

clean:
	rm -rf .venv .venv-mlserver .venv-kserve .failwell-demo
