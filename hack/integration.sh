#!/usr/bin/env bash
# `make integration`: the integration modules in parallel on the local cluster (pytest-xdist, one module
# per worker, so each module's story stays in order), then the `serial` modules alone: those redeploy,
# kill or count the requests of the shared operator, stop a node or the store, or count the requests lost
# under load, which nothing else may disturb. Both runs always happen; the exit code is the first failure's.
#
#   hack/integration.sh [pytest arguments, e.g. --durations=25]      INTEGRATION_WORKERS=3 by default
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# The cluster is taken down at the end only if it was not running before (and KEEP_CLUSTER is not 1):
# the serial run does it, told so, since the parallel run must leave it for the serial one.
if python3 hack/localcluster/cluster.py status >/dev/null 2>&1; then was_running=1; else was_running=0; fi

KEEP_CLUSTER=1 MLOPS_CLUSTER_WAS_RUNNING=$was_running \
  hack/pytest.sh tests/integration -m "not serial" -n "${INTEGRATION_WORKERS:-3}" --dist loadfile "$@"
parallel=$?
# The image variants a serial module runs (test_reproducibility) are built and imported meanwhile, while
# the first serial modules run; its fixture then finds them there (image.py holds a lock per image).
( for lock in hack/lock-variants/*.txt; do
    python3 hack/localcluster/image.py load --variant "$(basename "$lock" .txt)" >/dev/null 2>&1
  done ) &
variants=$!
MLOPS_CLUSTER_WAS_RUNNING=$was_running hack/pytest.sh tests/integration -m serial "$@"
serial=$?
wait "$variants"
echo "[integration] parallel modules: exit $parallel; serial modules: exit $serial" >&2
(( parallel != 0 )) && exit $parallel
exit $serial
