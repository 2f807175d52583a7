#!/usr/bin/env bash
# Installs what the project needs on a Debian machine, idempotently: system packages (apt),
# the Go toolchain check, and the Python virtualenv with the package and its dev tools.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# Debian packages: openssl/iproute2 for the control plane; containerd, runc, CNI plugins, iptables and
# conntrack for the node; buildah and debootstrap to build the image without Docker or a registry;
# prometheus, which the tests run to judge canaries on real metrics; redis-server, Argo CD's cache (`make argocd`).
APT_PACKAGES=(openssl iproute2 iptables conntrack containerd runc containernetworking-plugins buildah debootstrap prometheus
  redis-server ${EXTRA_APT_PACKAGES:-})
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  echo "[deps] apt-get install ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! command -v go >/dev/null 2>&1; then
  echo "[deps] Go (>= 1.24) is required to build the local cluster from Go modules; it is not on PATH" >&2
  exit 1
fi

# The locked versions (requirements-dev.lock, `make lock`), each checked against its hash; then the
# package itself, editable, without resolving anything again.
stamp=.venv/.installed-$(cat pyproject.toml requirements-dev.lock | sha256sum | cut -c1-16)
if [[ ! -f $stamp ]]; then
  echo "[deps] creating .venv and installing the locked dependencies, the package and its dev tools" >&2
  [[ -x .venv/bin/python ]] || python3 -m venv .venv
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q --require-hashes --no-deps -r requirements-dev.lock
  .venv/bin/pip install -q --no-deps -e .
  rm -f .venv/.installed-*
  touch "$stamp"
fi
