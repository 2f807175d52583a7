"""Add-ons on the node: Prometheus and the pod-discovery process that feeds it its scrape targets; an S3
server (VersityGW on a posix backend) for the artifact store and datasets in object storage; and the
metrics APIs behind the API server's aggregation layer: metrics-server (metrics.k8s.io: `kubectl top`,
CPU autoscaling) and prometheus-adapter (custom.metrics.k8s.io: the model servers' request rate).

The metrics add-ons run on the node as processes, like the others: each is registered as an APIService
whose Service has no selector and one endpoint, the add-on's port on the node IP (the API server
routes to endpoints, `--enable-aggregator-routing`). They use the admin kubeconfig for their own
requests (delegated authentication and authorization, the kubelets' metrics, the object lists). They
are built only for what needs them (`make test`, `make metrics-addons`): `make demo` does not, and a
cluster started without them runs without them (`make cluster-status` says so)."""

from __future__ import annotations

import base64
import json
import os
import pathlib
import secrets
import shutil
import subprocess
import sys
import time

from processes import Component, _http_ok, _https_ok
from settings import (
    APISERVER_PORT,
    BINARY,
    HERE,
    KUBECONFIG,
    METRICS_ADDONS,
    PKI,
    PROMETHEUS,
    PROMETHEUS_PORT,
    REPO,
    S3,
    S3_BUCKET,
    S3_ENV,
    S3_PORT,
    STATE,
    bin_dir,
    versions,
)

# Debian's prometheus is built without kubernetes_sd_configs (its Kubernetes client libraries are not
# packaged), so a small process discovers the pods from the API into a file_sd target file, with the
# labels kubernetes_sd relabelling would give: the pod IP and `prometheus.io/port`, namespace and pod.
PROMETHEUS_CONFIG = """
global: {{scrape_interval: 2s, evaluation_interval: 2s}}
scrape_configs:
  - job_name: mlops-pods
    honor_labels: true  # the operator's gauges carry their own `namespace` label
    file_sd_configs:
      - files: [{targets}]
        refresh_interval: 1s
"""
BINARY["pod-discovery"] = pathlib.Path(os.path.realpath(sys.executable)).name
BINARY["s3"] = f"versitygw-{versions()['VERSITYGW_VERSION']}"
BINARY["metrics-server"] = f"metrics-server-{versions()['METRICS_SERVER_VERSION']}"
BINARY["prometheus-adapter"] = f"prometheus-adapter-{versions()['PROMETHEUS_ADAPTER_VERSION']}"
# The adapter's rules: the same file docs/autoscaling.md gives users.
ADAPTER_RULES = REPO / "docs" / "autoscaling" / "prometheus-adapter.yaml"
# The API groups and versions each metrics add-on serves.
METRICS_APIS = {
    "metrics-server": [("metrics.k8s.io", "v1beta1")],
    "prometheus-adapter": [("custom.metrics.k8s.io", "v1beta2"), ("custom.metrics.k8s.io", "v1beta1")],
}


def prometheus_url(ip: str) -> str:
    """Where the local Prometheus answers: the node IP, so pods (the operator) reach it as well as the host."""
    return f"http://{ip}:{PROMETHEUS_PORT}"


def s3_url(ip: str) -> str:
    """Where the local S3 server answers: the node IP, so pods (Jobs, model servers) reach it as well as the host."""
    return f"http://{ip}:{S3_PORT}"


def s3_credentials() -> tuple[str, str]:
    """The S3 server's root access key and secret, drawn once per cluster."""
    path = S3 / "credentials"
    if not path.exists():
        S3.mkdir(parents=True, exist_ok=True)
        path.write_text(f"mlops{secrets.token_hex(6)}\n{secrets.token_urlsafe(24)}\n")
        path.chmod(0o600)
    access, secret = path.read_text().split()
    return access, secret


def write_s3_config(ip: str) -> None:
    """The backend's root with one bucket (a directory, for the posix backend), and `.localcluster/s3.env`."""
    (S3 / "data" / S3_BUCKET).mkdir(parents=True, exist_ok=True)
    (S3 / "iam").mkdir(parents=True, exist_ok=True)
    access, secret = s3_credentials()
    S3_ENV.write_text(
        f"AWS_ENDPOINT_URL={s3_url(ip)}\nAWS_ACCESS_KEY_ID={access}\nAWS_SECRET_ACCESS_KEY={secret}\n"
        f"AWS_REGION=us-east-1\nMLOPS_S3_BUCKET={S3_BUCKET}\n"
    )
    S3_ENV.chmod(0o600)


