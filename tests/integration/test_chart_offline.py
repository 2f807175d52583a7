"""The Helm chart as helm sees it, without a cluster: lint, render, and what the schema refuses.

helm is built from its Go module by hack/localcluster/build.sh (a no-op when it is already built).
"""

from __future__ import annotations

import os
import pathlib
import re
import subprocess
from typing import Any

import pytest
import yaml

from support import REPO, bin_dir

CHART = REPO / "charts/mlops-operator"
RELEASE, NAMESPACE = "mlops-operator", "mlops-system"

# Every setting the chart has a branch for, at once.
EVERYTHING = {
    "ha.enabled": "true",
    "watchNamespaces": "{ml,team-b}",
    "artifacts.namespaces": "{ml,team-b}",
    "artifacts.hostPath": "/var/lib/mlops",
    "monitoring.podMonitor.enabled": "true",
    "monitoring.serviceMonitor.enabled": "true",
    "grafana.dashboard.enabled": "true",
    "prometheus.url": "http://prometheus.monitoring:9090",
}

KINDS = ("datasets", "trainingruns", "modeldeployments")
NAMESPACED_RULES = {
    *{("mlops.dev", kind, verb) for kind in KINDS for verb in ("get", "list", "watch", "patch")},
    *{("mlops.dev", f"{kind}/status", verb) for kind in KINDS for verb in ("get", "patch")},
    ("mlops.dev", "trainingruns", "create"),  # continuous training (spec.retraining, mode Auto)
    *{("autoscaling", "horizontalpodautoscalers", v) for v in ("get", "list", "watch", "create", "patch", "delete")},
    *{("batch", "jobs", v) for v in ("get", "list", "watch", "create", "patch")},
    ("", "pods", "list"),
    ("", "pods", "watch"),
    ("", "configmaps", "get"),
    ("", "secrets", "create"),  # the feedback receipt key of each ModelDeployment: created, never read
    *{("", "persistentvolumeclaims", v) for v in ("get", "list", "watch")},
    *{("apps", "deployments", v) for v in ("get", "list", "watch", "create", "patch")},
    *{("", "services", v) for v in ("get", "list", "watch", "create", "patch")},
    *{("gateway.networking.k8s.io", "httproutes", v) for v in ("get", "list", "watch", "patch")},
    ("", "events", "create"),
    ("events.k8s.io", "events", "create"),
}
CLUSTER_RULES = {("apiextensions.k8s.io", "customresourcedefinitions", v) for v in ("list", "watch")} | {
    ("", "namespaces", v) for v in ("get", "list", "watch")
}


class Helm:
    """The helm binary with a private home: nothing from the machine's helm configuration leaks in."""

    def __init__(self, binary: pathlib.Path, home: pathlib.Path) -> None:
        self.binary = str(binary)
        self.env = {
            **os.environ,
            **{f"HELM_{kind}_HOME": str(home / kind.lower()) for kind in ("CACHE", "CONFIG", "DATA")},
        }

    def run(self, *args: str, values: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        sets = [arg for key, value in (values or {}).items() for arg in ("--set", f"{key}={value}")]
        return subprocess.run([self.binary, *args, *sets], capture_output=True, text=True, env=self.env, timeout=120)

    def render(self, values: dict[str, str] | None = None) -> list[dict[str, Any]]:
        result = self.run("template", RELEASE, str(CHART), "--namespace", NAMESPACE, values=values)
        assert result.returncode == 0, result.stderr
        return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


@pytest.fixture(scope="module")
def helm(tmp_path_factory: pytest.TempPathFactory) -> Helm:
    built = subprocess.run(
        ["bash", str(REPO / "hack/localcluster/build.sh")],
        env={**os.environ, "LOCALCLUSTER_COMPONENTS": "helm"},
        capture_output=True,
        text=True,
    )
    assert built.returncode == 0, f"helm could not be built:\n{built.stderr}"
    helm = Helm(bin_dir() / "helm", tmp_path_factory.mktemp("helm-home"))
    pinned = re.search(r"^HELM_VERSION=(\S+)$", (REPO / "hack/localcluster/versions.sh").read_text(), re.MULTILINE)
    version = helm.run("version", "--short")
    assert pinned and version.stdout.strip() == pinned.group(1), version.stdout + version.stderr  # stamped by ldflags
    return helm


def find(docs: list[dict[str, Any]], kind: str, name: str | None = None) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]


