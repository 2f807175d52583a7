"""Attacks a tenant could try through the operator, each staged on the local cluster: every one fails with a
reason a person can act on, and nothing that is not the attacker's changes.

Own only what you create (issue 25, item 1): an object whose name a child of ours would take — a user's
Service, Deployment or HorizontalPodAutoscaler, a Job made in advance under a training Job's name — is
never changed, adopted or deleted; the object that wanted the name says `NameConflict`, naming it, and goes
on by itself once the name is free. Names whose children would collide are refused by the API server.
"""

from __future__ import annotations

import contextlib
import json
import socket
import urllib.parse
import urllib.request

import pytest

from support import (
    REPO,
    RESTRICTED_CONTAINER,
    RESTRICTED_POD,
    SERVER_CREDENTIALS_SECRET,
    Kubectl,
    condition,
    model_deployment_manifest,
    s3_client,
    s3_env,
    scoped_store_keys,
    training_run_manifest,
    wait_for,
    wait_phase,
)

pytestmark = pytest.mark.usefixtures("operator")


def ready(cluster: Kubectl, kind: str, name: str, ns: str) -> dict:
    return condition(cluster.get(kind, name, ns), "Ready") or {}


def conflict_reported(cluster: Kubectl, kind: str, name: str, ns: str, words: str) -> dict:
    """Until `kind name` says Ready=False NameConflict with `words` in its message."""
    return wait_for(
        lambda: (r := ready(cluster, kind, name, ns)).get("reason") == "NameConflict" and words in r["message"] and r,
        timeout=120,
        what=f"{kind} {name} to report NameConflict naming {words}",
    )


def users_service(name: str) -> str:
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": name, "labels": {"team": "web"}},
            "spec": {"selector": {"app": "website"}, "ports": [{"port": 80, "targetPort": 8080}]},
        }
    )


def test_a_modeldeployment_named_like_a_users_service_leaves_it_and_reports_the_conflict(
    cluster: Kubectl, ns: str
) -> None:
    cluster.apply((REPO / "examples/dataset-iris.yaml").read_text(), ns)
    cluster.apply(training_run_manifest("shop-a", "sklearn.dummy.DummyClassifier"), ns)
    cluster.apply(users_service("shop"), ns)
    before = cluster.get("service", "shop", ns)
    wait_phase(cluster, "trainingrun", "shop-a", ns, ("Succeeded",), timeout=240)
    cluster.apply(model_deployment_manifest("shop", run="shop-a", replicas=1), ns)
    ready_ = conflict_reported(cluster, "modeldeployment", "shop", ns, "Service shop already exists")
    assert "not created by the operator" in ready_["message"], ready_
    events = cluster.json("get", "events", "-n", ns, "--field-selector", "involvedObject.name=shop")["items"]
    assert any(e["reason"] == "NameConflict" and e["type"] == "Warning" for e in events), events
    after = cluster.get("service", "shop", ns)
    assert after["spec"]["selector"] == {"app": "website"}, "the user's Service was re-pointed"
    assert not after["metadata"].get("ownerReferences"), "the user's Service was adopted"
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"], "the Service was written"
    # Deleting the ModelDeployment deletes what it created, never the user's Service.
    cluster.run("delete", "modeldeployment", "shop", "-n", ns, "--wait=true", "--timeout=120s")
    wait_for(
        lambda: cluster.get("deployment", "shop-stable", ns) is None,
        timeout=120,
        what="the ModelDeployment's own Deployment to be garbage-collected",
    )
    kept = cluster.get("service", "shop", ns)
    assert kept is not None and kept["metadata"]["uid"] == before["metadata"]["uid"], "the user's Service was deleted"
    # The name freed (the user's Service removed), a ModelDeployment of that name serves as usual.
    cluster.run("delete", "service", "shop", "-n", ns)
    cluster.apply(model_deployment_manifest("shop", run="shop-a", replicas=1), ns)
    wait_for(
        lambda: (r := ready(cluster, "modeldeployment", "shop", ns)).get("status") == "True" and r,
        timeout=180,
        what="the ModelDeployment to serve once the name is free",
    )
    owners = cluster.get("service", "shop", ns)["metadata"]["ownerReferences"]
    assert [o["kind"] for o in owners] == ["ModelDeployment"]
    cluster.run("delete", "modeldeployment", "shop", "-n", ns, "--wait=true", "--timeout=120s")