def addons(ip: str) -> list[Component]:
    """Prometheus, scraping every pod annotated `prometheus.io/scrape: "true"` (model servers, the operator),
    and the S3 server."""
    targets = PROMETHEUS / "pods.json"
    # Drawn by write_s3_config before `up` starts anything; `status` and `down` only look.
    access, secret = s3_credentials() if (S3 / "credentials").exists() else ("", "")
    return [
        Component(
            name="pod-discovery",
            argv=lambda b: [sys.executable, str(HERE / "cluster.py"), "discover-pods", str(targets)],
            ready=lambda: True,
        ),
        Component(
            name="prometheus",
            argv=lambda b: [
                shutil.which("prometheus") or "prometheus",
                f"--config.file={PROMETHEUS / 'prometheus.yml'}",
                f"--storage.tsdb.path={PROMETHEUS / 'data'}",
                "--storage.tsdb.retention.time=1d",
                f"--web.listen-address={ip}:{PROMETHEUS_PORT}",
            ],
            ready=lambda: _http_ok(f"{prometheus_url(ip)}/-/ready"),
            ready_timeout=60,
        ),
        Component(
            name="s3",
            argv=lambda b: [
                str(b / BINARY["s3"]),
                "--port",
                f"{ip}:{S3_PORT}",
                "--health",
                "/health",
                "--quiet",
                # Users besides root (per-namespace keys, scoped by the bucket policy: tests/support
                # scoped_store_keys) in a file here; the bucket's data stays in data/.
                "--iam-dir",
                str(S3 / "iam"),
                "posix",
                str(S3 / "data"),
            ],
            env={"ROOT_ACCESS_KEY_ID": access, "ROOT_SECRET_ACCESS_KEY": secret},  # not on the command line
            ready=lambda: _http_ok(f"{s3_url(ip)}/health"),
            ready_timeout=30,
        ),
        *(metrics_addons(ip) if metrics_addons_built() else []),
    ]


def metrics_addons_built() -> bool:
    """Whether metrics-server and prometheus-adapter are built (`make metrics-addons`, `make test`)."""
    return all((bin_dir() / BINARY[name]).exists() for name in METRICS_ADDONS)


def _serving(name: str, ip: str, *, kubeconfig_flag: str = "--kubeconfig") -> list[str]:
    """The flags every aggregated API server here shares: where it listens, its certificate, its kubeconfigs."""
    return [
        f"--bind-address={ip}",
        f"--secure-port={METRICS_ADDONS[name]}",
        f"--tls-cert-file={PKI / f'{name}.crt'}",
        f"--tls-private-key-file={PKI / f'{name}.key'}",
        f"{kubeconfig_flag}={KUBECONFIG}",
        f"--authentication-kubeconfig={KUBECONFIG}",
        f"--authorization-kubeconfig={KUBECONFIG}",
    ]


def metrics_addons(ip: str) -> list[Component]:
    """metrics-server, reading the kubelet's resource metrics (its serving certificate checked against the
    cluster CA), and prometheus-adapter, answering custom metrics from the local Prometheus."""
    return [
        Component(
            name="metrics-server",
            argv=lambda b: [
                str(b / BINARY["metrics-server"]),
                *_serving("metrics-server", ip),
                f"--kubelet-certificate-authority={PKI / 'ca.crt'}",
                "--kubelet-preferred-address-types=InternalIP",
                "--metric-resolution=15s",  # as its own manifests set it: CPU autoscaling reacts sooner than at 1m
            ],
            ready=lambda: _https_ok(f"https://{ip}:{METRICS_ADDONS['metrics-server']}/livez", cert="admin"),
            ready_timeout=30,
            after_ready=lambda b: register_metrics_api("metrics-server", ip, b),
        ),
        Component(
            name="prometheus-adapter",
            argv=lambda b: [
                str(b / BINARY["prometheus-adapter"]),
                *_serving("prometheus-adapter", ip, kubeconfig_flag="--lister-kubeconfig"),
                f"--prometheus-url={prometheus_url(ip)}",
                f"--config={ADAPTER_RULES}",
                "--metrics-relist-interval=10s",  # a model server's new series are known within 10 s
            ],
            ready=lambda: _https_ok(f"https://{ip}:{METRICS_ADDONS['prometheus-adapter']}/livez", cert="admin"),
            ready_timeout=30,
            after_ready=lambda b: register_metrics_api("prometheus-adapter", ip, b),
        ),
    ]


