#!/usr/bin/env python3
"""Argo CD on the local cluster (`make argocd`): `up`, `status`, `down`.

Like the other add-ons it runs on the host as processes, not as pods: Debian's Redis (Argo CD's cache) on a
loopback port of its own, and Argo CD's repo server and application controller, one binary of our own build
(hack/localcluster/argocd: `LOCALCLUSTER_COMPONENTS=argocd build.sh`) started under the names that pick the
role. The controller uses the admin kubeconfig, and ARGOCD_FAKE_IN_CLUSTER maps the in-cluster destination
`https://kubernetes.default.svc` to it. `up` (idempotent) creates the namespace `argocd`, the Application and
AppProject CRDs (server-side apply: the Application CRD is too large for client-side apply's annotation), the
`default` AppProject (any source, any destination, any cluster-scoped kind) and the argocd-cm ConfigMap with
our health checks (docs/argocd/argocd-cm.yaml), then starts what is not running, on the running cluster.
Any Application in the namespace `argocd` syncs: repositories need no credentials when they are on this
machine (`file:///...`). Plain manifests, Helm charts (the cluster's helm) and kustomizations (our kustomize
build) all render: the repo server's PATH is the cluster's bin directory.

The controller reconciles fast, for tests: every Application every 10 s (no jitter), and the repo server
resolves a branch or HEAD again after 10 s; self-heal retries 2 s after the last attempt, without backoff.

`down` stops the processes and removes .localcluster/argocd; the cluster's objects stay. `cluster.py down`
stops them as well, with the rest of the cluster; `cluster.py leftovers` reports any left.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import shutil
import socket
import subprocess
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

from processes import Component, _http_ok, _https_ok, report, start, stop, wait_ready  # noqa: E402
from settings import (  # noqa: E402
    APISERVER_PORT,
    ARGOCD,
    ARGOCD_CONTROLLER_METRICS_PORT,
    ARGOCD_NAMESPACE,
    ARGOCD_REDIS_PORT,
    ARGOCD_REPO_SERVER_METRICS_PORT,
    ARGOCD_REPO_SERVER_PORT,
    BINARY,
    KUBECONFIG,
    LOGS,
    PIDS,
    REPO,
    STATE,
    bin_dir,
    log,
    versions,
)

VERSION = versions()["ARGOCD_VERSION"]
ARGOCD_CM = REPO / "docs" / "argocd" / "argocd-cm.yaml"
REDIS = shutil.which("redis-server") or "/usr/bin/redis-server"
NAMES = ["argocd-redis", "argocd-repo-server", "argocd-application-controller"]  # in start order
# Argo CD's roles run as links to one binary; Debian's redis-server is a link to redis-check-rdb.
BINARY["argocd-repo-server"] = BINARY["argocd-application-controller"] = f"argocd-{VERSION}"
BINARY["argocd-redis"] = pathlib.Path(os.path.realpath(REDIS)).name
LUA_HEALTH = f"argocd-lua-health-{VERSION}"
CRDS = f"argocd-{VERSION}-crds"  # beside the binary: Argo CD's manifests/crds/{application,appproject}-crd.yaml

REDIS_CONFIG = """# Argo CD's cache, written by hack/localcluster/argocd.py. Nothing is persisted: Argo CD refills it.
bind 127.0.0.1
port {port}
protected-mode yes
daemonize no
# Keep the configuration file in the command line: how cluster.py leftovers knows it.
set-proc-title no
logfile ""
dir {dir}
save ""
appendonly no
maxmemory 256mb
maxmemory-policy allkeys-lru
"""

DEFAULT_PROJECT = {
    "apiVersion": "argoproj.io/v1alpha1",
    "kind": "AppProject",
    "metadata": {"name": "default", "namespace": ARGOCD_NAMESPACE},
    "spec": {
        "sourceRepos": ["*"],
        "destinations": [{"server": "*", "namespace": "*"}],
        "clusterResourceWhitelist": [{"group": "*", "kind": "*"}],
    },
}


def _redis_ready() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", ARGOCD_REDIS_PORT), timeout=2) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def components() -> list[Component]:
    redis = f"127.0.0.1:{ARGOCD_REDIS_PORT}"
    common_env = {
        "ARGOCD_FAKE_IN_CLUSTER": "true",
        "KUBECONFIG": str(KUBECONFIG),
        "TMPDIR": str(ARGOCD / "tmp"),  # the repo server's clones (_argocd-repo/) and manifest work directories
    }
    return [
        Component(
            name="argocd-redis",
            argv=lambda b: [REDIS, str(ARGOCD / "redis.conf")],
            ready=_redis_ready,
            ready_timeout=20,
            ports=[ARGOCD_REDIS_PORT],
        ),
        Component(
            name="argocd-repo-server",
            argv=lambda b: [
                str(b / "argocd-repo-server"),
                f"--redis={redis}",
                "--address=127.0.0.1",
                f"--port={ARGOCD_REPO_SERVER_PORT}",
                "--metrics-address=127.0.0.1",
                f"--metrics-port={ARGOCD_REPO_SERVER_METRICS_PORT}",
                "--disable-tls",  # loopback only; the controller connects with --repo-server-plaintext
                "--client-ca-path=",  # no mTLS (its default, a path under /app, is refused with --disable-tls)
                "--revision-cache-expiration=10s",  # HEAD and branches are resolved again after 10 s (default 3m)
                "--logformat=text",
            ],
            env={
                **common_env,
                # git-verify-wrapper.sh, gpg-wrapper.sh (run on every manifest generation), helm and kustomize.
                "PATH": f"{bin_dir()}:{os.environ.get('PATH', '/usr/bin:/bin')}",
                "ARGOCD_GPG_ENABLED": "false",  # no GnuPG keyring of Argo CD's own
                "ARGOCD_ASK_PASS_SOCK": str(ARGOCD / "reposerver-ask-pass.sock"),  # not /tmp
                "ARGOCD_TLS_DATA_PATH": str(ARGOCD / "tls"),
                "ARGOCD_SSH_DATA_PATH": str(ARGOCD / "ssh"),
                "ARGOCD_PLUGINSOCKFILEPATH": str(ARGOCD / "plugins"),
            },
            ready=lambda: _http_ok(f"http://127.0.0.1:{ARGOCD_REPO_SERVER_METRICS_PORT}/healthz?full=true"),
            ready_timeout=60,
            ports=[ARGOCD_REPO_SERVER_PORT, ARGOCD_REPO_SERVER_METRICS_PORT],
        ),
        Component(
            name="argocd-application-controller",
            argv=lambda b: [
                str(b / "argocd-application-controller"),
                f"--kubeconfig={KUBECONFIG}",
                f"--namespace={ARGOCD_NAMESPACE}",
                f"--redis={redis}",
                f"--repo-server=127.0.0.1:{ARGOCD_REPO_SERVER_PORT}",
                "--repo-server-plaintext",
                f"--metrics-port={ARGOCD_CONTROLLER_METRICS_PORT}",
                "--app-resync=10",  # seconds (default 120, plus up to 60 of jitter)
                "--app-resync-jitter=0",
                "--self-heal-timeout-seconds=2",  # with the backoff off, a fixed 2 s between self-heal attempts
                "--self-heal-backoff-timeout-seconds=0",
                # Each resource's health in the Application's status.resources, where kubectl (and the tests)
                # read it; Argo CD 3 keeps it out by default, for its API server and UI, which do not run here.
                "--persist-resource-health",
                "--logformat=text",
            ],
            env=common_env,
            ready=lambda: _http_ok(f"http://127.0.0.1:{ARGOCD_CONTROLLER_METRICS_PORT}/healthz"),
            ready_timeout=90,
            ports=[ARGOCD_CONTROLLER_METRICS_PORT],
        ),
    ]


def _kubectl(binaries: pathlib.Path, *args: str, stdin: str | None = None) -> str:
    command = [str(binaries / "kubectl"), f"--kubeconfig={KUBECONFIG}", f"--cache-dir={STATE / 'kubectl-cache'}", *args]
    result = subprocess.run(command, input=stdin, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"kubectl {' '.join(args[:3])} failed: {result.stderr.strip()}")
    return result.stdout


def apply_objects(binaries: pathlib.Path) -> None:
    """The namespace, Argo CD's CRDs, the `default` AppProject and our argocd-cm, by server-side apply."""
    apply = ["apply", "--server-side", "--force-conflicts", "--field-manager=mlops-localcluster"]
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ARGOCD_NAMESPACE}}
    _kubectl(binaries, *apply, "-f", "-", stdin=json.dumps(namespace))
    crds = binaries / CRDS
    _kubectl(binaries, *apply, "-f", str(crds / "application-crd.yaml"), "-f", str(crds / "appproject-crd.yaml"))

    # Polled, not `kubectl wait`: right after the create, a CRD may have no conditions yet, which wait refuses.
    def established(crd: str) -> bool:
        conditions = json.loads(_kubectl(binaries, "get", "crd", crd, "-o", "json")).get("status", {}).get("conditions")
        return any(c["type"] == "Established" and c["status"] == "True" for c in conditions or [])

    deadline = time.monotonic() + 60
    for crd in ("applications.argoproj.io", "appprojects.argoproj.io"):
        while not established(crd):
            if time.monotonic() > deadline:
                raise SystemExit(f"the CRD {crd} is not Established after 60 s")
            time.sleep(0.2)  # poll interval
    _kubectl(binaries, *apply, "-f", "-", stdin=json.dumps(DEFAULT_PROJECT))
    _kubectl(binaries, *apply, "-n", ARGOCD_NAMESPACE, "-f", str(ARGOCD_CM))
    log(f"applied namespace {ARGOCD_NAMESPACE}, Argo CD's CRDs, AppProject default and {ARGOCD_CM.relative_to(REPO)}")


