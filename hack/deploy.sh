#!/usr/bin/env bash
# `make deploy`: build the image, load it into the local cluster's node and install (or upgrade) the
# chart, as a user would with helm. Idempotent; a changed image rolls the operator pods.
#
#   hack/deploy.sh [extra helm arguments, e.g. --set ha.enabled=true --set replicas=2]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

NAMESPACE="${MLOPS_NAMESPACE:-mlops-system}"
RELEASE="${MLOPS_RELEASE:-mlops-operator}"
bin="$(BIN_ONLY=1 hack/localcluster/build.sh)"
export KUBECONFIG="${KUBECONFIG_LOCAL:-$PWD/.localcluster/kubeconfig}"
kubectl=("$bin/kubectl" --cache-dir="$PWD/.localcluster/kubectl-cache")

archive="$(python3 hack/localcluster/image.py load)"
# The artifact store: the cluster's S3 server (VersityGW), as a real cluster keeps models in object
# storage. Each namespace gives its pods the credentials in the Secret `mlops-s3` (see demo.py).
# shellcheck disable=SC1091
source "${LOCALCLUSTER_DIR:-$PWD/.localcluster}/s3.env"

# helm installs a chart's crds/ only on first install and never upgrades them: apply them first.
"${kubectl[@]}" apply --server-side --force-conflicts -f charts/mlops-operator/crds >/dev/null
"${kubectl[@]}" wait --for=condition=Established crd --all --timeout=60s >/dev/null
"${kubectl[@]}" create namespace "$NAMESPACE" --dry-run=client -o yaml | "${kubectl[@]}" apply -f - >/dev/null
"${kubectl[@]}" label namespace "$NAMESPACE" --overwrite pod-security.kubernetes.io/enforce=restricted >/dev/null

"$bin/helm" upgrade --install "$RELEASE" charts/mlops-operator --namespace "$NAMESPACE" \
  --values hack/localcluster/values-local.yaml \
  --set artifacts.store="s3://$MLOPS_S3_BUCKET/artifacts" --set artifacts.s3.endpoint="$AWS_ENDPOINT_URL" \
  --set artifacts.s3.region="$AWS_REGION" --set artifacts.s3.addressing=path \
  --set artifacts.s3.credentialsSecret=mlops-s3 \
  --set-string "podAnnotations.mlops\.dev/image-build=$(basename "$archive" .tar)" \
  --wait --timeout 3m "$@" >/dev/null
"${kubectl[@]}" rollout status deployment/"$RELEASE" -n "$NAMESPACE" --timeout=120s >/dev/null
echo "[deploy] $RELEASE is running in namespace $NAMESPACE (image mlops-operator:dev, Prometheus http://prometheus.monitoring:9090, artifacts s3://$MLOPS_S3_BUCKET/artifacts at $AWS_ENDPOINT_URL)" >&2
