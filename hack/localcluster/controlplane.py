"""The control plane's components: etcd, kube-apiserver, kube-controller-manager and kube-scheduler."""

from __future__ import annotations

from processes import Component, _http_ok, _https_ok
from settings import APISERVER_PORT, ETCD_CLIENT_PORT, ETCD_PEER_PORT, PKI, POD_CIDR, SERVICE_CIDR, STATE


def control_plane(ip: str) -> list[Component]:
    apiserver_url = f"https://127.0.0.1:{APISERVER_PORT}"
    kubeconfigs = {name: STATE / f"{name}.kubeconfig" for name in ("controller-manager", "scheduler")}
    return [
        Component(
            name="etcd",
            argv=lambda b: [
                str(b / "etcd"),
                "--name=mlops-local",
                f"--data-dir={STATE / 'etcd'}",
                f"--listen-client-urls=http://127.0.0.1:{ETCD_CLIENT_PORT}",
                f"--advertise-client-urls=http://127.0.0.1:{ETCD_CLIENT_PORT}",
                f"--listen-peer-urls=http://127.0.0.1:{ETCD_PEER_PORT}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{ETCD_PEER_PORT}",
                f"--initial-cluster=mlops-local=http://127.0.0.1:{ETCD_PEER_PORT}",
                "--listen-metrics-urls=http://127.0.0.1:2381",
                "--log-level=warn",
                "--quota-backend-bytes=2147483648",
                "--unsafe-no-fsync",
            ],
            ready=lambda: _http_ok("http://127.0.0.1:2381/health"),
            ready_timeout=30,
            ports=[ETCD_CLIENT_PORT, ETCD_PEER_PORT],
        ),
        Component(
            name="kube-apiserver",
            argv=lambda b: [
                str(b / "kube-apiserver"),
                f"--etcd-servers=http://127.0.0.1:{ETCD_CLIENT_PORT}",
                "--bind-address=0.0.0.0",
                f"--secure-port={APISERVER_PORT}",
                f"--advertise-address={ip}",
                f"--tls-cert-file={PKI / 'apiserver.crt'}",
                f"--tls-private-key-file={PKI / 'apiserver.key'}",
                f"--client-ca-file={PKI / 'ca.crt'}",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--service-account-key-file={PKI / 'sa.pub'}",
                f"--service-account-signing-key-file={PKI / 'sa.key'}",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                "--authorization-mode=Node,RBAC",
                "--enable-admission-plugins=NodeRestriction",
                f"--kubelet-client-certificate={PKI / 'apiserver-kubelet-client.crt'}",
                f"--kubelet-client-key={PKI / 'apiserver-kubelet-client.key'}",
                "--kubelet-preferred-address-types=InternalIP,Hostname",
                "--allow-privileged=true",
                # The aggregation layer, for the metrics APIs the add-ons serve (kubectl top, autoscaling):
                # requests are proxied with the front proxy's client certificate, the user in headers,
                # straight to the add-on's endpoint (it runs on the node, not behind kube-proxy).
                f"--requestheader-client-ca-file={PKI / 'front-proxy-ca.crt'}",
                "--requestheader-allowed-names=front-proxy-client",
                "--requestheader-username-headers=X-Remote-User",
                "--requestheader-group-headers=X-Remote-Group",
                "--requestheader-extra-headers-prefix=X-Remote-Extra-",
                f"--proxy-client-cert-file={PKI / 'front-proxy-client.crt'}",
                f"--proxy-client-key-file={PKI / 'front-proxy-client.key'}",
                "--enable-aggregator-routing=true",
                "--profiling=false",
                "--v=1",
            ],
            ready=lambda: _https_ok(f"{apiserver_url}/readyz", cert="admin"),
            ready_timeout=120,
            ports=[APISERVER_PORT],
        ),
        Component(
            name="kube-controller-manager",
            argv=lambda b: [
                str(b / "kube-controller-manager"),
                f"--kubeconfig={kubeconfigs['controller-manager']}",
                f"--authentication-kubeconfig={kubeconfigs['controller-manager']}",
                f"--authorization-kubeconfig={kubeconfigs['controller-manager']}",
                "--bind-address=127.0.0.1",
                "--secure-port=10257",
                f"--service-account-private-key-file={PKI / 'sa.key'}",
                f"--root-ca-file={PKI / 'ca.crt'}",
                f"--cluster-signing-cert-file={PKI / 'ca.crt'}",
                f"--cluster-signing-key-file={PKI / 'ca.key'}",
                "--use-service-account-credentials=true",
                "--controllers=*,bootstrapsigner,tokencleaner",
                "--allocate-node-cidrs=true",
                f"--cluster-cidr={POD_CIDR}",
                "--node-cidr-mask-size=24",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                # The autoscalers look every 5 s, not 15: a test of scaling waits for fewer of their periods.
                "--horizontal-pod-autoscaler-sync-period=5s",
                # A node whose kubelet stops renewing its lease (every 5 s) is NotReady after 20 s, not 50:
                # the tests that stop a node wait for fewer seconds of it.
                "--node-monitor-grace-period=20s",
                "--leader-elect=false",
                "--v=1",
            ],
            ready=lambda: _https_ok("https://127.0.0.1:10257/healthz"),
            ports=[10257],
        ),
        Component(
            name="kube-scheduler",
            argv=lambda b: [
                str(b / "kube-scheduler"),
                f"--kubeconfig={kubeconfigs['scheduler']}",
                f"--authentication-kubeconfig={kubeconfigs['scheduler']}",
                f"--authorization-kubeconfig={kubeconfigs['scheduler']}",
                "--bind-address=127.0.0.1",
                "--secure-port=10259",
                "--leader-elect=false",
                "--v=1",
            ],
            ready=lambda: _https_ok("https://127.0.0.1:10259/healthz"),
            ports=[10259],
        ),
    ]
