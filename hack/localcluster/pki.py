"""The cluster's certificate authority, the certificates it signs (with openssl) and kubeconfigs using them."""

from __future__ import annotations

import json
import pathlib
import subprocess

from settings import KUBERNETES_SERVICE_IP, METRICS_ADDONS, PKI


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def _ec_key(path: pathlib.Path) -> None:
    if not path.exists():
        _openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", str(path))
        path.chmod(0o600)


def _issue_cert(name: str, *, subject: str, usage: str, sans: list[str] | None = None, ca: str = "ca") -> None:
    """A key and a certificate signed by the cluster CA (or another of ours, `ca`), unless both exist."""
    key, crt = PKI / f"{name}.key", PKI / f"{name}.crt"
    if key.exists() and crt.exists():
        return
    _ec_key(key)
    ext = PKI / f"{name}.ext"
    lines = [
        "basicConstraints=CA:FALSE",
        "keyUsage=critical,digitalSignature,keyEncipherment",
        f"extendedKeyUsage={usage}",
    ]
    if sans:
        lines.append("subjectAltName=" + ",".join(sans))
    ext.write_text("\n".join(lines) + "\n")
    csr = PKI / f"{name}.csr"
    _openssl("req", "-new", "-key", str(key), "-subj", subject, "-out", str(csr))
    _openssl(
        "x509",
        "-req",
        "-in",
        str(csr),
        "-CA",
        str(PKI / f"{ca}.crt"),
        "-CAkey",
        str(PKI / f"{ca}.key"),
        "-CAcreateserial",
        "-days",
        "3650",
        "-extfile",
        str(ext),
        "-out",
        str(crt),
    )
    csr.unlink()
    ext.unlink()


def _ensure_ca(name: str, subject: str) -> None:
    if not (PKI / f"{name}.crt").exists():
        _ec_key(PKI / f"{name}.key")
        _openssl(
            "req",
            "-x509",
            "-new",
            "-key",
            str(PKI / f"{name}.key"),
            "-subj",
            subject,
            "-days",
            "3650",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign,digitalSignature",
            "-out",
            str(PKI / f"{name}.crt"),
        )


def ensure_pki(ip: str) -> None:
    PKI.mkdir(parents=True, exist_ok=True)
    _ensure_ca("ca", "/CN=mlops-localcluster-ca")
    # The aggregation layer: the API server proxies to the metrics add-ons with this client certificate,
    # which they trust (through extension-apiserver-authentication) to carry the user in headers. Its CA
    # is its own, as kubeadm's is: a client certificate of the cluster CA cannot pose as the proxy.
    _ensure_ca("front-proxy-ca", "/CN=mlops-localcluster-front-proxy-ca")
    _issue_cert("front-proxy-client", subject="/CN=front-proxy-client", usage="clientAuth", ca="front-proxy-ca")
    for addon in METRICS_ADDONS:  # served behind their Service's name, which the API server checks
        _issue_cert(
            addon, subject=f"/CN={addon}", usage="serverAuth", sans=[f"DNS:{addon}.kube-system.svc", f"IP:{ip}"]
        )
    sans = [
        "DNS:kubernetes",
        "DNS:kubernetes.default",
        "DNS:kubernetes.default.svc",
        "DNS:kubernetes.default.svc.cluster.local",
        "DNS:localhost",
        "IP:127.0.0.1",
        f"IP:{KUBERNETES_SERVICE_IP}",
        f"IP:{ip}",
    ]
    _issue_cert("apiserver", subject="/CN=kube-apiserver", usage="serverAuth", sans=sans)
    _issue_cert("admin", subject="/O=system:masters/CN=mlops-admin", usage="clientAuth")
    _issue_cert("controller-manager", subject="/CN=system:kube-controller-manager", usage="clientAuth")
    _issue_cert("scheduler", subject="/CN=system:kube-scheduler", usage="clientAuth")
    _issue_cert(
        "apiserver-kubelet-client",
        subject="/O=system:masters/CN=kube-apiserver-kubelet-client",
        usage="clientAuth",
    )
    _issue_cert("kube-proxy", subject="/CN=system:kube-proxy", usage="clientAuth")
    _ec_key(PKI / "sa.key")
    if not (PKI / "sa.pub").exists():
        _openssl("pkey", "-in", str(PKI / "sa.key"), "-pubout", "-out", str(PKI / "sa.pub"))


def ensure_node_pki(name: str, suffix: str, ip: str) -> None:
    """Node `name`'s kubelet certificates: its client identity (system:node:NAME, which the Node
    authorizer and NodeRestriction check) and its serving certificate for its IP."""
    _issue_cert(f"kubelet{suffix}", subject=f"/O=system:nodes/CN=system:node:{name}", usage="clientAuth")
    _issue_cert(
        f"kubelet-serving{suffix}",
        subject=f"/O=system:nodes/CN=system:node:{name}",
        usage="serverAuth",
        sans=[f"DNS:{name}", "DNS:localhost", "IP:127.0.0.1", f"IP:{ip}"],
    )


def write_kubeconfig(path: pathlib.Path, *, cert: str, server: str) -> None:
    """A kubeconfig authenticating with a client certificate of the cluster CA (YAML is JSON's superset)."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "mlops-local",
                "cluster": {"server": server, "certificate-authority": str(PKI / "ca.crt")},
            }
        ],
        "users": [
            {
                "name": cert,
                "user": {
                    "client-certificate": str(PKI / f"{cert}.crt"),
                    "client-key": str(PKI / f"{cert}.key"),
                },
            }
        ],
        "contexts": [{"name": "mlops-local", "context": {"cluster": "mlops-local", "user": cert}}],
        "current-context": "mlops-local",
    }
    path.write_text(json.dumps(config, indent=2) + "\n")
