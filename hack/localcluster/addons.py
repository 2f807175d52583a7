"""Add-ons on the node: Prometheus and the pod-discovery process that feeds it its scrape targets, and
an S3 server (VersityGW on a posix backend) for the artifact store and datasets in object storage."""

from __future__ import annotations

import json
import os
import pathlib
import secrets
import shutil
import subprocess
import sys
import time

from processes import Component, _http_ok
from settings import (
    BINARY,
    HERE,
    KUBECONFIG,
    PROMETHEUS,
    PROMETHEUS_PORT,
    S3,
    S3_BUCKET,
    S3_ENV,
    S3_PORT,
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
            ],  # fmt: skip
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
                "posix",
                str(S3 / "data"),
            ],  # fmt: skip
            env={"ROOT_ACCESS_KEY_ID": access, "ROOT_SECRET_ACCESS_KEY": secret},  # not on the command line
            ready=lambda: _http_ok(f"{s3_url(ip)}/health"),
            ready_timeout=30,
        ),
    ]


def write_prometheus_config() -> None:
    PROMETHEUS.mkdir(parents=True, exist_ok=True)
    targets = PROMETHEUS / "pods.json"
    if not targets.exists():
        targets.write_text("[]")
    (PROMETHEUS / "prometheus.yml").write_text(PROMETHEUS_CONFIG.format(targets=targets))


def discover_pods(targets: pathlib.Path) -> None:
    """Forever: write the scrape targets of annotated, running pods (file_sd format), every second."""
    kubectl = [str(bin_dir() / "kubectl"), f"--kubeconfig={KUBECONFIG}", "get", "pods", "-A", "-o", "json"]
    while True:
        result = subprocess.run(kubectl, capture_output=True, text=True)
        if result.returncode == 0:
            groups = []
            for pod in json.loads(result.stdout)["items"]:
                annotations, status = pod["metadata"].get("annotations") or {}, pod.get("status") or {}
                if annotations.get("prometheus.io/scrape") == "true" and status.get("podIP") and \
                        status.get("phase") == "Running":  # fmt: skip
                    groups.append({
                        "targets": [f"{status['podIP']}:{annotations.get('prometheus.io/port', '8080')}"],
                        "labels": {"namespace": pod["metadata"]["namespace"], "pod": pod["metadata"]["name"]},
                    })  # fmt: skip
            tmp = targets.with_suffix(".tmp")
            tmp.write_text(json.dumps(groups))
            tmp.replace(targets)
        time.sleep(1)