def test_a_job_made_in_advance_under_the_training_jobs_name_is_never_read(
    cluster: Kubectl, ns: str, image: str
) -> None:
    """A Job whose pod ends with a forged training result, made under the name the operator will give the
    training Job: the run reports the conflict, reads nothing of it, and trains with its own Job once the
    name is free."""
    forged = json.dumps({"phase": "Succeeded", "metrics": {"accuracy": 1.0}})
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "forged-train"},
        "spec": {
            "backoffLimit": 0,
            "template": {
                "spec": {
                    **RESTRICTED_POD,
                    "restartPolicy": "Never",
                    "containers": [
                        {
                            "name": "trainer",
                            "image": image,
                            "command": ["sh", "-c", 'printf %s "$0" > /dev/termination-log', forged],
                            **RESTRICTED_CONTAINER,
                        }
                    ],
                }
            },
        },
    }
    cluster.apply(json.dumps(job), ns)
    wait_for(
        lambda: (cluster.get("job", "forged-train", ns).get("status") or {}).get("succeeded"),
        timeout=120,
        what="the forged Job to finish",
    )
    cluster.apply(training_run_manifest("forged", "sklearn.dummy.DummyClassifier"), ns)
    conflict_reported(cluster, "trainingrun", "forged", ns, "Job forged-train already exists")
    run = cluster.get("trainingrun", "forged", ns)
    assert (run.get("status") or {}).get("phase") != "Succeeded" and not (run.get("status") or {}).get("metrics")
    assert not cluster.get("job", "forged-train", ns)["metadata"].get("ownerReferences"), "the Job was adopted"
    cluster.run("delete", "job", "forged-train", "-n", ns, "--wait=true", "--timeout=60s")
    wait_phase(cluster, "trainingrun", "forged", ns, ("Succeeded",), timeout=240)
    own = cluster.get("job", "forged-train", ns)
    assert [(o["kind"], o["name"]) for o in own["metadata"]["ownerReferences"]] == [("TrainingRun", "forged")]
    [trainer] = own["spec"]["template"]["spec"]["containers"]
    assert trainer["resources"]["limits"]["memory"] and trainer["resources"]["requests"], "a BestEffort pod"
    # Its result recorded, the Job is left to the TTL controller (jobs.keepFinishedSeconds, 600 s by default).
    wait_for(
        lambda: cluster.get("job", "forged-train", ns)["spec"].get("ttlSecondsAfterFinished") == 600,
        timeout=60,
        what="the training Job to be given its ttlSecondsAfterFinished once the result is recorded",
    )


def refused(call) -> str:
    """The S3 error code of a call that must fail (it fails the test if it succeeds)."""
    import botocore.exceptions

    try:
        call()
    except botocore.exceptions.ClientError as error:
        return error.response["Error"]["Code"]
    raise AssertionError("the store allowed it")


