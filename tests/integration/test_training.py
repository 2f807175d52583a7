"""Datasets and training on the local cluster with real Job pods: the Dataset → TrainingRun → champion
path, a better run taking the title, a worse one rejected, and bad inputs that each end in the right
reason while earlier dataset versions and the champion stay intact.
"""

from __future__ import annotations

import functools
import hashlib
import http.server
import json
import subprocess
import threading
from collections.abc import Iterator

import pytest

from support import REPO, Kubectl, add_artifact_volume, artifact_path, condition, wait_for, wait_phase
from support import champions as _champions
from support import training_run_manifest as _run

pytestmark = pytest.mark.usefixtures("operator")


def _dataset(name: str, source: dict, **spec) -> str:
    body = {
        "apiVersion": "mlops.dev/v1alpha1",
        "kind": "Dataset",
        "metadata": {"name": name},
        "spec": {"source": source, **spec},
    }
    return json.dumps(body)


@pytest.fixture(scope="module")
def csv_server(cluster: Kubectl, tmp_path_factory) -> Iterator[tuple[str, dict]]:
    """An HTTP server on the node's address serving CSV files to the check Jobs' pods."""
    root = tmp_path_factory.mktemp("csv")
    iris = (REPO / "tests/integration/data/iris.csv").read_bytes()
    big = b"a,b,c,d,target\n" + b"".join(
        b"%d.5,%d,%d.25,%d,%d\n" % (i % 97, i % 13, i % 7, i % 5, i % 3) for i in range(600_000)
    )
    files = {
        "big.csv": big,
        "iris.csv": iris,
        "bad-values.csv": iris.replace(b"5.1,3.5,1.4,0.2,0", b"5.1,abc,1.4,0.2,0", 1),
        "no-target.csv": b"a,b\n1,2\n3,4\n",
    }
    for filename, content in files.items():
        (root / filename).write_bytes(content)
    node = cluster.json("get", "node", "mlops-node")  # node 1 shares the host's network: its IP is the host's
    address = next(a["address"] for a in node["status"]["addresses"] if a["type"] == "InternalIP")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer((address, 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://{address}:{server.server_address[1]}", {k: hashlib.sha256(v).hexdigest() for k, v in files.items()}
    server.shutdown()


def test_dataset_is_validated_versioned_and_profiled(cluster: Kubectl, ns: str) -> None:
    cluster.apply((REPO / "examples/dataset-iris.yaml").read_text(), ns)
    ds = wait_phase(cluster, "dataset", "iris", ns, ("Ready", "Failed"))
    assert condition(ds, "Ready")["status"] == "True", ds["status"]
    cluster.run("wait", "--for=condition=Ready", "dset/iris", "-n", ns, "--timeout=10s")  # as a user waits
    status = ds["status"]
    assert status["rows"] == 150 and status["version"].startswith("sha256:")
    assert status["columns"] == ["sepal_length_cm", "sepal_width_cm", "petal_length_cm", "petal_width_cm"]
    snapshot = artifact_path(ns, status["snapshotUri"])
    assert "sha256:" + hashlib.sha256(snapshot.read_bytes()).hexdigest() == status["version"]
    profile = json.loads(artifact_path(ns, status["profileRef"]).read_text())
    assert profile["target"]["shares"] == {
        "0": pytest.approx(1 / 3),
        "1": pytest.approx(1 / 3),
        "2": pytest.approx(1 / 3),
    }
    assert [h["version"] for h in status["history"]] == [status["version"]]


def test_first_run_becomes_champion_and_a_better_run_takes_over(cluster: Kubectl, ns: str) -> None:
    cluster.apply((REPO / "examples/trainingrun-iris-dummy.yaml").read_text(), ns)
    baseline = wait_phase(cluster, "trainingrun", "iris-baseline", ns, ("Succeeded", "Failed"))
    assert baseline["status"]["phase"] == "Succeeded", baseline["status"]
    wait_for(lambda: _champions(cluster, ns) == ["iris-baseline"], timeout=30, what="iris-baseline as champion")

    cluster.apply((REPO / "examples/trainingrun-iris-logreg.yaml").read_text(), ns)
    logreg = wait_phase(cluster, "trainingrun", "iris-logreg", ns, ("Succeeded", "Failed"))
    status = logreg["status"]
    promotion = wait_for(
        lambda: (
            (cluster.get("trainingrun", "iris-logreg", ns)["status"].get("promotion") or {}).get("decision")
            and cluster.get("trainingrun", "iris-logreg", ns)["status"]["promotion"]
        ),
        timeout=30,
        what="a promotion decision",
    )
    assert promotion["decision"] == "Promoted", promotion
    assert (promotion["champion"], promotion["metric"]) == ("iris-baseline", "accuracy")
    assert promotion["value"] > promotion["championValue"] + 0.05
    wait_for(lambda: _champions(cluster, ns) == ["iris-logreg"], timeout=30, what="exactly one champion: iris-logreg")
    # The former champion's record says it lost the title; its Promoted condition and its label follow.
    former = wait_for(
        lambda: (
            (b := cluster.get("trainingrun", "iris-baseline", ns))["status"]["promotion"]["decision"] == "Superseded"
            and b
        ),
        timeout=30,
        what="iris-baseline marked Superseded",
    )
    record = former["status"]["promotion"]
    assert (record["reason"], record["message"]) == ("Superseded", "iris-logreg became the champion")
    promoted = condition(former, "Promoted")
    assert (promoted["status"], promoted["reason"]) == ("False", "Superseded"), promoted
    assert (former["metadata"].get("labels") or {}).get("mlops.dev/promoted") != "true"
    # Lineage and the stored model: the dataset version pinned, the file's sha256 as recorded.
    ds = cluster.get("dataset", "iris", ns)
    assert status["dataset"]["version"] == ds["status"]["version"]
    model_dir = artifact_path(ns, status["model"]["uri"])
    manifest = json.loads((model_dir / "MANIFEST.json").read_bytes())
    assert hashlib.sha256((model_dir / "MANIFEST.json").read_bytes()).hexdigest() == status["model"]["sha256"]
    assert set(manifest["files"]) >= {"model.skops", "metadata.json"}, manifest
    for filename, digest in manifest["files"].items():
        assert hashlib.sha256((model_dir / filename).read_bytes()).hexdigest() == digest, filename
    metadata = json.loads((model_dir / "metadata.json").read_text())
    assert metadata["dataset"]["version"] == ds["status"]["version"]
    assert metadata["metrics"] == status["metrics"]
    # What it was trained with: the image's libraries, installed from the lock the repository holds.
    environment = status["model"]["environment"]
    assert environment == metadata["environment"], (environment, metadata["environment"])
    assert environment["lockSha256"] == hashlib.sha256((REPO / "requirements.lock").read_bytes()).hexdigest()
    assert environment["image"] == "mlops-operator:dev" and environment["python"].startswith("3.11")
    locked = (REPO / "requirements.lock").read_text()
    for library, distribution in (("scikitLearn", "scikit-learn"), ("numpy", "numpy"), ("skops", "skops")):
        assert f"{distribution}=={environment[library]} " in locked, (library, environment[library])
    assert condition(logreg, "Ready")["status"] == "True"
    cluster.run("wait", "--for=condition=Ready", "trainingrun/iris-logreg", "-n", ns, "--timeout=10s")


def test_worse_run_is_rejected_with_both_values(cluster: Kubectl, ns: str) -> None:
    cluster.apply(
        _run(
            "iris-uniform",
            "sklearn.dummy.DummyClassifier",
            params={"strategy": "uniform"},
            promotion={"beatChampion": {"metric": "accuracy"}},
        ),
        ns,
    )
    wait_phase(cluster, "trainingrun", "iris-uniform", ns, ("Succeeded",))
    promotion = wait_for(
        lambda: cluster.get("trainingrun", "iris-uniform", ns)["status"].get("promotion"),
        timeout=30,
        what="a promotion decision",
    )
    assert (promotion["decision"], promotion["reason"]) == ("Rejected", "NotBetterThanChampion")
    # Both scored on the same rows: the champion's figure is the one this run's Job measured on its own
    # held-out rows when the two were split differently, else the champion's recorded one.
    status = cluster.get("trainingrun", "iris-uniform", ns)["status"]
    logreg = cluster.get("trainingrun", "iris-logreg", ns)["status"]["metrics"]["accuracy"]
    theirs = (status.get("championScores") or {}).get("metrics", {}).get("accuracy", logreg)
    assert f"{promotion['value']:.4g}" in promotion["message"] and f"{theirs:.4g}" in promotion["message"]
    assert promotion["champion"] == "iris-logreg" and promotion["championValue"] == theirs
    assert "both scored on" in promotion["message"], promotion["message"]
    assert _champions(cluster, ns) == ["iris-logreg"]


def test_manual_promotion_waits_for_approval(cluster: Kubectl, ns: str) -> None:
    cluster.apply(
        _run(
            "wine-forest",
            "sklearn.ensemble.RandomForestClassifier",
            model="wine",
            dataset="wine",
            params={"n_estimators": 20},
            promotion={"policy": "manual", "gates": [{"metric": "accuracy", "min": 0.8}]},
        ),
        ns,
    )
    cluster.apply(_dataset("wine", {"builtin": {"name": "wine"}}), ns)
    wait_phase(cluster, "trainingrun", "wine-forest", ns, ("Succeeded",))
    pending = wait_for(
        lambda: (cluster.get("trainingrun", "wine-forest", ns)["status"].get("promotion") or {}).get("decision"),
        timeout=30,
        what="a promotion decision",
    )
    assert pending == "PendingApproval"
    assert _champions(cluster, ns, "wine") == []
    cluster.run("annotate", "trainingrun", "wine-forest", "-n", ns, "mlops.dev/approved=true")
    wait_for(lambda: _champions(cluster, ns, "wine") == ["wine-forest"], timeout=30, what="approved run promoted")
    assert cluster.get("trainingrun", "wine-forest", ns)["status"]["promotion"]["reason"] == "Approved"


# --- bad inputs: each ends in the right reason, and nothing earlier is lost ----------------------


def test_operator_keeps_reconciling_during_a_large_validation(cluster: Kubectl, ns: str, csv_server) -> None:
    base, _ = csv_server
    columns = [{"name": n, "type": "float", "min": 0, "max": 100} for n in "abcd"]
    cluster.apply(_dataset("big", {"url": {"url": f"{base}/big.csv"}}, schema={"columns": columns}), ns)

    def active_check(name: str) -> str | None:
        return ((cluster.get("dataset", name, ns) or {}).get("status") or {}).get("activeCheck")

    wait_for(lambda: active_check("big"), timeout=30, what="big's check Job")
    cluster.apply(_dataset("small", {"builtin": {"name": "breast_cancer"}}), ns)
    both = wait_for(
        lambda: (
            (small := (cluster.get("dataset", "small", ns) or {}).get("status") or {}).get("activeCheck")
            and ((cluster.get("dataset", "big", ns) or {}).get("status") or {}).get("activeCheck")
            and small
        ),
        timeout=30,
        what="a check of the small dataset started while the big one is still being validated",
    )
    assert both["activeCheck"].startswith("small-check-")
    big = wait_phase(cluster, "dataset", "big", ns, ("Ready", "Failed"), timeout=180)["status"]
    assert big["phase"] == "Ready" and big["rows"] == 600_000, big.get("lastCheck")


def test_run_on_a_dataset_that_never_appears_fails_after_its_wait(cluster: Kubectl, ns: str) -> None:
    cluster.apply(_run("orphan", "sklearn.svm.SVC", dataset="no-such-dataset", datasetWaitSeconds=3), ns)
    run = wait_phase(cluster, "trainingrun", "orphan", ns, ("Failed",), timeout=60)["status"]
    assert run["reason"] == "DatasetNotReady"
    assert "Dataset no-such-dataset does not exist after waiting 3s" in run["message"]
    assert cluster.get("job", "orphan-train", ns) is None


def test_bad_url_scheme_and_unknown_estimator_are_refused_by_the_api_server(cluster: Kubectl, ns: str) -> None:
    bad_url = cluster.run(
        "apply", "-n", ns, "-f", "-", input=_dataset("ftp", {"url": {"url": "ftp://x/y.csv"}}), check=False
    )
    assert bad_url.returncode != 0 and "spec.source.url.url" in bad_url.stderr
    bad_estimator = cluster.run("apply", "-n", ns, "-f", "-", input=_run("evil", "os.system"), check=False)
    assert bad_estimator.returncode != 0 and "spec.model.estimator" in bad_estimator.stderr
    assert cluster.get("job", "evil-train", ns) is None


@pytest.mark.parametrize(
    ("name", "source", "reason", "words"),
    [
        ("unreachable", {"url": {"url": "http://127.0.0.1:9/iris.csv"}}, "SourceUnavailable", "cannot fetch"),
        ("checksum", {"url": {"url": "{base}/iris.csv", "sha256": "0" * 64}}, "ChecksumMismatch", "has sha256"),
        (
            "bad-values",
            {"url": {"url": "{base}/bad-values.csv"}},
            "SchemaViolation",
            "column 'sepal_width_cm': row 1: 'abc' is not a float",
        ),
        ("no-target", {"url": {"url": "{base}/no-target.csv"}}, "SchemaViolation", "target column 'target'"),
        (
            "missing-configmap",
            {"configMap": {"name": "nope", "key": "data.csv"}},
            "SourceUnavailable",
            "ConfigMap nope does not exist",
        ),
    ],
)
def test_bad_dataset_source_is_reported(cluster: Kubectl, ns: str, csv_server, name, source, reason, words) -> None:
    base, _ = csv_server
    source = json.loads(json.dumps(source).replace("{base}", base))
    schema = {"columns": [{"name": "sepal_width_cm", "type": "float"}]} if name == "bad-values" else None
    cluster.apply(_dataset(name, source, **({"schema": schema} if schema else {})), ns)
    ds = wait_phase(cluster, "dataset", name, ns, ("Failed", "Ready"))
    ready = condition(ds, "Ready")
    assert (ready["status"], ready["reason"]) == ("False", reason), ready
    assert words in ready["message"], ready["message"]
    assert "no version is available" in ready["message"]
    assert ds["status"].get("version") is None


def test_failed_refresh_keeps_the_last_good_version(cluster: Kubectl, ns: str) -> None:
    csv = (REPO / "tests/integration/data/iris.csv").read_text()
    cluster.run("create", "configmap", "iris-csv", "-n", ns, f"--from-literal=data.csv={csv}")
    schema = {"columns": [{"name": "petal_width_cm", "type": "float", "min": 0}]}
    cluster.apply(_dataset("iris-cm", {"configMap": {"name": "iris-csv", "key": "data.csv"}}, schema=schema), ns)
    first = wait_phase(cluster, "dataset", "iris-cm", ns, ("Ready", "Failed"))["status"]
    assert first["phase"] == "Ready", first
    # A broken edit: the new content fails the schema; the dataset keeps its version and history.
    broken = csv.replace("0.2,0\n", "-7,0\n", 1)
    cluster.apply(
        json.dumps(
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "iris-csv"}, "data": {"data.csv": broken}}
        ),
        ns,
    )
    # A spec change makes a check due at once (otherwise the source is re-read every refreshInterval).
    cluster.run("patch", "dataset", "iris-cm", "-n", ns, "--type=merge", "-p", '{"spec":{"refreshInterval":"11m"}}')
    failed = wait_phase(cluster, "dataset", "iris-cm", ns, ("Failed",))["status"]
    assert failed["version"] == first["version"] and failed["history"] == first["history"]
    assert (
        "petal_width_cm" in failed["lastCheck"]["message"] and "below the minimum 0" in failed["lastCheck"]["message"]
    )
    # A good edit: a new version joins the history.
    fixed = csv + "5.0,3.0,1.5,0.2,0\n"
    cluster.apply(
        json.dumps(
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "iris-csv"}, "data": {"data.csv": fixed}}
        ),
        ns,
    )
    cluster.run("patch", "dataset", "iris-cm", "-n", ns, "--type=merge", "-p", '{"spec":{"refreshInterval":"12m"}}')
    ready = wait_phase(cluster, "dataset", "iris-cm", ns, ("Ready",))["status"]
    assert ready["version"] != first["version"]
    assert [h["version"] for h in ready["history"]] == [ready["version"], first["version"]]


