#!/usr/bin/env bash
# Builds the local cluster's binaries (etcd, Kubernetes components, kubectl, helm, and the add-ons VersityGW,
# metrics-server and prometheus-adapter) from the Go module proxy into a cache directory keyed by version.
# A binary is rebuilt only when missing.
#
#   hack/localcluster/build.sh            # build everything missing, print the bin directory
#   BIN_ONLY=1 hack/localcluster/build.sh # only print the bin directory
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=versions.sh
source "$here/versions.sh"

bin="$LOCALCLUSTER_BIN"
if [[ "${BIN_ONLY:-}" == 1 ]]; then echo "$bin"; exit 0; fi
mkdir -p "$bin"

# The go.sum files pin every module; the checksum database does not know every patch release.
export GOSUMDB=off GOFLAGS=-mod=mod CGO_ENABLED=0
start=$SECONDS

log() { printf '[localcluster build %4ds] %s\n' "$((SECONDS - start))" "$*" >&2; }

build() { # build <module dir> <output name> <package> [ldflags]
  local dir="$1" name="$2" pkg="$3" ldflags="${4:-}"
  if [[ -x "$bin/$name" ]]; then return 0; fi
  log "building $name ($pkg) ..."
  local t0=$SECONDS
  (cd "$here/$dir" && go build -trimpath -ldflags "-s -w $ldflags" -o "$bin/$name.tmp" "$pkg")
  mv "$bin/$name.tmp" "$bin/$name"
  log "built $name in $((SECONDS - t0))s"
}

k8s_ldflags=""
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  k8s_ldflags+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=$K8S_MAJOR -X $pkg.gitMinor=$K8S_MINOR"
  k8s_ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
done

# As helm's own Makefile does: the version, and the Kubernetes version `helm template` and `helm lint` assume.
helm_ldflags="-X helm.sh/helm/v3/internal/version.version=$HELM_VERSION -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
for pkg in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
  helm_ldflags+=" -X $pkg.k8sVersionMajor=$K8S_MAJOR -X $pkg.k8sVersionMinor=$K8S_MINOR"
done

components=(${LOCALCLUSTER_COMPONENTS:-etcd kube-apiserver kube-controller-manager kube-scheduler kubectl kubelet kube-proxy pause helm versitygw
  metrics-server prometheus-adapter})
for c in "${components[@]}"; do
  case "$c" in
    etcd) build etcd etcd go.etcd.io/etcd/server/v3 ;;
    pause) build pause pause . ;;
    helm) build helm helm helm.sh/helm/v3/cmd/helm "$helm_ldflags" ;;
    versitygw) build versitygw "versitygw-$VERSITYGW_VERSION" github.com/versity/versitygw/cmd/versitygw \
      "-X main.Version=$VERSITYGW_VERSION" ;;
    # As metrics-server's Makefile does (there is no git commit to stamp here).
    metrics-server) build metrics-server "metrics-server-$METRICS_SERVER_VERSION" sigs.k8s.io/metrics-server/cmd/metrics-server \
      "-X k8s.io/client-go/pkg/version.gitVersion=$METRICS_SERVER_VERSION -X k8s.io/client-go/pkg/version.buildDate=1970-01-01T00:00:00Z" ;;
    # prometheus-adapter's Makefile stamps no version.
    prometheus-adapter) build prometheus-adapter "prometheus-adapter-$PROMETHEUS_ADAPTER_VERSION" \
      sigs.k8s.io/prometheus-adapter/cmd/adapter ;;
    *) build k8s "$c" "k8s.io/kubernetes/cmd/$c" "$k8s_ldflags" ;;
  esac
done
log "all binaries present in $bin"
echo "$bin"
