"""A model trained on one image and served on another (serial: it redeploys the shared operator). The
operator runs the image variant `sklearn1.3` (scikit-learn 1.3.2, numpy 1.26: `make image
VARIANT=sklearn1.3`) while two versions are trained and served, then is upgraded back to the current
image (scikit-learn 1.9), which rolls their servers onto it. Each new server replays its version's golden
rows first: the logistic regression predicts them the same, is served, and its ModelDeployment says
`EnvironmentDiffers`; the decision tree loads but gives other probabilities (trees store class fractions
since scikit-learn 1.4, counts before), so its new server refuses it (`ModelNotReproducible`), its roll
stalls and its old server, on the image that trained it, serves on. The same tree with
`spec.server.image: Training` is served on the image that trained it, before and after."""

from __future__ import annotations

import subprocess

import pytest

from support import REPO, Kubectl, condition, wait_for, wait_phase
from support import model_deployment_manifest as _md
from support import training_run_manifest as _run

pytestmark = [pytest.mark.usefixtures("operator"), pytest.mark.serial]

VARIANT = "sklearn1.3"
TREE, LOGREG = "sklearn.tree.DecisionTreeClassifier", "sklearn.linear_model.LogisticRegression"


@pytest.fixture(scope="module")
def variant_image(cluster: Kubectl) -> str:
    """The image variant, built from operator/Dockerfile with requirements-sklearn1.3.lock and loaded."""
    built = subprocess.run(
        ["python3", str(REPO / "hack/localcluster/image.py"), "load", "--variant", VARIANT],
        capture_output=True,
        text=True,
    )
    assert built.returncode == 0, f"the image variant {VARIANT} did not build:\n{built.stderr[-3000:]}"
    return f"mlops-operator:dev-{VARIANT}"


def _status(cluster: Kubectl, ns: str, kind: str, name: str) -> dict:
    return (cluster.get(kind, name, ns) or {}).get("status") or {}


def _server_images(cluster: Kubectl, ns: str, md: str) -> set[str]:
    listed = cluster.json("get", "pods", "-n", ns, "-l", f"mlops.dev/deployment={md}")["items"]
    ready = [p for p in listed if (condition(p, "Ready") or {}).get("status") == "True"]
    return {c["image"] for p in ready for c in p["spec"]["containers"]}


def test_a_model_trained_on_older_libraries_is_replayed_on_the_new_image(
    cluster: Kubectl, ns: str, operator, variant_image: str
) -> None:
    cluster.apply((REPO / "examples/dataset-iris.yaml").read_text(), ns)
    operator.deploy("--set", f"image.tag=dev-{VARIANT}")
    try:
        operator.wait_ready()
        manual = {"promotion": {"policy": "manual"}}
        cluster.apply(_run("tree-old", TREE, params={"max_depth": 3}, **manual), ns)
        cluster.apply(_run("logreg-old", LOGREG, params={"max_iter": 300}, **manual), ns)
        for run in ("tree-old", "logreg-old"):
            model = wait_phase(cluster, "trainingrun", run, ns, ("Succeeded",), timeout=300)["status"]["model"]
            assert model["environment"]["scikitLearn"] == "1.3.2", model["environment"]
            assert model["environment"]["image"] == variant_image, model["environment"]
        for md, run in (("tree", "tree-old"), ("logreg", "logreg-old")):
            cluster.apply(_md(md, run=run, replicas=1, progressDeadlineSeconds=30), ns)
        kept = _md("tree-kept", run="tree-old", replicas=1, server={"image": "Training"})
        cluster.apply(kept, ns)
        for md in ("tree", "logreg", "tree-kept"):
            wait_for(
                lambda md=md: _status(cluster, ns, "modeldeployment", md).get("phase") == "Healthy",
                timeout=180,
                what=f"{md} served on the image that trained it",
            )
            differs = condition(cluster.get("modeldeployment", md, ns), "EnvironmentDiffers")
            assert differs and differs["status"] == "False", differs
    finally:
        operator.deploy()  # the upgrade: back to the current image, scikit-learn 1.9
        operator.wait_ready()

    def said(md: str) -> dict | None:
        found = condition(cluster.get("modeldeployment", md, ns), "EnvironmentDiffers")
        return found if found and found["status"] == "True" else None

    differs = wait_for(lambda: said("logreg"), timeout=60, what="logreg saying it is served on other libraries")
    assert "scikitLearn 1.3.2 (trained) != 1.9" in differs["message"], differs
    wait_for(
        lambda: _server_images(cluster, ns, "logreg") == {"mlops-operator:dev"},
        timeout=180,
        what="logreg's server rolled onto the current image, its golden rows predicted the same",
    )

    def stalled() -> str:
        words = _status(cluster, ns, "modeldeployment", "tree").get("serverUpgrade") or ""
        return words if words.startswith("stalled") and "refusing to serve" in words else ""

    words = wait_for(stalled, timeout=240, what="the tree's roll stalled, with what its new server said")
    assert "ModelNotReproducible" in words and "old pods keep serving" in words, words
    print(f"the tree's new server said: {words}")
    assert _server_images(cluster, ns, "tree") == {variant_image}, "the tree's old server no longer serves"
    status = _status(cluster, ns, "modeldeployment", "tree")
    assert status["phase"] == "Healthy" and status["stable"]["version"] == "tree-old", status
    events = cluster.json("get", "events", "-n", ns, "--field-selector", "reason=UpgradeStalled")["items"]
    assert any(e["involvedObject"]["name"] == "tree" for e in events), "no UpgradeStalled Event on tree"
    # spec.server.image Training: the same tree, served on the image that trained it, rolls nowhere.
    kept = _status(cluster, ns, "modeldeployment", "tree-kept")
    assert kept["phase"] == "Healthy" and not kept.get("serverUpgrade"), kept
    assert _server_images(cluster, ns, "tree-kept") == {variant_image}
    differs = condition(cluster.get("modeldeployment", "tree-kept", ns), "EnvironmentDiffers")
    assert differs["status"] == "False", differs
