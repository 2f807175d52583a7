"""Production data capture on the local cluster: two server replicas behind one Service write the rows they
predicted on and the labels posted back into the cluster's S3 server, each replica its own batches, every
labelled request joinable by the id of its receipt, whichever replica the label reached."""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request

import pytest

from support import (
    Kubectl,
    captured_records,
    model_deployment_manifest,
    s3_env,
    two_iris_versions,
    wait_for,
    wait_phase,
)

pytestmark = pytest.mark.usefixtures("operator")
ROW = [5.1, 3.5, 1.4, 0.2]


def post(url: str, body: dict) -> dict:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return json.load(response)
    except urllib.error.HTTPError as error:
        return {"status": error.code, **json.load(error)}


def receipt_id(token: str) -> str:
    """The id a receipt carries (its payload is base64url JSON, readable by anyone; only the servers sign it)."""
    payload = token.split(".")[0]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["id"]


def test_two_replicas_capture_rows_and_labels_into_object_storage(cluster: Kubectl, ns: str, monkeypatch) -> None:
    a, _ = two_iris_versions(cluster, ns, "capture")
    cluster.apply(model_deployment_manifest("captured", run=a, capture={"sampleRate": 1}), ns)

    def serving():
        s = (cluster.get("modeldeployment", "captured", ns) or {}).get("status") or {}
        return s if (s.get("stable") or {}).get("readyReplicas") == 2 else None

    s = wait_for(serving, timeout=180, what="two server pods ready")
    assert s["capture"].startswith("capturing 100% of the requests"), s["capture"]
    url = f"http://{cluster.get('service', 'captured', ns)['spec']['clusterIP']}/v2/models/iris"

    def answers() -> bool:
        try:
            return "outputs" in post(
                f"{url}/infer", {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP64", "data": [ROW]}]}
            )
        except OSError:
            return False

    def both_endpoints() -> bool:
        slices = cluster.json("get", "endpointslices", "-n", ns, "-l", "kubernetes.io/service-name=captured")["items"]
        ready = [e for s in slices for e in s.get("endpoints") or [] if (e.get("conditions") or {}).get("ready")]
        return len(ready) == 2

    wait_for(both_endpoints, timeout=60, what="both server pods behind the Service")
    wait_for(answers, timeout=60, what="kube-proxy to program the new Service")
    prefix = f"captures/{ns}/captured"
    from mlops_operator.storage import ArtifactStore

    env = s3_env()

    def writers() -> set[str]:
        """The pods that wrote batches (`<time>-<pod>-<seq>`)."""
        store = ArtifactStore.from_uri(f"s3://{env['MLOPS_S3_BUCKET']}/artifacts")
        return {path.rsplit("/", 1)[-1].split("-", 1)[1].rsplit("-", 1)[0] for path, _ in store.versions_under(prefix)}

    sent = 0
    receipts: dict[int, str] = {}  # request number -> receipt id

    def send_until_both_pods_wrote() -> set[str] | None:
        """Requests (each on a new connection: kube-proxy spreads them), 20 at a time, each labelled with its
        receipt (the label reaches either pod), until both pods wrote."""
        nonlocal sent
        for i in range(sent, sent + 20):
            answer = post(
                f"{url}/infer",
                {"id": f"r{i}", "inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP64", "data": [ROW]}]},
            )
            token = answer["parameters"]["receipt"]
            receipts[i] = receipt_id(token)
            scored = post(f"{url}/feedback", {"receipt": token, "labels": [0]})
            assert scored.get("labelled") == 1, scored
            refused = post(f"{url}/feedback", {"id": f"r{i}", "labels": [1]})  # the old id form: refused
            assert refused.get("status") == 400, refused
        sent += 20
        found = writers()
        return found if len(found) == 2 and sent >= 40 else None

    monkeypatch.setenv("AWS_ENDPOINT_URL", env["AWS_ENDPOINT_URL"])
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION"):
        monkeypatch.setenv(key, env[key])
    pods = wait_for(
        send_until_both_pods_wrote, timeout=120, interval=1, what="both replicas writing captured batches (every 5 s)"
    )
    assert all(p.startswith("captured-stable-") for p in pods), pods
    ids = set(receipts.values())
    assert len(ids) == sent, "every answer has a receipt of its own"

    def all_there():
        records = captured_records(prefix)
        predicted = {r["receipt"] for r in records if r["kind"] == "prediction"}
        labelled = {r["receipt"] for r in records if r["kind"] == "label"}
        return records if predicted >= ids and labelled >= ids else None

    records = wait_for(all_there, timeout=60, what=f"the {sent} requests and their labels captured")
    predictions = {r["receipt"]: r for r in records if r["kind"] == "prediction" and r["receipt"] in ids}
    labels = [r for r in records if r["kind"] == "label"]
    assert {r["receipt"] for r in labels} == set(predictions) == ids, "every labelled request joins by its receipt"
    assert all(r["labels"] == [0] and r["version"] == a for r in labels), "only the receipt form was captured"
    assert predictions[receipts[7]]["features"] == {
        "sepal_length_cm": 5.1,
        "sepal_width_cm": 3.5,
        "petal_length_cm": 1.4,
        "petal_width_cm": 0.2,
    }
    assert predictions[receipts[7]]["version"] == a and predictions[receipts[7]]["prediction"] == 0

    # A Dataset of the base version plus the labelled captured rows: a new version, checked like any other.
    source = {"capture": {"base": "iris", "modelDeployment": "captured"}}
    live = {
        "apiVersion": "mlops.dev/v1alpha1",
        "kind": "Dataset",
        "metadata": {"name": "iris-live"},
        "spec": {"source": source, "target": "target"},
    }
    cluster.apply(json.dumps(live), ns)
    checked = wait_phase(cluster, "dataset", "iris-live", ns, ("Ready", "Failed"), timeout=120)
    base = cluster.get("dataset", "iris", ns)["status"]
    assert checked["status"]["phase"] == "Ready", checked["status"]
    assert checked["status"]["rows"] == base["rows"] + sent and checked["status"]["version"] != base["version"]