def test_pvc_source_is_read_from_the_claim(cluster: Kubectl, ns: str) -> None:
    from support import STATE

    made = subprocess.run(
        ["python3", str(REPO / "hack/localcluster/cluster.py"), "volume", ns, "raw-data"],
        capture_output=True,
        text=True,
    )
    assert made.returncode == 0, made.stderr
    folder = STATE / "volumes" / ns / "raw-data" / "2026"
    folder.mkdir()
    (folder / "iris.csv").write_bytes((REPO / "tests/integration/data/iris.csv").read_bytes())
    cluster.apply(_dataset("iris-pvc", {"pvc": {"claimName": "raw-data", "path": "2026/iris.csv"}}), ns)
    ds = wait_phase(cluster, "dataset", "iris-pvc", ns, ("Ready", "Failed"))["status"]
    assert ds["phase"] == "Ready", ds.get("lastCheck")
    assert ds["version"] == cluster.get("dataset", "iris", ns)["status"]["version"], "same data, same version"


def test_a_pvc_source_on_the_artifact_claim_fails_at_once_saying_why(cluster: Kubectl, namespace: str) -> None:
    """The check Job mounts the artifact claim already; a pod with one claim twice would never start."""
    ns = namespace  # its artifact store is the claim mlops-artifacts
    add_artifact_volume(ns)
    cluster.apply(_dataset("iris-store", {"pvc": {"claimName": "mlops-artifacts", "path": "iris.csv"}}), ns)
    ds = wait_phase(cluster, "dataset", "iris-store", ns, ("Ready", "Failed"), timeout=30)
    ready = condition(ds, "Ready")
    assert (ds["status"]["phase"], ready["reason"]) == ("Failed", "SourceUnavailable"), ready
    assert "PersistentVolumeClaim mlops-artifacts is the artifact store" in ready["message"], ready["message"]
    assert not ds["status"].get("activeCheck") and ds["status"].get("checks", 0) == 0, "no check Job was started"
    jobs = cluster.json("get", "jobs", "-n", ns, "-l", "mlops.dev/dataset=iris-store")["items"]
    assert jobs == [], [j["metadata"]["name"] for j in jobs]


