"""Cluster objects nothing here provides: hostPath PersistentVolumes with their claims, and the Gateway API CRDs."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import time

from settings import GATEWAY_API_VERSION, KUBECONFIG, STATE, bin_dir, log


def volume(namespace: str, claim: str, size: str = "5Gi") -> None:
    """A PersistentVolumeClaim `claim` in `namespace`, bound to a hostPath volume under .localcluster/volumes.

    The local cluster has no storage provisioner; this stands in for one (ReadWriteMany, like NFS would).
    The directory belongs to the image's user (10001), so restricted pods can write to it.
    """
    directory = STATE / "volumes" / namespace / claim
    directory.mkdir(parents=True, exist_ok=True)
    os.chown(directory, 10001, 10001)
    pv_name = f"local-{namespace}-{claim}"[:253]
    manifests = [
        {
            "apiVersion": "v1",
            "kind": "PersistentVolume",
            "metadata": {"name": pv_name, "labels": {"mlops.dev/local-volume": "true"}},
            "spec": {
                "capacity": {"storage": size},
                "accessModes": ["ReadWriteMany"],
                "persistentVolumeReclaimPolicy": "Retain",
                "storageClassName": "",
                "hostPath": {"path": str(directory), "type": "Directory"},
                "claimRef": {"namespace": namespace, "name": claim},
            },
        },
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": claim, "namespace": namespace},
            "spec": {
                "accessModes": ["ReadWriteMany"],
                "storageClassName": "",
                "volumeName": pv_name,
                "resources": {"requests": {"storage": size}},
            },
        },
    ]
    kubectl = [str(bin_dir() / "kubectl"), f"--kubeconfig={KUBECONFIG}", f"--cache-dir={STATE / 'kubectl-cache'}"]
    for manifest in manifests:
        subprocess.run(
            [*kubectl, "apply", "-f", "-"], input=json.dumps(manifest), text=True, check=True, capture_output=True
        )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        phase = subprocess.run(
            [*kubectl, "get", "pvc", claim, "-n", namespace, "-o", "jsonpath={.status.phase}"],
            capture_output=True,
            text=True,
        ).stdout
        if phase == "Bound":
            log(f"PersistentVolumeClaim {namespace}/{claim} → {directory}")
            return
        time.sleep(0.5)
    raise SystemExit(f"PersistentVolumeClaim {namespace}/{claim} did not become Bound within 60s")


def gateway_api_crds() -> None:
    """Install the Gateway API CRDs (standard channel) from the sigs.k8s.io/gateway-api Go module."""
    out = subprocess.run(
        ["go", "mod", "download", "-json", f"sigs.k8s.io/gateway-api@{GATEWAY_API_VERSION}"],
        capture_output=True,
        text=True,
        env={**os.environ, "GOFLAGS": "-mod=mod"},
    )
    if out.returncode != 0:
        raise SystemExit(f"cannot download sigs.k8s.io/gateway-api@{GATEWAY_API_VERSION}: {out.stderr or out.stdout}")
    crds = pathlib.Path(json.loads(out.stdout)["Dir"]) / "config" / "crd" / "standard"
    kubectl = [str(bin_dir() / "kubectl"), f"--kubeconfig={KUBECONFIG}", f"--cache-dir={STATE / 'kubectl-cache'}"]
    for name in (
        "gateway.networking.k8s.io_gatewayclasses.yaml",
        "gateway.networking.k8s.io_gateways.yaml",
        "gateway.networking.k8s.io_httproutes.yaml",
    ):
        subprocess.run([*kubectl, "apply", "--server-side", "-f", str(crds / name)], check=True, capture_output=True)
    deadline = time.monotonic() + 60
    established = '{.status.conditions[?(@.type=="Established")].status}'
    while time.monotonic() < deadline:
        state = subprocess.run(
            [*kubectl, "get", "crd", "httproutes.gateway.networking.k8s.io", "-o", f"jsonpath={established}"],
            capture_output=True,
            text=True,
        ).stdout
        if state == "True":
            log(f"Gateway API {GATEWAY_API_VERSION} CRDs installed")
            return
        time.sleep(0.5)
    raise SystemExit("the HTTPRoute CRD did not become Established within 60s")