def test_keys_scoped_to_a_namespace_train_serve_and_capture_there_and_reach_nothing_else(
    cluster: Kubectl, ns: str, store_namespace
) -> None:
    """The documented multi-tenant store setup (docs/operations.md): a namespace whose Jobs and servers hold
    keys scoped to its own prefixes trains, serves and captures as any other; with those keys, another
    namespace's model cannot be read, overwritten or deleted, and the servers' keys cannot change a model."""
    theirs = wait_phase(cluster, "trainingrun", "shop-a", ns, ("Succeeded",), timeout=240)["status"]["model"]
    bucket, root = s3_env()["MLOPS_S3_BUCKET"], s3_client()
    with store_namespace("none") as team:
        keys = scoped_store_keys(cluster, team)
        cluster.apply((REPO / "examples/dataset-iris.yaml").read_text(), team)
        cluster.apply(training_run_manifest("own", "sklearn.linear_model.LogisticRegression"), team)
        model = wait_phase(cluster, "trainingrun", "own", team, ("Succeeded",), timeout=300)["status"]["model"]
        cluster.apply(model_deployment_manifest("own", run="own", replicas=1, capture={"sampleRate": 1}), team)
        wait_for(
            lambda: ((cluster.get("modeldeployment", "own", team) or {}).get("status") or {}).get("phase") == "Healthy",
            timeout=240,
            what="the model served by a server holding the servers' scoped keys",
        )
        [server] = cluster.get("deployment", "own-stable", team)["spec"]["template"]["spec"]["containers"]
        assert server["envFrom"] == [{"secretRef": {"name": SERVER_CREDENTIALS_SECRET}}], server["envFrom"]
        url = f"http://{cluster.get('service', 'own', team)['spec']['clusterIP']}/v2/models/iris/infer"
        row = {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP64", "data": [[5.1, 3.5, 1.4, 0.2]]}]}

        def captured() -> list[str]:
            request = urllib.request.Request(url, data=json.dumps(row).encode(), method="POST")
            request.add_header("Content-Type", "application/json")
            with contextlib.suppress(OSError):
                urllib.request.urlopen(request, timeout=5).close()
            listed = root.list_objects_v2(Bucket=bucket, Prefix=f"artifacts/captures/{team}/own/")
            return [o["Key"] for o in listed.get("Contents", [])]

        wait_for(captured, timeout=120, interval=1, what="the server writing captured rows with its scoped keys")
        ready_ = condition(cluster.get("modeldeployment", "own", team), "Ready")
        assert ready_["status"] == "True", ready_

        # What a pod of this namespace could do with the keys it holds: nothing outside its own prefixes.
        jobs, servers = s3_client(keys["jobs"]), s3_client(keys["servers"])
        their_key = f"{theirs['uri'].removeprefix(f's3://{bucket}/')}/MANIFEST.json"
        their_index = f"{theirs['uri'].removeprefix(f's3://{bucket}/')}/.published"
        before = root.get_object(Bucket=bucket, Key=their_index)["Body"].read()
        listing = f"artifacts/models/{ns}/"
        for holder in (jobs, servers):
            assert refused(lambda h=holder: h.get_object(Bucket=bucket, Key=their_index)) == "AccessDenied"
            assert refused(lambda h=holder: h.put_object(Bucket=bucket, Key=their_index, Body=b"{}")) == "AccessDenied"
            assert refused(lambda h=holder: h.delete_object(Bucket=bucket, Key=their_index)) == "AccessDenied"
            assert refused(lambda h=holder: h.put_object(Bucket=bucket, Key=their_key, Body=b"{}")) == "AccessDenied"
            assert refused(lambda h=holder: h.list_objects_v2(Bucket=bucket, Prefix=listing)) == "AccessDenied"
        assert root.get_object(Bucket=bucket, Key=their_index)["Body"].read() == before
        # The servers read their namespace's models and cannot change one.
        own_index = f"{model['uri'].removeprefix(f's3://{bucket}/')}/.published"
        published = servers.get_object(Bucket=bucket, Key=own_index)["Body"].read()
        assert refused(lambda: servers.put_object(Bucket=bucket, Key=own_index, Body=b"{}")) == "AccessDenied"
        assert refused(lambda: servers.delete_object(Bucket=bucket, Key=own_index)) == "AccessDenied"
        assert root.get_object(Bucket=bucket, Key=own_index)["Body"].read() == published
    # The other namespace's run still serves what it recorded.
    assert cluster.get("trainingrun", "shop-a", ns)["status"]["model"] == theirs


def test_names_whose_children_would_collide_are_refused(cluster: Kubectl, ns: str) -> None:
    for name in ("shop-stable", "shop-canary"):
        refused = cluster.run("apply", "-f", "-", "-n", ns, input=model_deployment_manifest(name), check=False)
        assert refused.returncode != 0 and "may not end with -stable or -canary" in refused.stderr, refused.stderr


def test_a_prometheus_the_administrator_did_not_list_is_never_queried(
    cluster: Kubectl, ns: str, prometheus: str
) -> None:
    """A tenant's own "Prometheus" (one that would say every canary is perfect, or an address inside the
    cluster to probe): the ModelDeployment is refused as InvalidSpec naming the chart's list, and the
    operator never connects to it."""
    host = urllib.parse.urlparse(prometheus).hostname
    with socket.create_server((host, 0)) as listener:
        listener.settimeout(0)
        url = f"http://{host}:{listener.getsockname()[1]}"
        cluster.apply(model_deployment_manifest("judged-by-me", run="shop-a", prometheusUrl=url), ns)
        refused = wait_for(
            lambda: (r := ready(cluster, "modeldeployment", "judged-by-me", ns)).get("reason") == "InvalidSpec" and r,
            timeout=120,
            what="the ModelDeployment with a Prometheus of its own to be refused",
        )
        assert refused["message"].startswith(f"spec.prometheusUrl {url} is not a Prometheus this operator may query")
        with contextlib.suppress(BlockingIOError):
            listener.accept()
            pytest.fail("the operator connected to the tenant's Prometheus")
    assert cluster.get("deployment", "judged-by-me-stable", ns) is None, "a refused ModelDeployment was served"
    cluster.run("delete", "modeldeployment", "judged-by-me", "-n", ns)
