"""GitOps with the real Argo CD (v3.6.1, built from its Go module, `make argocd`): a bare Git repository on
this machine holds a Dataset, TrainingRuns and a ModelDeployment, and an Application syncs it
automatically. What Argo CD reports is what is asserted: the sync status, and each resource's health as
our checks in docs/argocd/argocd-cm.yaml compute it in Argo CD's own engine — Progressing → Healthy
through validation, training and serving; Degraded once a version is rolled back; Suspended at a manual
gate — while nothing the operator writes (status, labels, a `kubectl mlops promote`) ever makes the
Application OutOfSync: Argo CD syncs each commit once and never has to heal. Removing the
ModelDeployment from Git prunes it and its children; the trained models stay.
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from support import KUBECONFIG, REPO, Kubectl, artifact_path, wait_for

pytestmark = pytest.mark.usefixtures("operator")
ARGOCD = [sys.executable, str(REPO / "hack/localcluster/argocd.py")]
APP = "mlops-gitops"
LR = "sklearn.linear_model.LogisticRegression"
# Fails for the version named gitops-bad only: Prometheus's answer depends on the version being judged.
NOT_THE_BAD_ONE = {
    "name": "not-gitops-bad",
    "query": 'count(label_replace(vector(1), "v", "{{version}}", "", "") unless on(v) '
    'label_replace(vector(1), "v", "gitops-bad", "", "")) or vector(0)',
    "successCondition": "result == 1",
}


@pytest.fixture(scope="module")
def argocd(cluster: Kubectl) -> Iterator[None]:
    env = {**os.environ, "LOCALCLUSTER_COMPONENTS": "argocd"}
    built = subprocess.run(["bash", str(REPO / "hack/localcluster/build.sh")], env=env, capture_output=True, text=True)
    if built.returncode != 0:
        pytest.fail(f"Argo CD could not be built:\n{built.stderr[-3000:]}", pytrace=False)
    up = subprocess.run([*ARGOCD, "up"], capture_output=True, text=True)
    if up.returncode != 0:
        pytest.fail(f"Argo CD could not start:\n{up.stdout}\n{up.stderr}", pytrace=False)
    yield
    cluster.run("delete", "application", APP, "-n", "argocd", "--ignore-not-found", check=False)
    subprocess.run([*ARGOCD, "down"], capture_output=True, text=True)


class GitRepo:
    """A bare repository (the Application's source, `file://`) and a work tree whose commits are pushed to it."""

    def __init__(self, root: pathlib.Path) -> None:
        self.bare, self.work = root / "models.git", root / "work"
        self._git(root, "init", "--quiet", "--bare", "--initial-branch=main", str(self.bare))
        self._git(root, "clone", "--quiet", str(self.bare), str(self.work))
        (self.work / "manifests").mkdir()

    @staticmethod
    def _git(cwd: pathlib.Path, *args: str) -> str:
        identity = ["-c", "user.name=mlops tests", "-c", "user.email=tests@mlops.dev"]
        done = subprocess.run(["git", *identity, *args], cwd=cwd, capture_output=True, text=True)
        assert done.returncode == 0, f"git {' '.join(args)}: {done.stderr}"
        return done.stdout.strip()

    def commit(self, message: str, files: dict[str, dict[str, Any] | None]) -> str:
        """Write (or, for None, remove) manifests/<name>, commit and push; the new commit's sha."""
        for name, manifest in files.items():
            path = self.work / "manifests" / name
            if manifest is None:
                path.unlink()
            else:
                path.write_text(yaml.safe_dump(manifest, sort_keys=False))
        self._git(self.work, "add", "-A")
        self._git(self.work, "commit", "--quiet", "-m", message)
        self._git(self.work, "push", "--quiet", "origin", "HEAD:main")
        return self._git(self.work, "rev-parse", "HEAD")


class Watch:
    """What Argo CD reports about the Application, every 0.3 s: the sync status at each revision, and each
    resource's health in the order it was reported."""

    def __init__(self, cluster: Kubectl) -> None:
        self.cluster, self.stop = cluster, threading.Event()
        self.samples: list[tuple[float, str, str]] = []  # (time, revision, sync status)
        self.health: dict[str, list[str]] = {}  # "Kind/name" → the health statuses reported, deduplicated
        self.app: dict[str, Any] = {}
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.is_set():
            app = self.cluster.get("application", APP, "argocd") or {}
            status = app.get("status") or {}
            sync = status.get("sync") or {}
            if sync.get("status"):
                self.samples.append((time.monotonic(), sync.get("revision", ""), sync["status"]))
            for resource in status.get("resources") or []:
                seen = self.health.setdefault(f"{resource['kind']}/{resource['name']}", [])
                health = (resource.get("health") or {}).get("status")
                if health and (not seen or seen[-1] != health):
                    seen.append(health)
            self.app = app
            self.stop.wait(0.3)

    def resource(self, kind: str, name: str) -> dict[str, Any]:
        resources = (self.app.get("status") or {}).get("resources") or []
        return next((r for r in resources if (r["kind"], r["name"]) == (kind, name)), {})

    def synced_at(self, revision: str) -> bool:
        sync = (self.app.get("status") or {}).get("sync") or {}
        return sync.get("revision") == revision and sync.get("status") == "Synced"


@pytest.fixture(scope="module")
def gitops(argocd: None, cluster: Kubectl, ns: str, tmp_path_factory) -> Iterator[tuple[GitRepo, Watch, list]]:
    repo = GitRepo(tmp_path_factory.mktemp("gitops"))
    dataset = yaml.safe_load((REPO / "examples/dataset-iris.yaml").read_text())
    commits = [
        (
            repo.commit(
                "the iris Dataset, a first model, and its ModelDeployment",
                {
                    "dataset.yaml": dataset,
                    "trainingrun-a.yaml": training_run("gitops-a", params={"max_iter": 500}),
                    "modeldeployment.yaml": model_deployment(steps=[{"setWeight": 50}, {"pause": {"duration": "5s"}}]),
                },
            ),
            time.monotonic(),
        )
    ]
    application = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Application",
        "metadata": {"name": APP, "namespace": "argocd"},
        "spec": {
            "project": "default",
            "source": {"repoURL": f"file://{repo.bare}", "targetRevision": "HEAD", "path": "manifests"},
            "destination": {"server": "https://kubernetes.default.svc", "namespace": ns},
            "syncPolicy": {"automated": {"prune": True, "selfHeal": True}},
        },
    }
    cluster.apply(json.dumps(application), "argocd")
    watch = Watch(cluster)
    yield repo, watch, commits
    watch.stop.set()
    watch.thread.join(timeout=10)


