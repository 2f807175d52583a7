"""Feedback on the local cluster needs a receipt the ModelDeployment's servers issued (issue 23, item 1).

The attack: anyone who reaches the Service posts hundreds of labels that say the model was wrong — in the
echoed form (the client supplies the predictions too), the id form, a made-up receipt, a real receipt with
its predictions altered, another deployment's receipt. Every one is refused with a 4xx, counted in
mlops_feedback_refused_total, and no quality series of any version moves. Real receipts, meanwhile, are
scored by whichever pod they reach: during a canary, a label for the canary's prediction that reaches a
stable pod counts for the canary's version.

The server pods get their key from the Secret the operator creates per ModelDeployment; the metrics are
read from each pod's /metrics (by pod IP, summed over pods), so nothing waits for a scrape.
"""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request

import pytest

from support import Kubectl, answers, model_deployment_manifest, two_iris_versions, wait_for

pytestmark = pytest.mark.usefixtures("operator")
ROWS = [[5.1, 3.5, 1.4, 0.2], [6.0, 2.9, 4.5, 1.5], [6.7, 3.0, 5.2, 2.3]]
QUALITY = (
    "mlops_feedback_labels_total",
    "mlops_feedback_correct_total",
    "mlops_feedback_confusion_total",
    "mlops_accuracy",
)
PAUSED_AT_HALF = {"canary": {"steps": [{"setWeight": 50}, {"pause": {}}]}}


def post(url: str, body: object) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


def infer(base: str) -> dict:
    body = {"inputs": [{"name": "x", "shape": [len(ROWS), 4], "datatype": "FP64", "data": ROWS}]}
    status, answer = post(f"{base}/infer", body)
    assert status == 200, answer
    return answer


def payload(token: str) -> dict:
    part = token.split(".")[0]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def altered(token: str, **changes: object) -> str:
    """A real receipt with its payload changed and its signature kept."""
    part = base64.urlsafe_b64encode(json.dumps({**payload(token), **changes}, separators=(",", ":")).encode())
    return f"{part.rstrip(b'=').decode()}.{token.split('.')[1]}"


def pods(cluster: Kubectl, ns: str, name: str) -> dict[str, dict]:
    """The ModelDeployment's running server pods by name: IP, variant and version."""
    items = cluster.json("get", "pods", "-n", ns, "-l", f"mlops.dev/deployment={name}")["items"]
    return {
        p["metadata"]["name"]: {"ip": p["status"].get("podIP"), **p["metadata"]["labels"]}
        for p in items
        if not p["metadata"].get("deletionTimestamp") and p["status"].get("phase") == "Running"
    }


def samples(ip: str) -> dict[tuple[str, str], float]:
    """A pod's /metrics: (name, labels) -> value."""
    with urllib.request.urlopen(f"http://{ip}:8080/metrics", timeout=5) as response:
        text = response.read().decode()
    found = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            series, value = line.rsplit(" ", 1)
            name, _, labels = series.partition("{")
            found[(name, labels)] = float(value)
    return found


def summed(ips: list[str]) -> dict[tuple[str, str], float]:
    total: dict[tuple[str, str], float] = {}
    for ip in ips:
        for key, value in samples(ip).items():
            total[key] = total.get(key, 0.0) + value
    return total


def quality(ips: list[str]) -> dict[tuple[str, str], float]:
    return {key: value for key, value in summed(ips).items() if key[0] in QUALITY}


def refused(ips: list[str]) -> float:
    return sum(v for (name, _), v in summed(ips).items() if name == "mlops_feedback_refused_total")


def labelled(ip: str, version: str) -> float:
    return sum(
        v
        for (name, labels), v in samples(ip).items()
        if name == "mlops_feedback_labels_total" and f'version="{version}"' in labels
    )


def two_ready_pods(cluster: Kubectl, ns: str, name: str, *, canary: bool = False) -> dict[str, dict]:
    def ready() -> dict | None:
        found = pods(cluster, ns, name)
        variants = {p.get("mlops.dev/variant") for p in found.values()}
        if len(found) != 2 or (canary and variants != {"stable", "canary"}) or not all(p["ip"] for p in found.values()):
            return None
        try:
            return found if all(samples(p["ip"]) for p in found.values()) else None
        except OSError:
            return None

    return wait_for(
        ready, timeout=240, what=f"two server pods of {name} answering" + (" (stable and canary)" if canary else "")
    )


