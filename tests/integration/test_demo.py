"""The README's first command cannot rot: `make demo` is `make deploy` (the operator fixture runs the
same hack/deploy.sh) followed by hack/demo.py, which this test runs and reads as a user would."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.parse
import urllib.request

import pytest

from support import REPO, Kubectl

pytestmark = pytest.mark.usefixtures("operator")


@pytest.fixture(scope="module", autouse=True)
def demo_namespace_goes_afterwards(cluster: Kubectl):
    """A user keeps what `make demo` left to look at; the suite removes it once read, so that its servers
    do not share the machine with the modules still running (the next demo starts afresh anyway)."""
    yield
    cluster.run("delete", "namespace", "mlops-demo", "--wait=false", check=False)


def test_the_demo_tells_the_whole_lifecycle(cluster: Kubectl) -> None:
    done = subprocess.run([sys.executable, str(REPO / "hack/demo.py")], capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, f"the demo failed:\n{done.stdout}\n{done.stderr}"
    out = done.stdout
    for words in (
        "✓ validated",
        "✓ champion: iris-stump, the better of the two",
        "✓ iris-stump serves 100 %",
        "canary iris-logreg at 25 %",
        "canary iris-logreg at 50 %",
        "✓ iris-logreg is stable at 100 %",
        "✓ Dataset iris-live: iris (150 rows) + ",
        "above 0.5 for 1m: the operator created TrainingRun iris-retrain-1",
        "vs champion iris-logreg's",
        "canary iris-retrain-1 at 25 %",
        "✓ iris-retrain-1 is stable at 100 %",
        "Retraining:",
        "✓ rolled back automatically",
        "✓ stable is still iris-retrain-1",
        "make cluster-down",
    ):
        assert words in out, f"{words!r} is missing from the demo's output:\n{out}"
    md = cluster.get("modeldeployment", "iris", "mlops-demo")["status"]
    assert [(h["version"], h["outcome"]) for h in md["history"][:3]] == [
        ("iris-guess", "RolledBack"),
        ("iris-retrain-1", "Promoted"),
        ("iris-logreg", "Promoted"),
    ]
    assert md["stable"]["version"] == "iris-retrain-1" and "iris-guess" in md["failedVersions"]
    [event] = md["retraining"]["history"]
    assert (event["decision"], event["run"], event["trigger"]) == ("Created", "iris-retrain-1", "drift"), event
    retrained = cluster.get("trainingrun", "iris-retrain-1", "mlops-demo")
    assert retrained["metadata"]["labels"]["mlops.dev/retraining-for"] == "iris"
    live = cluster.get("dataset", "iris-live", "mlops-demo")["status"]
    assert retrained["status"]["dataset"]["name"] == "iris-live" and live["rows"] > 150, live
    [line] = [line for line in out.splitlines() if "iris-retrain-1: trained on iris-live" in line]
    assert "Promoted: gates passed" in line, line  # since superseded by iris-guess, promoted offline after it


def test_the_dashboard_plots_what_the_demo_produced(cluster: Kubectl, prometheus: str) -> None:
    """Every panel of the chart's Grafana dashboard is valid PromQL on the real Prometheus, and the
    panels a rollout is watched on have data for the demo's model."""
    dashboard = json.loads((REPO / "charts/mlops-operator/dashboards/mlops-canary.json").read_text())
    answered = {}
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            query = target["expr"].replace("$namespace", "mlops-demo").replace("$model", "iris")
            url = f"{prometheus}/api/v1/query?" + urllib.parse.urlencode({"query": query})
            with urllib.request.urlopen(url, timeout=10) as response:
                body = json.load(response)
            assert body["status"] == "success", f"{panel['title']}: {body}"
            answered[panel["title"]] = body["data"]["result"]
    for title in ("Request rate by version", "p95 latency by version", "Canary weight"):
        assert answered[title], f"the panel {title!r} has no data after the demo"