def training_run(name: str, *, estimator: str = LR, params: dict | None = None) -> dict[str, Any]:
    """A TrainingRun of iris without gates: promoted as the champion once trained."""
    model = {"name": "iris", "estimator": estimator, "params": params or {}}
    return {
        "apiVersion": "mlops.dev/v1alpha1",
        "kind": "TrainingRun",
        "metadata": {"name": name},
        "spec": {"datasetRef": {"name": "iris"}, "model": model, "promotion": {"policy": "auto"}},
    }


def model_deployment(*, steps: list[dict]) -> dict[str, Any]:
    return {
        "apiVersion": "mlops.dev/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": "iris"},
        "spec": {
            "model": {"name": "iris"},
            "replicas": 1,
            "postPromotion": {"enabled": False},
            "strategy": {"canary": {"steps": steps}},
            "analysis": {"interval": "5s", "failureLimit": 1, "metrics": [NOT_THE_BAD_ONE]},
        },
    }


def healthy(watch: Watch, kind: str, name: str, status: str = "Healthy") -> dict[str, Any] | None:
    resource = watch.resource(kind, name)
    return resource if (resource.get("health") or {}).get("status") == status else None


def push(repo: GitRepo, commits: list, message: str, files: dict) -> str:
    sha = repo.commit(message, files)
    commits.append((sha, time.monotonic()))
    return sha


def test_argo_cd_syncs_and_each_resource_goes_progressing_to_healthy(gitops) -> None:
    repo, watch, commits = gitops
    wait_for(lambda: watch.synced_at(commits[0][0]), timeout=120, what="the Application Synced at the first commit")
    for kind, name in (("Dataset", "iris"), ("TrainingRun", "gitops-a"), ("ModelDeployment", "iris")):
        resource = wait_for(
            lambda k=kind, n=name: healthy(watch, k, n), timeout=300, what=f"Argo CD to report {kind} {name} Healthy"
        )
        seen = watch.health[f"{kind}/{name}"]
        assert "Progressing" in seen and seen.index("Progressing") < seen.index("Healthy"), (kind, seen)
        assert resource["status"] == "Synced", resource
    message = watch.resource("ModelDeployment", "iris")["health"].get("message", "")
    assert "gitops-a serves 100%" in message, message