def test_forged_feedback_is_refused_and_moves_no_quality_series(cluster: Kubectl, ns: str) -> None:
    a, _ = two_iris_versions(cluster, ns, "receipts")
    cluster.apply(model_deployment_manifest("guarded", run=a), ns)
    ips = [p["ip"] for p in two_ready_pods(cluster, ns, "guarded").values()]
    base = f"http://{cluster.get('service', 'guarded', ns)['spec']['clusterIP']}/v2/models/iris"
    probe = json.dumps({"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP64", "data": ROWS[:1]}]}).encode()
    wait_for(lambda: answers(f"{base}/infer", probe), timeout=60, what="kube-proxy to program the Service")
    real = [infer(base) for _ in range(10)]
    assert all(answer["parameters"]["receipt"].count(".") == 1 for answer in real), real[0]
    for answer in real[:5]:  # labels that agree first: an accuracy of 1 that forged labels would lower
        feedback = {"receipt": answer["parameters"]["receipt"], "labels": answer["outputs"][0]["data"]}
        status, scored = post(f"{base}/feedback", feedback)
        assert status == 200, scored
    before, refused_before = quality(ips), refused(ips)

    statuses: dict[int, int] = {}
    for i in range(300):
        answer = real[5 + i % 5]
        token, predicted = answer["parameters"]["receipt"], answer["outputs"][0]["data"]
        wrong = [(p + 1) % 3 for p in predicted]
        body = [
            {"model_version": a, "predictions": predicted, "labels": wrong},  # the echoed form
            {"model_version": a, "predictions": wrong, "labels": wrong},  # echoed, "right" by construction
            {"id": f"r{i}", "labels": wrong},  # the id form
            {"receipt": altered(token, p=wrong), "labels": wrong},  # predictions altered
            {"receipt": altered(token, v="made-up"), "labels": wrong},  # version altered
            {"receipt": "eyJtIjoiaXJpcyJ9.c2lnbmF0dXJl", "labels": wrong},  # made up
        ][i % 6]
        status, answer_body = post(f"{base}/feedback", body)
        assert 400 <= status < 500, (status, answer_body)
        statuses[status] = statuses.get(status, 0) + 1

    assert set(statuses) <= {400, 403}, statuses
    assert quality(ips) == before, "a refused feedback moved a quality series"
    assert refused(ips) == refused_before + 300
    accuracy = [v for ip in ips for (name, _), v in samples(ip).items() if name == "mlops_accuracy"]
    assert accuracy and all(v == 1.0 for v in accuracy), accuracy


def test_real_receipts_are_scored_by_either_pod(cluster: Kubectl, ns: str) -> None:
    """A canary at 50 %: receipts of either version, posted to either pod, count for the version that predicted;
    a replay to the same pod is refused (409), the documented limit being one score per pod."""
    a, b = two_iris_versions(cluster, ns, "either")
    cluster.apply(model_deployment_manifest("either", run=a, strategy=PAUSED_AT_HALF), ns)
    two_ready_pods(cluster, ns, "either")
    cluster.apply(model_deployment_manifest("either", run=b, strategy=PAUSED_AT_HALF), ns)
    found = two_ready_pods(cluster, ns, "either", canary=True)
    by_variant = {p["mlops.dev/variant"]: p["ip"] for p in found.values()}
    stable, canary = by_variant["stable"], by_variant["canary"]
    before = {(ip, v): labelled(ip, v) for ip in (stable, canary) for v in (a, b)}

    # Each pod's own prediction, labelled at the other pod: the canary's label reaches a stable pod.
    from_canary = infer(f"http://{canary}:8080/v2/models/iris")
    from_stable = infer(f"http://{stable}:8080/v2/models/iris")
    assert (from_canary["model_version"], from_stable["model_version"]) == (b, a)
    for answer, other in ((from_canary, stable), (from_stable, canary)):
        feedback = {"receipt": answer["parameters"]["receipt"], "labels": [0, 1, 2]}
        status, scored = post(f"http://{other}:8080/v2/models/iris/feedback", feedback)
        assert status == 200 and scored["model_version"] == answer["model_version"], scored
        status, again = post(f"http://{other}:8080/v2/models/iris/feedback", feedback)
        assert status == 409 and "already been scored" in again["error"], again
    assert labelled(stable, b) == before[(stable, b)] + 3, "the canary's label counted for the canary on a stable pod"
    assert labelled(canary, a) == before[(canary, a)] + 3
    assert labelled(stable, a) == before[(stable, a)] and labelled(canary, b) == before[(canary, b)]

    # Through the Service, wherever kube-proxy sends each request: every real receipt is scored.
    base = f"http://{cluster.get('service', 'either', ns)['spec']['clusterIP']}/v2/models/iris"
    versions: set[str] = set()

    def label_one() -> bool:
        """One request and its feedback through the Service; True once both versions answered (kube-proxy
        programs the canary's endpoint a moment after its pod is ready)."""
        answer = infer(base)
        versions.add(answer["model_version"])
        status, scored = post(f"{base}/feedback", {"receipt": answer["parameters"]["receipt"], "labels": [0, 1, 2]})
        assert status == 200 and scored["model_version"] == answer["model_version"], scored
        return versions == {a, b}

    wait_for(label_one, timeout=60, interval=0.05, what=f"both {a} and {b} answering through the Service")