def up() -> None:
    binaries = bin_dir()
    missing = [
        n
        for n in (
            f"argocd-{VERSION}",
            "argocd-repo-server",
            "argocd-application-controller",
            "kustomize",
            "git-verify-wrapper.sh",
            "gpg-wrapper.sh",
            CRDS,
        )
        if not (binaries / n).exists()
    ]
    if missing:
        raise SystemExit(
            f"Argo CD is not built in {binaries} (missing {missing}): "
            "run LOCALCLUSTER_COMPONENTS=argocd hack/localcluster/build.sh (make argocd)"
        )
    if not os.access(REDIS, os.X_OK):
        raise SystemExit(f"{REDIS} not found: apt-get install redis-server (hack/install-deps.sh installs it)")
    if not (KUBECONFIG.exists() and _https_ok(f"https://127.0.0.1:{APISERVER_PORT}/readyz", cert="admin")):
        raise SystemExit("the local cluster is not running: make cluster-up (make argocd starts it)")
    for directory in (LOGS, PIDS, ARGOCD / "redis", ARGOCD / "tmp", ARGOCD / "tls", ARGOCD / "ssh", ARGOCD / "plugins"):
        directory.mkdir(parents=True, exist_ok=True)
    (ARGOCD / "redis.conf").write_text(REDIS_CONFIG.format(port=ARGOCD_REDIS_PORT, dir=ARGOCD / "redis"))
    apply_objects(binaries)
    for component in components():
        start(component, binaries)
        wait_ready(component)
    log("Argo CD is up")
    print(usage(binaries))