def test_a_version_rolled_back_makes_the_modeldeployment_degraded(gitops) -> None:
    repo, watch, commits = gitops
    bad = training_run("gitops-bad", estimator="sklearn.dummy.DummyClassifier")
    sha = push(repo, commits, "a version that fails its canary analysis", {"trainingrun-bad.yaml": bad})
    wait_for(lambda: watch.synced_at(sha), timeout=120, what="the Application Synced at the second commit")
    degraded = wait_for(
        lambda: healthy(watch, "ModelDeployment", "iris", "Degraded"),
        timeout=300,
        what="Argo CD to report the ModelDeployment Degraded",
    )
    assert "Rolled back gitops-bad" in degraded["health"]["message"], degraded


def test_a_manual_gate_is_suspended_and_a_promote_completes_the_rollout(gitops, cluster: Kubectl, ns: str) -> None:
    repo, watch, commits = gitops
    sha = push(
        repo,
        commits,
        "a better version, behind a manual gate",
        {
            "trainingrun-c.yaml": training_run("gitops-c", params={"C": 0.5, "max_iter": 500}),
            "modeldeployment.yaml": model_deployment(steps=[{"setWeight": 50}, {"pause": {}}]),
        },
    )
    wait_for(lambda: watch.synced_at(sha), timeout=120, what="the Application Synced at the third commit")
    suspended = wait_for(
        lambda: healthy(watch, "ModelDeployment", "iris", "Suspended"),
        timeout=300,
        what="Argo CD to report the ModelDeployment Suspended",
    )
    assert "gitops-c at 50%" in suspended["health"]["message"], suspended
    plugin = pathlib.Path(sys.executable).with_name("kubectl-mlops")
    done = subprocess.run(
        [str(plugin), "promote", "iris", "-n", ns, f"--kubeconfig={KUBECONFIG}"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    wait_for(
        lambda: (
            (r := healthy(watch, "ModelDeployment", "iris"))
            and "gitops-c serves 100%" in r["health"].get("message", "")
        ),
        timeout=180,
        what="gitops-c promoted to 100 %",
    )


def test_nothing_the_operator_wrote_made_the_application_out_of_sync(gitops) -> None:
    """Between a commit being synced and the next commit, Argo CD always found the cluster as Git says;
    and it synced each commit exactly once (a self-heal would be a second sync of the same revision)."""
    repo, watch, commits = gitops
    wait_for(lambda: watch.synced_at(commits[-1][0]), timeout=60, what="the last commit synced")
    ends = [t for _, t in commits[1:]] + [time.monotonic()]
    for (sha, _), end in zip(commits, ends, strict=True):
        start = next(t for t, revision, status in watch.samples if revision == sha and status == "Synced")
        drifted = [(round(t - start, 1), s) for t, revision, s in watch.samples if start <= t < end and s != "Synced"]
        assert not drifted, f"OutOfSync at commit {sha[:8]}, seconds after it synced: {drifted}"
    history = (watch.app.get("status") or {}).get("history") or []
    revisions = [entry["revision"] for entry in history]
    assert revisions == [sha for sha, _ in commits], f"Argo CD's syncs: {revisions}"


def test_removing_the_modeldeployment_from_git_prunes_it_and_its_children_not_the_models(
    gitops, cluster: Kubectl, ns: str
) -> None:
    repo, watch, commits = gitops
    sha = push(repo, commits, "stop serving iris", {"modeldeployment.yaml": None})
    wait_for(lambda: watch.synced_at(sha), timeout=120, what="the Application Synced without the ModelDeployment")
    wait_for(lambda: cluster.get("modeldeployment", "iris", ns) is None, timeout=120, what="the ModelDeployment pruned")
    for kind, name in (("deployment", "iris-stable"), ("deployment", "iris-canary"), ("service", "iris")):
        wait_for(
            lambda k=kind, n=name: cluster.get(k, n, ns) is None,
            timeout=120,
            what=f"{kind} {name} garbage-collected with its ModelDeployment",
        )
    for run in ("gitops-a", "gitops-bad", "gitops-c"):
        model = cluster.get("trainingrun", run, ns)["status"]["model"]
        assert artifact_path(ns, model["uri"]).is_dir(), f"{run}'s model {model['uri']} is gone"