def test_params_that_make_fit_fail_end_in_job_failed_without_retries(cluster: Kubectl, ns: str) -> None:
    cluster.apply(_run("iris-bad-c", "sklearn.linear_model.LogisticRegression", params={"C": -1}, backoffLimit=3), ns)
    run = wait_phase(cluster, "trainingrun", "iris-bad-c", ns, ("Failed", "Succeeded"))["status"]
    ready = condition({"status": run}, "Ready")
    assert (run["phase"], ready["reason"]) == ("Failed", "JobFailed")
    assert "'C' parameter of LogisticRegression must be a float" in ready["message"]
    assert run["attempts"] == 1, "a permanent error must not be retried"


def test_training_past_its_deadline_ends_in_deadline_exceeded(cluster: Kubectl, ns: str) -> None:
    cluster.apply(
        _run(
            "digits-slow",
            "sklearn.ensemble.GradientBoostingClassifier",
            model="digits",
            dataset="digits",
            params={"n_estimators": 3000},
            activeDeadlineSeconds=10,
        ),
        ns,
    )
    cluster.apply(_dataset("digits", {"builtin": {"name": "digits"}}), ns)
    run = wait_phase(cluster, "trainingrun", "digits-slow", ns, ("Failed", "Succeeded"), timeout=180)["status"]
    assert (run["phase"], run["reason"]) == ("Failed", "DeadlineExceeded"), run
    assert "activeDeadlineSeconds=10" in run["message"]


def test_deleting_a_run_deletes_its_job_but_not_its_model(cluster: Kubectl, ns: str) -> None:
    run = cluster.get("trainingrun", "iris-uniform", ns)["status"]
    model_dir = artifact_path(ns, run["model"]["uri"])
    cluster.run("delete", "trainingrun", "iris-uniform", "-n", ns, "--wait=true", "--timeout=60s")
    wait_for(lambda: cluster.get("job", "iris-uniform-train", ns) is None, timeout=60, what="the Job to be collected")
    assert (model_dir / "model.skops").exists() and (model_dir / "metadata.json").exists()


def test_nothing_was_lost(cluster: Kubectl, ns: str) -> None:
    """After every failure above: the iris dataset keeps its version, the champion is unchanged."""
    ds = cluster.get("dataset", "iris", ns)
    assert ds["status"]["phase"] == "Ready" and len(ds["status"]["history"]) == 1
    assert _champions(cluster, ns) == ["iris-logreg"]
    assert _champions(cluster, ns, "wine") == ["wine-forest"]
