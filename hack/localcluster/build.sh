#!/usr/bin/env bash
# Builds the local cluster's binaries (etcd, Kubernetes components, kubectl, helm, and the add-ons VersityGW
# and CoreDNS) from the Go module proxy into a cache directory keyed by version. A binary is rebuilt only when
# missing. Only what `make demo` needs is a default component: the metrics add-ons (metrics-server,
# prometheus-adapter) are built by `make metrics-addons` and `make test`, Argo CD by `make argocd` (or a
# test that needs it). Neither is Argo Rollouts, the peer of bench/rollout_timing.py (never a
# dependency of the operator): only `LOCALCLUSTER_COMPONENTS=argo-rollouts build.sh` builds it.
#
#   hack/localcluster/build.sh            # build everything missing, print the bin directory
#   BIN_ONLY=1 hack/localcluster/build.sh # only print the bin directory
#   LOCALCLUSTER_COMPONENTS="metrics-server prometheus-adapter" hack/localcluster/build.sh  # the metrics add-ons
#   LOCALCLUSTER_COMPONENTS=argocd hack/localcluster/build.sh  # Argo CD (and its Lua health tool) only
#   LOCALCLUSTER_COMPONENTS=argo-rollouts hack/localcluster/build.sh  # Argo Rollouts' controller only
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
  (cd "$here/$dir" && "${GO:-go}" build -trimpath -ldflags "-s -w $ldflags" -o "$bin/$name.tmp" "$pkg")
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

# The Argo projects need a newer Go than the machine's. The go command refuses a toolchain the checksum
# database has not verified, so that one is fetched (once, into the module cache) with the database on;
# newer_go <module dir> prints its go command, which the builds then run directly (GOTOOLCHAIN=local).
newer_go() {
  echo "$(cd "$here/$1" && GOSUMDB=sum.golang.org GOTOOLCHAIN="$ARGOCD_GO_TOOLCHAIN" go env GOROOT)/bin/go"
}

# module_source <module dir> <module path>: where the module cache holds that required module's source.
module_source() {
  (cd "$here/$1" && "$GO" mod download "$2" && "$GO" list -m -f '{{.Dir}}' "$2")
}

# install_crds <directory name> <file>...: the files into $bin/<directory name>, whole or not at all.
install_crds() {
  local dir="$bin/$1"
  shift
  rm -rf "$dir.tmp" && mkdir "$dir.tmp" && install -m 0644 "$@" "$dir.tmp/"
  rm -rf "$dir" && mv "$dir.tmp" "$dir"
}

# Argo CD: one multi-call binary (its role is the name it runs as: the links below), the Lua health tool and
# the kustomize its repo server runs for kustomize sources (linked as `kustomize`), built with the newer Go
# Argo CD needs (newer_go). The repo server runs git-verify-wrapper.sh (and gpg-wrapper.sh) from PATH on
# every manifest generation, GPG or not: Argo CD's own scripts are installed next to the binary (argocd.py puts $bin on its PATH), and
# its Application and AppProject CRDs beside them (argocd-<version>-crds/), for argocd.py to apply.
build_argocd() {
  local v="$ARGOCD_VERSION" f missing=()
  local k="$ARGOCD_KUSTOMIZE_VERSION"
  for f in "argocd-$v" "argocd-lua-health-$v" "kustomize-$k" git-verify-wrapper.sh gpg-wrapper.sh "argocd-$v-crds"; do
    [[ -x "$bin/$f" ]] || missing+=("$f")
  done
  if ((${#missing[@]})); then
    local -x GOTOOLCHAIN=local GO
    GO="$(newer_go argocd)"
    # As Argo CD's Makefile stamps it (there is no git commit to stamp here).
    local p=github.com/argoproj/argo-cd/v3/common ldflags
    ldflags="-X $p.version=${v#v} -X $p.buildDate=1970-01-01T00:00:00Z -X $p.gitTreeState=clean"
    ldflags+=" -X $p.kubectlVersion=$(cd "$here/argocd" && "$GO" list -m -f '{{.Replace.Version}}' k8s.io/client-go)"
    build argocd "argocd-$v" . "$ldflags"
    build argocd "argocd-lua-health-$v" ./luahealth
    p=sigs.k8s.io/kustomize/api/provenance  # as kustomize's release build stamps it
    build argocd/kustomize "kustomize-$k" sigs.k8s.io/kustomize/kustomize/v5 \
      "-X $p.version=kustomize/$k -X $p.buildDate=1970-01-01T00:00:00Z"
    local src
    src="$(module_source argocd github.com/argoproj/argo-cd/v3)"
    for f in git-verify-wrapper.sh gpg-wrapper.sh; do install -m 0755 "$src/hack/$f" "$bin/$f"; done
    install_crds "argocd-$v-crds" "$src"/manifests/crds/{application,appproject}-crd.yaml
  fi
  for f in argocd-application-controller argocd-repo-server; do ln -sfn "argocd-$v" "$bin/$f"; done
  ln -sfn "kustomize-$k" "$bin/kustomize"
}

# Argo Rollouts' controller (hack/localcluster/argo-rollouts: the controller command, out of cluster), for
# bench/rollout_timing.py, which starts it itself; built with the same newer Go. Its CRDs (Rollout, AnalysisTemplate, AnalysisRun,
# ClusterAnalysisTemplate, Experiment) go beside the binary (argo-rollouts-<version>-crds/), for the bench to apply.
build_argo_rollouts() {
  local v="$ARGO_ROLLOUTS_VERSION" f missing=()
  for f in "argo-rollouts-$v" "argo-rollouts-$v-crds"; do
    [[ -e "$bin/$f" ]] || missing+=("$f")
  done
  ((${#missing[@]})) || return 0
  local -x GOTOOLCHAIN=local GO
  GO="$(newer_go argo-rollouts)"
  # As Argo Rollouts' Makefile stamps it (there is no git commit to stamp here: --version reports v<version>+unknown).
  local p=github.com/argoproj/argo-rollouts/utils/version
  build argo-rollouts "argo-rollouts-$v" . \
    "-X $p.version=${v#v} -X $p.buildDate=1970-01-01T00:00:00Z -X $p.gitTag=$v -X $p.gitTreeState=clean"
  local src
  src="$(module_source argo-rollouts github.com/argoproj/argo-rollouts)"
  install_crds "argo-rollouts-$v-crds" \
    "$src"/manifests/crds/{rollout,analysis-template,analysis-run,cluster-analysis-template,experiment}-crd.yaml
}

components=(${LOCALCLUSTER_COMPONENTS:-etcd kube-apiserver kube-controller-manager kube-scheduler kubectl kubelet kube-proxy pause helm versitygw
  coredns})
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
    # CoreDNS with the cluster DNS's plugins only (hack/localcluster/coredns), stamped and tagged as its Makefile
    # does for a release (`git describe` at the tag is the version; grpcnotrace leaves x/net/trace out).
    coredns) GOFLAGS="$GOFLAGS -tags=grpcnotrace" build coredns "coredns-$COREDNS_VERSION" . \
      "-X github.com/coredns/coredns/coremain.GitCommit=$COREDNS_VERSION" ;;
    argocd) build_argocd ;;
    argo-rollouts) build_argo_rollouts ;;
    *) build k8s "$c" "k8s.io/kubernetes/cmd/$c" "$k8s_ldflags" ;;
  esac
done
log "all binaries present in $bin"
echo "$bin"