def register_metrics_api(name: str, ip: str, binaries: pathlib.Path) -> None:
    """The Service (no selector), its one endpoint on the node and the APIServices of add-on `name`."""
    port = METRICS_ADDONS[name]
    ca = base64.b64encode((PKI / "ca.crt").read_bytes()).decode()
    meta = {"name": name, "namespace": "kube-system", "labels": {"app.kubernetes.io/name": name}}
    objects: list[dict] = [
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": meta,
            "spec": {"ports": [{"name": "https", "port": 443, "targetPort": port}]},
        },
        {
            "apiVersion": "v1",
            "kind": "Endpoints",
            "metadata": meta,
            "subsets": [{"addresses": [{"ip": ip}], "ports": [{"name": "https", "port": port}]}],
        },
    ]
    for group, version in METRICS_APIS[name]:
        objects.append(
            {
                "apiVersion": "apiregistration.k8s.io/v1",
                "kind": "APIService",
                "metadata": {"name": f"{version}.{group}", "labels": {"app.kubernetes.io/name": name}},
                "spec": {
                    "group": group,
                    "version": version,
                    "caBundle": ca,
                    "groupPriorityMinimum": 100,
                    "versionPriority": 100,
                    "service": {"name": name, "namespace": "kube-system", "port": 443},
                },
            }
        )
    kubectl = [str(binaries / "kubectl"), f"--kubeconfig={KUBECONFIG}", f"--cache-dir={STATE / 'kubectl-cache'}"]
    subprocess.run(
        [*kubectl, "apply", "--warnings-as-errors=false", "-f", "-"],
        input=json.dumps({"apiVersion": "v1", "kind": "List", "items": objects}),
        text=True,
        check=True,
        capture_output=True,
    )


def write_prometheus_config() -> None:
    PROMETHEUS.mkdir(parents=True, exist_ok=True)
    targets = PROMETHEUS / "pods.json"
    if not targets.exists():
        targets.write_text("[]")
    (PROMETHEUS / "prometheus.yml").write_text(PROMETHEUS_CONFIG.format(targets=targets))


def _scrape_target(pod: dict) -> dict | None:
    """The file_sd group of a running pod annotated `prometheus.io/scrape: "true"`, or None."""
    annotations, status = pod["metadata"].get("annotations") or {}, pod.get("status") or {}
    if annotations.get("prometheus.io/scrape") != "true" or not status.get("podIP"):
        return None
    return {
        "targets": [f"{status['podIP']}:{annotations.get('prometheus.io/port', '8080')}"],
        "labels": {"namespace": pod["metadata"]["namespace"], "pod": pod["metadata"]["name"]},
    }


def discover_pods(targets: pathlib.Path) -> None:
    """Forever: keep the scrape targets of annotated, running pods in `targets` (file_sd format). The pods
    are listed once, then watched, over HTTPS from this process (the admin certificate); the file is
    rewritten only when a target comes or goes (Prometheus reloads it on every write)."""
    import ssl
    import urllib.request

    context = ssl.create_default_context(cafile=str(PKI / "ca.crt"))
    context.load_cert_chain(str(PKI / "admin.crt"), str(PKI / "admin.key"))
    pods_url = f"https://127.0.0.1:{APISERVER_PORT}/api/v1/pods?fieldSelector=status.phase%3DRunning"
    written = None

    def write(found: dict[str, dict]) -> None:
        nonlocal written
        text = json.dumps(sorted(found.values(), key=lambda g: (g["labels"]["namespace"], g["labels"]["pod"])))
        if text != written:
            tmp = targets.with_suffix(".tmp")
            tmp.write_text(text)
            tmp.replace(targets)
            written = text

    while True:
        try:  # list, then watch from the list's version until the watch ends (or is too old: list again)
            with urllib.request.urlopen(pods_url, context=context, timeout=30) as response:
                listed = json.load(response)
            found = {p["metadata"]["uid"]: g for p in listed["items"] if (g := _scrape_target(p))}
            write(found)
            version = listed["metadata"]["resourceVersion"]
            while True:
                watch = f"{pods_url}&watch=1&allowWatchBookmarks=true&timeoutSeconds=300&resourceVersion={version}"
                with urllib.request.urlopen(watch, context=context, timeout=330) as stream:
                    for line in stream:
                        event = json.loads(line)
                        if event["type"] == "ERROR":  # e.g. 410 Gone: the version is too old
                            raise ValueError(event["object"].get("message", "watch error"))
                        pod = event["object"]
                        version = pod["metadata"]["resourceVersion"]
                        if event["type"] == "BOOKMARK":
                            continue
                        group = _scrape_target(pod) if event["type"] != "DELETED" else None
                        if group:
                            found[pod["metadata"]["uid"]] = group
                        else:
                            found.pop(pod["metadata"]["uid"], None)
                        write(found)
        except (OSError, ValueError, KeyError):  # the API server restarting, or the watch too old
            time.sleep(1)
