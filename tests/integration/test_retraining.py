"""Continuous training on the local cluster: drifted traffic (judged by real Prometheus) creates one
retraining run — not two: the cooldown — on a Dataset holding the captured labelled rows, whose model is
promoted and canaried; a run that fails its gate leaves serving untouched; Suggest records and creates
nothing."""

from __future__ import annotations

import json

import pytest

from support import REPO, Kubectl, LabelledTraffic, captured_records, training_run_manifest, wait_for, wait_phase

pytestmark = pytest.mark.usefixtures("operator")
DRIFTED = [[7.7, 3.8, 6.7, 2.2], [7.9, 3.8, 6.4, 2.0], [7.7, 2.6, 6.9, 2.3]]  # the far corner of iris: virginica
PASSING = {"name": "always-passes", "query": "vector(0)", "successCondition": "result == 0"}
LR = "sklearn.linear_model.LogisticRegression"


@pytest.fixture(scope="module")
def champion(cluster: Kubectl, ns: str) -> str:
    cluster.apply((REPO / "examples/dataset-iris.yaml").read_text(), ns)
    cluster.apply(training_run_manifest("seed", LR), ns)
    wait_phase(cluster, "trainingrun", "seed", ns, ("Succeeded",), timeout=240)
    wait_for(
        lambda: (
            (cluster.get("trainingrun", "seed", ns)["metadata"].get("labels") or {}).get("mlops.dev/promoted") == "true"
        ),
        timeout=60,
        what="seed promoted: the champion",
    )
    return "seed"


def deployment(name: str, retraining: dict, **spec) -> str:
    steps = [{"setWeight": 50}, {"pause": {"duration": "5s"}}]
    body = {
        "apiVersion": "mlops.dev/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": name},
        "spec": {
            "model": {"name": "iris"},
            "replicas": 1,
            "postPromotion": {"enabled": False},
            "strategy": {"canary": {"steps": steps}},
            "analysis": {"interval": "5s", "metrics": [PASSING]},
            "retraining": retraining,
            **spec,
        },
    }
    return json.dumps(body)


def status(cluster: Kubectl, ns: str, name: str) -> dict:
    return (cluster.get("modeldeployment", name, ns) or {}).get("status") or {}


def retraining_runs(cluster: Kubectl, ns: str, md: str) -> list[dict]:
    return cluster.json("get", "trainingruns", "-n", ns, "-l", f"mlops.dev/retraining-for={md}")["items"]