def rule_set(*roles: dict[str, Any]) -> set[tuple[str, str, str]]:
    return {
        (group, resource, verb)
        for role in roles
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


def container(docs: list[dict[str, Any]]) -> dict[str, Any]:
    (deployment,) = find(docs, "Deployment")
    (operator,) = deployment["spec"]["template"]["spec"]["containers"]
    return operator


# --- lint ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("values", [{}, EVERYTHING, {"ha.enabled": "true"}], ids=["defaults", "everything", "ha"])
def test_helm_lint_passes(helm: Helm, values: dict[str, str]) -> None:
    result = helm.run("lint", "--strict", str(CHART), values=values)
    assert result.returncode == 0, result.stdout + result.stderr


# --- rendering ----------------------------------------------------------------------------------------------------


def test_cluster_wide_rbac_is_exactly_the_least_privilege_rules(helm: Helm) -> None:
    docs = helm.render()
    (role,) = find(docs, "ClusterRole")
    assert rule_set(role) == NAMESPACED_RULES | CLUSTER_RULES
    assert not find(docs, "Role")
    (binding,) = find(docs, "ClusterRoleBinding")
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": RELEASE, "namespace": NAMESPACE}]
    assert find(docs, "ServiceAccount", RELEASE)


def leader_election(docs: list[dict]) -> tuple[str, dict]:
    """The Lease the HA replicas compete for, and the Role that lets them."""
    (role,) = [r for r in find(docs, "Role") if r["metadata"]["name"].endswith("-leader-election")]
    assert role["metadata"]["namespace"] == NAMESPACE, "the Lease lives in the release's namespace"
    (binding,) = [b for b in find(docs, "RoleBinding") if b["metadata"]["name"] == role["metadata"]["name"]]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": RELEASE, "namespace": NAMESPACE}]
    args = container(docs)["args"]
    lease = args[args.index("--leader-election") + 1]
    assert {(tuple(r["verbs"]), tuple(r.get("resourceNames") or ())) for r in role["rules"]} == {
        (("create",), ()),
        (("get", "update"), (lease,)),
    }
    assert all(r["apiGroups"] == ["coordination.k8s.io"] and r["resources"] == ["leases"] for r in role["rules"])
    env = {e["name"]: e for e in container(docs)["env"]}
    assert env["MLOPS_POD_NAMESPACE"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
    return lease, role


def test_cluster_wide_ha_elects_a_leader_on_a_lease(helm: Helm) -> None:
    docs = helm.render({"ha.enabled": "true"})
    (role,) = find(docs, "ClusterRole")
    assert rule_set(role) == NAMESPACED_RULES | CLUSTER_RULES, "leader election needs nothing cluster-wide"
    lease, _ = leader_election(docs)
    (deployment,) = find(docs, "Deployment")
    assert lease == f"{deployment['metadata']['name']}-leader"
    assert deployment["spec"]["replicas"] == 2
    assert "strategy" not in deployment["spec"]  # a rolling update is safe: the new pod waits for the Lease
    assert "-n" not in container(docs)["args"]


def test_namespaced_mode_has_roles_per_namespace_and_a_small_cluster_role(helm: Helm) -> None:
    docs = helm.render({"watchNamespaces": "{ml,team-b}", "ha.enabled": "true"})
    (cluster_role,) = find(docs, "ClusterRole")
    assert rule_set(cluster_role) == CLUSTER_RULES
    lease, election = leader_election(docs)
    roles = [r for r in find(docs, "Role") if r is not election]
    assert sorted(r["metadata"]["namespace"] for r in roles) == ["ml", "team-b"]
    for role in roles:
        assert rule_set(role) == NAMESPACED_RULES
    bindings = [b for b in find(docs, "RoleBinding") if b["metadata"]["name"] != election["metadata"]["name"]]
    assert sorted(b["metadata"]["namespace"] for b in bindings) == ["ml", "team-b"]
    assert all(b["subjects"][0]["namespace"] == NAMESPACE for b in bindings)
    args = container(docs)["args"]
    assert args[:5] == ["run", "--liveness-port", "8081", "--metrics-port", "9100"]
    assert args[5:] == ["-n", "ml", "-n", "team-b", "--leader-election", lease]


def test_namespaced_without_ha_elects_no_leader(helm: Helm) -> None:
    docs = helm.render({"watchNamespaces": "{ml}"})
    (role,) = find(docs, "Role")
    assert rule_set(role) == NAMESPACED_RULES
    assert "--leader-election" not in container(docs)["args"]


def test_operator_pod_is_restricted_and_probed(helm: Helm) -> None:
    docs = helm.render()
    (deployment,) = find(docs, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}  # never two standalone operators at once
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    operator = container(docs)
    security = operator["securityContext"]
    assert security["allowPrivilegeEscalation"] is False
    assert security["readOnlyRootFilesystem"] is True
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert {"name": "tmp", "mountPath": "/tmp"} in operator["volumeMounts"]
    assert {"name": "tmp", "emptyDir": {}} in pod["volumes"]
    assert operator["args"] == ["run", "--liveness-port", "8081", "--metrics-port", "9100"]
    assert {(p["name"], p["containerPort"]) for p in operator["ports"]} == {("health", 8081), ("metrics", 9100)}
    for probe in ("livenessProbe", "readinessProbe"):
        assert operator[probe]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert operator["resources"]["requests"] and operator["resources"]["limits"]
    env = {e["name"]: e.get("value") for e in operator["env"]}
    assert env["MLOPS_IMAGE"] == operator["image"] == "mlops-operator:dev"
    assert env["MLOPS_IMAGE_PULL_POLICY"] == operator["imagePullPolicy"] == "IfNotPresent"
    assert env["MLOPS_PROMETHEUS_URL"] == "http://prometheus.monitoring:9090"  # the Service prometheus.monitoring
    assert env["MLOPS_ALLOW_RAW_QUERIES"] == "true" and env["MALLOC_ARENA_MAX"] == "2"
    assert "topologySpreadConstraints" not in pod  # one replica: nothing to spread


def test_an_empty_prometheus_url_sets_no_default(helm: Helm) -> None:
    env = {e["name"] for e in container(helm.render({"prometheus.url": ""}))["env"]}
    assert "MLOPS_PROMETHEUS_URL" not in env  # analysis then needs a spec.prometheusUrl the chart lists


def test_the_prometheus_urls_a_spec_may_name_are_the_administrators_list(helm: Helm) -> None:
    unset = {e["name"] for e in container(helm.render())["env"]}
    assert "MLOPS_PROMETHEUS_ALLOWED_URLS" not in unset  # none listed: only prometheus.url
    listed = {"prometheus.allowedUrls": "{http://prom.team-a:9090,https://prom.team-b:9090}"}
    env = {e["name"]: e.get("value") for e in container(helm.render(listed))["env"]}
    assert env["MLOPS_PROMETHEUS_ALLOWED_URLS"] == "http://prom.team-a:9090,https://prom.team-b:9090"
    refused = helm.run("template", RELEASE, str(CHART), values={"prometheus.allowedUrls": "{prom.team-a:9090}"})
    assert refused.returncode != 0 and "allowedUrls" in refused.stderr, refused.stderr


def test_image_prometheus_and_extra_env_reach_the_operator(helm: Helm) -> None:
    docs = helm.render(
        {
            "image.repository": "registry.example/mlops-operator",
            "image.tag": "0.1.0",
            "image.pullPolicy": "Always",
            "prometheus.url": "http://prometheus.monitoring:9090",
            "prometheus.allowRawQueries": "false",
            "extraEnv[0].name": "MLOPS_ARTIFACT_PVC",
            "extraEnv[0].value": "store",
        },
    )
    operator = container(docs)
    env = {e["name"]: e.get("value") for e in operator["env"]}
    assert operator["image"] == env["MLOPS_IMAGE"] == "registry.example/mlops-operator:0.1.0"
    assert env["MLOPS_IMAGE_PULL_POLICY"] == "Always"
    assert env["MLOPS_PROMETHEUS_URL"] == "http://prometheus.monitoring:9090"
    assert env["MLOPS_ALLOW_RAW_QUERIES"] == "false"
    assert env["MLOPS_ARTIFACT_PVC"] == "store"


def spread(docs: list[dict[str, Any]]) -> list[dict[str, Any]] | None:
    (deployment,) = find(docs, "Deployment")
    return deployment["spec"]["template"]["spec"].get("topologySpreadConstraints")


def test_ha_replicas_spread_over_nodes_unless_told_otherwise(helm: Helm) -> None:
    docs = helm.render({"ha.enabled": "true"})
    (deployment,) = find(docs, "Deployment")
    own = deployment["spec"]["selector"]["matchLabels"]
    assert spread(docs) == [
        {
            "maxSkew": 1,
            "topologyKey": "kubernetes.io/hostname",
            "whenUnsatisfiable": "ScheduleAnyway",
            "matchLabelKeys": ["pod-template-hash"],
            "labelSelector": {"matchLabels": own},
        }
    ]
    assert spread(helm.render({"ha.enabled": "true", "affinity.podAntiAffinity.x": "y"})) is None  # the user's own
    zones = {
        "topologySpreadConstraints[0].maxSkew": "1",
        "topologySpreadConstraints[0].whenUnsatisfiable": "DoNotSchedule",
        "topologySpreadConstraints[0].topologyKey": "topology.kubernetes.io/zone",
    }
    for values in ({"ha.enabled": "true", **zones}, zones):
        assert spread(helm.render(values)) == [
            {
                "maxSkew": 1,
                "topologyKey": "topology.kubernetes.io/zone",
                "whenUnsatisfiable": "DoNotSchedule",
                "labelSelector": {"matchLabels": own},
            }
        ]
    chosen = spread(helm.render({**zones, "topologySpreadConstraints[0].labelSelector.matchLabels.tier": "ops"}))
    assert chosen[0]["labelSelector"] == {"matchLabels": {"tier": "ops"}}  # a selector given is kept as it is


def test_artifact_claims_and_host_path_volumes_are_kept(helm: Helm) -> None:
    docs = helm.render({"artifacts.namespaces": "{ml,team-b}", "artifacts.hostPath": "/var/lib/mlops/"})
    claims = find(docs, "PersistentVolumeClaim")
    volumes = {v["metadata"]["name"]: v for v in find(docs, "PersistentVolume")}
    assert sorted(c["metadata"]["namespace"] for c in claims) == ["ml", "team-b"]
    for claim in claims:
        namespace = claim["metadata"]["namespace"]
        assert claim["metadata"]["name"] == "mlops-artifacts"
        assert claim["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
        assert claim["spec"]["storageClassName"] == ""
        assert claim["spec"]["resources"]["requests"]["storage"] == "1Gi"
        assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
        volume = volumes[claim["spec"]["volumeName"]]
        assert volume["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
        assert volume["spec"]["hostPath"] == {"path": f"/var/lib/mlops/{namespace}", "type": "DirectoryOrCreate"}
        assert volume["spec"]["storageClassName"] == ""
        assert volume["spec"]["persistentVolumeReclaimPolicy"] == "Retain"
        assert volume["spec"]["claimRef"] == {"namespace": namespace, "name": "mlops-artifacts"}
    assert len(volumes) == 2


def test_artifact_claims_with_a_provisioner(helm: Helm) -> None:
    docs = helm.render({"artifacts.namespaces": "{ml}", "artifacts.storageClassName": "fast", "artifacts.size": "5Gi"})
    (claim,) = find(docs, "PersistentVolumeClaim")
    assert claim["spec"]["storageClassName"] == "fast"
    assert "volumeName" not in claim["spec"]
    assert claim["spec"]["resources"]["requests"]["storage"] == "5Gi"
    assert not find(docs, "PersistentVolume")
    unset = helm.render({"artifacts.namespaces": "{ml}"})
    assert "storageClassName" not in find(unset, "PersistentVolumeClaim")[0]["spec"]  # the cluster's default class


def test_defaults_create_no_optional_objects(helm: Helm) -> None:
    kinds = sorted(d["kind"] for d in helm.render())
    assert kinds == ["ClusterRole", "ClusterRoleBinding", "Deployment", "ServiceAccount"]


def test_monitoring_and_dashboard(helm: Helm) -> None:
    docs = helm.render({"monitoring.podMonitor.enabled": "true", "grafana.dashboard.enabled": "true"})
    (monitor,) = find(docs, "PodMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["spec"]["namespaceSelector"] == {"any": True}
    (expression,) = monitor["spec"]["selector"]["matchExpressions"]
    assert expression["key"] == "app.kubernetes.io/name"
    assert set(expression["values"]) == {"mlops-server", "mlops-operator"}
    endpoints = {e["port"]: e for e in monitor["spec"]["podMetricsEndpoints"]}
    assert endpoints["http"]["path"] == endpoints["metrics"]["path"] == "/metrics"
    assert endpoints["metrics"]["honorLabels"] is True  # the operator's `namespace` label is the object's
    (dashboard,) = find(docs, "ConfigMap")
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert dashboard["data"]["mlops-canary.json"] == (CHART / "dashboards/mlops-canary.json").read_text().rstrip("\n")

    docs = helm.render({"monitoring.podMonitor.enabled": "true", "monitoring.serviceMonitor.enabled": "true"})
    (service,) = find(docs, "Service")
    assert service["spec"]["ports"] == [{"name": "metrics", "port": 9100, "targetPort": "metrics"}]
    (service_monitor,) = find(docs, "ServiceMonitor")
    assert service_monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert service_monitor["spec"]["endpoints"][0]["port"] == "metrics"
    (monitor,) = find(docs, "PodMonitor")  # the operator is scraped once, through its Service
    assert [e["port"] for e in monitor["spec"]["podMetricsEndpoints"]] == ["http"]


def test_everything_at_once_renders(helm: Helm) -> None:
    kinds = {d["kind"] for d in helm.render(EVERYTHING)}
    assert kinds >= {"Deployment", "Role", "RoleBinding", "PersistentVolume", "PodMonitor", "ServiceMonitor"}


# --- what the schema and the templates refuse ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "values, message",
    [
        ({"replicas": "-1"}, "at '/replicas': minimum: got -1, want 0"),
        ({"colour": "blue"}, "additional properties 'colour' not allowed"),
        ({"image.pullpolicy": "Never"}, "at '/image': additional properties 'pullpolicy' not allowed"),
        ({"image.pullPolicy": "Sometimes"}, "/image/pullPolicy"),
        ({"artifacts.hostPath": "relative"}, "/artifacts/hostPath"),
        ({"replicas": "2"}, "replicas > 1 needs ha.enabled=true"),
        ({"serviceAccount.create": "false"}, "serviceAccount.name is required"),
        (
            {"topologySpreadConstraints[0].topologyKey": "kubernetes.io/hostname"},
            "at '/topologySpreadConstraints/0': missing properties 'maxSkew', 'whenUnsatisfiable'",
        ),
    ],
)
def test_bad_values_are_refused_with_a_clear_message(helm: Helm, values: dict[str, str], message: str) -> None:
    result = helm.run("template", RELEASE, str(CHART), values=values)
    assert result.returncode != 0
    assert message in result.stderr, result.stderr
