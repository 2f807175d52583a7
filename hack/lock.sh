#!/usr/bin/env bash
# `make lock`: resolve pyproject.toml's ranges once into the locks every install uses, with hashes:
# requirements.lock (what the image installs: the operator, trainer and model server) and
# requirements-dev.lock (that and the dev tools: what `make` installs into .venv and CI uses), and
# requirements-<variant>.lock for each image variant in hack/lock-variants/.
# For Python 3.11 on x86_64 Linux, the image's and the machine's. Run it to take newer versions, then
# `make test`; commit the files together.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
uv=.venv/bin/uv
[[ -x $uv ]] || { hack/install-deps.sh && [[ -x $uv ]]; } || { echo "[lock] no uv in .venv" >&2; exit 1; }
common=(--python-version 3.11 --python-platform x86_64-unknown-linux-gnu --generate-hashes --quiet
  --custom-compile-command "make lock" "$@")
"$uv" pip compile pyproject.toml "${common[@]}" -o requirements.lock
"$uv" pip compile pyproject.toml --extra dev "${common[@]}" -o requirements-dev.lock
# Image variants (hack/lock-variants/NAME.txt): requirements.lock with the versions the file overrides.
for overrides in hack/lock-variants/*.txt; do
  variant="$(basename "$overrides" .txt)"
  constraints="$(mktemp)"
  names="$(grep -oE '^[A-Za-z0-9_.-]+==' "$overrides" | tr -d '=' | paste -sd'|')"
  grep -E '^[A-Za-z0-9_.-]+==' requirements.lock | sed 's/ .*//' | grep -vE "^($names)==" > "$constraints"
  "$uv" pip compile pyproject.toml "${common[@]}" --no-annotate --override "$overrides" -c "$constraints" \
    -o "requirements-$variant.lock"
  rm -f "$constraints"
done
echo "[lock] requirements.lock $(sha256sum requirements.lock | cut -c1-16), requirements-dev.lock $(sha256sum requirements-dev.lock | cut -c1-16)" >&2