def test_drift_retrains_once_on_the_captured_rows_and_the_new_model_is_canaried(cluster, ns, champion) -> None:
    template = {"datasetRef": {"name": "iris-live"}, "model": {"name": "iris", "estimator": LR, "params": {"C": 2}}}
    retraining = {
        "mode": "Auto",
        "template": template,
        "cooldown": "1h",
        "checkInterval": "10s",
        "triggers": {"drift": {"threshold": 0.5, "for": "1m"}},
    }
    cluster.apply(deployment("loop", retraining, capture={}), ns)
    wait_for(
        lambda: (status(cluster, ns, "loop").get("stable") or {}).get("readyReplicas"),
        timeout=180,
        what="the champion served",
    )
    url = f"http://{cluster.get('service', 'loop', ns)['spec']['clusterIP']}/v2/models/iris"
    with LabelledTraffic(url, DRIFTED, lambda *_: [2, 2, 2], by_id=True):  # labelled by id: captured
        wait_for(lambda: captured_records(f"captures/{ns}/loop"), timeout=60, interval=1, what="captured batches")
        source = {"capture": {"base": "iris", "modelDeployment": "loop"}}
        live = {
            "apiVersion": "mlops.dev/v1alpha1",
            "kind": "Dataset",
            "metadata": {"name": "iris-live"},
            "spec": {"source": source, "target": "target"},
        }
        cluster.apply(json.dumps(live), ns)
        dataset = wait_phase(cluster, "dataset", "iris-live", ns, ("Ready",), timeout=120)["status"]
        base = cluster.get("dataset", "iris", ns)["status"]
        assert dataset["rows"] > base["rows"], "the Dataset holds the captured labelled rows"
        runs = wait_for(
            lambda: retraining_runs(cluster, ns, "loop"), timeout=180, what="drift above 0.5 to create a retraining run"
        )
        [run] = runs
        assert run["metadata"]["name"] == "loop-retrain-1" and not run["metadata"].get("ownerReferences")
        evidence = json.loads(run["metadata"]["annotations"]["mlops.dev/retraining-trigger"])
        assert evidence["trigger"] == "drift" and evidence["value"] > 0.5 and evidence["window"] == "1m", evidence
        # The run is created first, then the decision recorded in status (two writes): wait for the second.
        [event] = wait_for(
            lambda: (status(cluster, ns, "loop").get("retraining") or {}).get("history"),
            timeout=30,
            what="the retraining decision recorded in status.retraining.history",
        )
        assert (event["decision"], event["run"], event["trigger"]) == ("Created", "loop-retrain-1", "drift")
        trained = wait_phase(cluster, "trainingrun", "loop-retrain-1", ns, ("Succeeded",), timeout=240)
        # it trains on data read after the trigger fired (the Dataset was asked to read its source again),
        # which holds the drifted rows that fired it, not the version of before
        fired_at = run["spec"]["datasetRef"]["readAfter"]
        assert evidence["trainsOnDataReadAfter"] == fired_at
        pin = trained["status"]["dataset"]
        assert pin["readAt"] >= fired_at, (pin, fired_at)
        history = cluster.get("dataset", "iris-live", ns)["status"]["history"]
        assert pin["version"] in [h["version"] for h in history]

        def retrained_stable():
            s = status(cluster, ns, "loop")
            return s if s.get("stable", {}).get("version") == "loop-retrain-1" else None

        promoted = wait_for(retrained_stable, timeout=240, what="the retrained model canaried to 100 %")
        assert promoted["history"][0]["outcome"] == "Promoted"
        # drift goes on with the new version too, but the cooldown holds: still one run
        # (the new version's pods must first have a minute of drift series: `for: 1m`, as the first trigger)
        waiting = wait_for(
            lambda: status(cluster, ns, "loop")["retraining"].get("waiting") or "",
            timeout=240,
            what="the next trigger held by the cooldown",
        )
        assert "cooldown" in waiting or "in flight" in waiting, waiting
        assert len(retraining_runs(cluster, ns, "loop")) == 1


def test_a_run_that_fails_its_gate_leaves_serving_untouched(cluster, ns, champion) -> None:
    template = {
        "datasetRef": {"name": "iris"},
        "model": {"name": "iris", "estimator": LR},
        "promotion": {"beatChampion": {"metric": "accuracy", "margin": 0.5}},
    }
    retraining = {"mode": "Auto", "template": template, "checkInterval": "10s", "triggers": {"schedule": "* * * * *"}}
    cluster.apply(deployment("gate", retraining), ns)
    served = wait_for(
        lambda: (status(cluster, ns, "gate").get("stable") or {}).get("version"),
        timeout=120,
        what="the champion served",
    )
    run = wait_for(lambda: retraining_runs(cluster, ns, "gate"), timeout=150, what="the scheduled run")[0]
    name = run["metadata"]["name"]
    done = wait_phase(cluster, "trainingrun", name, ns, ("Succeeded",), timeout=240)
    decided = wait_for(
        lambda: (cluster.get("trainingrun", name, ns)["status"].get("promotion") or {}).get("decision"),
        timeout=60,
        what="the promotion decision",
    )
    assert decided != "Promoted", done["status"]
    s = status(cluster, ns, "gate")
    assert s["stable"]["version"] == served and not s.get("canary"), s


def test_suggest_records_what_it_would_do_and_creates_nothing(cluster, ns, champion) -> None:
    template = {"datasetRef": {"name": "iris"}, "model": {"name": "iris", "estimator": LR}}
    retraining = {
        "mode": "Suggest",
        "template": template,
        "checkInterval": "10s",
        "triggers": {"schedule": "* * * * *"},
    }
    cluster.apply(deployment("suggest", retraining), ns)
    history = wait_for(
        lambda: (status(cluster, ns, "suggest").get("retraining") or {}).get("history"),
        timeout=150,
        what="a suggestion recorded",
    )
    assert history[0]["decision"] == "Suggested" and history[0]["run"] == "suggest-retrain-1"
    assert history[0]["trigger"] == "schedule"
    assert retraining_runs(cluster, ns, "suggest") == [] and cluster.get("trainingrun", "suggest-retrain-1", ns) is None
