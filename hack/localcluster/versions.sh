# Versions of the local cluster's components, and the cache directory they are built into.
# Keep these in step with the go.mod files beside this one.
K8S_VERSION=v1.34.12
K8S_MAJOR=1
K8S_MINOR=34
ETCD_VERSION=v3.6.8
HELM_VERSION=v3.19.0
VERSITYGW_VERSION=v1.8.0  # the S3 server add-on; its binary carries the version in its name
METRICS_SERVER_VERSION=v0.8.0  # the resource metrics API add-on; likewise
PROMETHEUS_ADAPTER_VERSION=v0.12.0  # the custom metrics API add-on; likewise
COREDNS_VERSION=v1.15.0  # the cluster DNS add-on (hack/localcluster/coredns: its plugins only); likewise
ARGOCD_VERSION=v3.6.1  # the GitOps add-on, built only by `make argocd` (build.sh argocd); likewise
ARGOCD_KUSTOMIZE_VERSION=v5.8.2  # the kustomize its repo server runs (hack/localcluster/argocd/kustomize)
ARGOCD_GO_TOOLCHAIN=go1.27.3  # Argo CD (and Argo Rollouts) need a newer Go than the machine's: the go command fetches this one for them alone
ARGO_ROLLOUTS_VERSION=v1.10.2  # bench/rollout_timing.py's rollout peer, built only by `build.sh argo-rollouts`; likewise
LOCALCLUSTER_CACHE="${LOCALCLUSTER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mlops-operator/localcluster}"
LOCALCLUSTER_BIN="$LOCALCLUSTER_CACHE/bin/k8s-$K8S_VERSION-etcd-$ETCD_VERSION-helm-$HELM_VERSION"
