# mlops-operator — every target installs what it needs (hack/install-deps.sh), idempotently.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
KUBECONFIG_LOCAL := $(CURDIR)/.localcluster/kubeconfig

.PHONY: help deps binaries cluster-up cluster-down cluster-status image crds lint unit integration test

help:
	@echo "make test          lint + unit + integration tests (starts the local cluster if needed)"
	@echo "make cluster-up    start the local Kubernetes (kubeconfig: .localcluster/kubeconfig)"
	@echo "make cluster-down  stop it and remove its state"
	@echo "make image         build operator/Dockerfile (buildah) and load it into the node as mlops-operator:dev"
	@echo "make crds          regenerate crds/ from the pydantic models"

deps:
	@hack/install-deps.sh

binaries: deps
	@hack/localcluster/build.sh >/dev/null

cluster-up: binaries
	@python3 hack/localcluster/cluster.py up

cluster-down:
	@python3 hack/localcluster/cluster.py down

cluster-status:
	@python3 hack/localcluster/cluster.py status

image: cluster-up
	@python3 hack/localcluster/image.py load >/dev/null

crds: deps
	$(VENV)/bin/mlops-operator crds --output-dir crds

lint: deps
	$(VENV)/bin/ruff check operator hack tests bench
	$(VENV)/bin/ruff format --check operator hack tests bench

unit: deps
	@hack/pytest.sh tests/unit

integration: binaries
	@hack/pytest.sh tests/integration

test: lint unit integration