def usage(binaries: pathlib.Path) -> str:
    kubectl = f"{binaries / 'kubectl'} --kubeconfig {KUBECONFIG}"
    return f"""Argo CD {VERSION} runs on the local cluster (logs: {LOGS}/argocd-*.log). Apply an Application to the
namespace {ARGOCD_NAMESPACE}, project default, with a Git repository on this machine and the in-cluster destination:

  spec:
    project: default
    source: {{repoURL: file:///path/to/repo.git, targetRevision: HEAD, path: manifests}}
    destination: {{server: https://kubernetes.default.svc, namespace: my-namespace}}
    syncPolicy: {{automated: {{prune: true, selfHeal: true}}}}

  {kubectl} apply -f app.yaml
  {kubectl} get application -n {ARGOCD_NAMESPACE} NAME -o jsonpath='{{.status.sync.status}},{{.status.health.status}}'

The health checks of the mlops.dev kinds come from {ARGOCD_CM.relative_to(REPO)} (ConfigMap argocd-cm); edit
docs/argocd/health/*.lua, regenerate it, and `make argocd` applies it again. Argo CD's Lua engine on one object:
  {binaries / LUA_HEALTH} docs/argocd/health/Dataset.lua OBJECT.json   (or --argocd-cm {ARGOCD_CM.relative_to(REPO)})
Stop it: python3 hack/localcluster/argocd.py down (make cluster-down stops it too)."""


def down() -> None:
    for name in reversed(NAMES):
        stop(name)
    if ARGOCD.exists():
        shutil.rmtree(ARGOCD)
        log(f"removed {ARGOCD}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("command", choices=["up", "down", "status"])
    args = parser.parse_args()
    if args.command == "up":
        up()
    elif args.command == "down":
        down()
    else:
        return report(components())
    return 0


if __name__ == "__main__":
    sys.exit(main())
