# mlops-operator — every target installs what it needs (hack/install-deps.sh), idempotently.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
KUBECONFIG_LOCAL := $(CURDIR)/.localcluster/kubeconfig

.PHONY: help demo deps lock binaries binaries-and-image cluster-up cluster-down cluster-status metrics-addons metrics-addons-binaries argocd argocd-binaries image deploy crds lint unit integration test

help:
	@echo "make demo          the whole lifecycle on the local cluster: install, train, serve, canary, rollback"
	@echo "make test          lint + unit + integration tests (starts the local cluster if needed)"
	@echo "make cluster-up    start the local Kubernetes (kubeconfig: .localcluster/kubeconfig); NODES=2: two nodes"
	@echo "make cluster-down  stop it and remove its state"
	@echo "make metrics-addons build metrics-server and prometheus-adapter (once) and run them: kubectl top, autoscaling"
	@echo "make argocd        build Argo CD (once) and run it on the local cluster, with docs/argocd/argocd-cm.yaml"
	@echo "make deploy        build the image and helm-install the chart into the local cluster"
	@echo "make image         build operator/Dockerfile (buildah) and load it into the node as mlops-operator:dev"
	@echo "                   (VARIANT=sklearn1.3: the image on requirements-sklearn1.3.lock, mlops-operator:dev-sklearn1.3)"
	@echo "make crds          regenerate crds/, the chart's crds/ and docs/api.md from the pydantic models"
	@echo "make lock          resolve the Python dependencies again into requirements.lock and requirements-dev.lock"

deps:
	@hack/install-deps.sh

# Resolve pyproject.toml's ranges into requirements.lock and requirements-dev.lock (hashes included).
lock: deps
	@hack/lock.sh

binaries: deps
	@hack/localcluster/build.sh >/dev/null

# The image's archive is built while the Go binaries compile (its downloads wait on the network while the
# compiler keeps the cores busy); `image`, `deploy` and the tests then find it built and only load it.
binaries-and-image: deps
	@log=$$(mktemp); python3 hack/localcluster/image.py build $(if $(VARIANT),--variant $(VARIANT)) >$$log 2>&1 & image=$$!; \
	  hack/localcluster/build.sh >/dev/null; built=$$?; wait $$image; imaged=$$?; \
	  cat $$log >&2; rm -f $$log; (( built == 0 && imaged == 0 ))

# NODES=2: a second node (see README, The local cluster); unset: as many as the cluster has, at least one.
cluster-up: binaries
	@LOCALCLUSTER_NODES=$(NODES) python3 hack/localcluster/cluster.py up

cluster-down:
	@python3 hack/localcluster/cluster.py down

cluster-status:
	@python3 hack/localcluster/cluster.py status

# The metrics APIs (kubectl top, the autoscaling examples) are built only for `make metrics-addons` and the tests:
# `make demo` does not need them; `cluster-up` starts them once they are built.
metrics-addons-binaries: deps
	@LOCALCLUSTER_COMPONENTS="metrics-server prometheus-adapter" hack/localcluster/build.sh >/dev/null

metrics-addons: metrics-addons-binaries cluster-up

# Argo CD is built only for `make argocd` and the tests that run it (its Lua engine runs the health checks' tests).
argocd-binaries: deps
	@LOCALCLUSTER_COMPONENTS=argocd hack/localcluster/build.sh >/dev/null

argocd: cluster-up argocd-binaries
	@python3 hack/localcluster/argocd.py up

image: binaries-and-image cluster-up
	@python3 hack/localcluster/image.py load $(if $(VARIANT),--variant $(VARIANT)) >/dev/null

deploy: binaries-and-image cluster-up
	@hack/deploy.sh

demo: deploy
	@$(PY) hack/demo.py

crds: deps
	$(VENV)/bin/mlops-operator crds --output-dir crds --output-dir charts/mlops-operator/crds
	$(VENV)/bin/mlops-operator api-docs --output docs/api.md

lint: deps
	$(VENV)/bin/ruff check operator hack tests bench
	$(VENV)/bin/ruff format --check operator hack tests bench
	@if grep -rn "fmt: skip" operator hack tests bench; then echo "lint: the formatter decides every layout; remove the '# fmt: skip' above" >&2; exit 1; fi

unit: deps argocd-binaries
	@hack/pytest.sh tests/unit -n 2

integration: binaries-and-image metrics-addons-binaries argocd-binaries
	@hack/integration.sh --durations=25

test: lint unit integration
