"""Helpers shared by the test layers: polling with a deadline, and kubectl as a user runs it."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

REPO = pathlib.Path(__file__).resolve().parents[2]
STATE = pathlib.Path(os.environ.get("LOCALCLUSTER_DIR", REPO / ".localcluster")).resolve()
KUBECONFIG = STATE / "kubeconfig"

T = TypeVar("T")


# The local cluster's command (hack/localcluster/cluster.py): up, status, start/stop COMPONENT, node-stop/node-start.
CLUSTER = [sys.executable, str(REPO / "hack/localcluster/cluster.py")]


# Prometheus servers the integration tests name in a ModelDeployment's spec.prometheusUrl, which the test
# operator is installed to allow (prometheus.allowedUrls): one nothing listens on, and the hostile ones of
# test_disruptions on the node's address (`host`) at fixed ports.
UNREACHABLE_PROMETHEUS = "http://127.0.0.1:9"
HOSTILE_PROMETHEUS_PORTS = {"silent": 19190, "huge": 19191}


def allowed_test_prometheus_urls(host: str) -> list[str]:
    return [UNREACHABLE_PROMETHEUS, *(f"http://{host}:{port}" for port in HOSTILE_PROMETHEUS_PORTS.values())]


# A pod and a container of the project image that the `restricted` Pod Security Standard admits.
RESTRICTED_POD = {
    "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
}
RESTRICTED_CONTAINER = {
    "imagePullPolicy": "Never",
    "securityContext": {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "readOnlyRootFilesystem": True,
    },
}


def wait_for(condition: Callable[[], T], *, timeout: float, what: str, interval: float = 0.2) -> T:
    """Poll `condition` until it returns something truthy; fail with `what` and the last value seen."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        last = condition()
        if last:
            return last
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}; last value: {last!r}")
        time.sleep(interval)  # poll interval, not synchronisation


@contextlib.contextmanager
def one_at_a_time(what: str) -> Iterator[None]:
    """Hold the lock named `what` for this checkout: parallel workers set up the cluster, the image and
    the operator one after the other (each step is idempotent, so the later ones find it done)."""
    digest = hashlib.sha256(f"{REPO}:{what}".encode()).hexdigest()[:16]
    with open(os.path.join(tempfile.gettempdir(), f"mlops-operator-tests-{digest}.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def bin_dir() -> pathlib.Path:
    out = subprocess.run(
        ["bash", str(REPO / "hack/localcluster/build.sh")],
        env={**os.environ, "BIN_ONLY": "1"},
        check=True,
        capture_output=True,
        text=True,
    )
    return pathlib.Path(out.stdout.strip())


def promtool_value(tmp_path: pathlib.Path, series: dict[str, str], query: str, *, at_seconds: int) -> float | None:
    """A PromQL query's value at `at_seconds`, evaluated by Prometheus's own rule tester (`promtool test
    rules`, Debian's prometheus) on `series` (name{labels} → promtool's values notation, 15 s apart, `_`
    for a missing sample); None when it answers nothing."""
    import yaml

    promtool = shutil.which("promtool")
    assert promtool, "promtool (Debian's prometheus package, installed by hack/install-deps.sh) is missing"
    probe = tmp_path / "probe.yaml"
    probe.write_text(
        yaml.safe_dump(
            {
                "rule_files": [],
                "tests": [
                    {
                        "interval": "15s",
                        "input_series": [{"series": name, "values": values} for name, values in series.items()],
                        "promql_expr_test": [{"expr": query, "eval_time": f"{at_seconds}s", "exp_samples": []}],
                    }
                ],
            }
        )
    )
    out = subprocess.run([promtool, "test", "rules", str(probe)], capture_output=True, text=True)
    if out.returncode == 0:
        return None  # no sample expected, none got
    text = out.stdout + out.stderr
    assert "got:" in text, text
    got = text.split("got:", 1)[1].split("\n", 1)[0]  # `{} 3.14E-01`: the labels, then the value
    return float(got.split("}", 1)[1])


# What the tests read most, polling: read in this process over HTTP instead of starting kubectl, a Go
# program of ~0.1 s of CPU per call — on 2 cores shared with the cluster, the suite's polls cost more CPU
# than anything but the pods. Kind (or plural) → (API path, plural). Anything else goes through kubectl.
_READ_IN_PROCESS = {
    **{
        name: ("apis/mlops.dev/v1alpha1", plural)
        for singular, plural in (
            ("dataset", "datasets"),
            ("trainingrun", "trainingruns"),
            ("modeldeployment", "modeldeployments"),
        )
        for name in (singular, plural)
    },
    **{name: ("apis/apps/v1", "deployments") for name in ("deployment", "deployments")},
    **{name: ("apis/batch/v1", "jobs") for name in ("job", "jobs")},
    # Read by path: kubectl's discovery cache, shared by parallel workers, may not know a CRD added meanwhile.
    **{name: ("apis/gateway.networking.k8s.io/v1", "httproutes") for name in ("httproute", "httproutes")},
    **{name: ("api/v1", plural) for plural in ("pods", "services") for name in (plural[:-1], plural)},
}


class Kubectl:
    """kubectl against the local cluster's admin kubeconfig; the reads tests poll most go over HTTP."""

    def __init__(self, kubeconfig: pathlib.Path = KUBECONFIG) -> None:
        self.binary = str(bin_dir() / "kubectl")
        self.kubeconfig = str(kubeconfig)
        self._api: Any = None
        self._api_lock = threading.Lock()

    def _read(self, path: str, query: dict[str, str] | None = None) -> dict[str, Any] | None:
        """GET `path` from the API server as the admin kubeconfig's user; None for 404."""
        from kubernetes import config
        from kubernetes.client.exceptions import ApiException

        with self._api_lock:
            if self._api is None:
                self._api = config.new_client_from_config(self.kubeconfig)
        try:
            response = self._api.call_api(
                path,
                "GET",
                query_params=list((query or {}).items()),
                header_params={"Accept": "application/json"},
                auth_settings=["BearerToken"],
                _preload_content=False,
                _return_http_data_only=True,
                _request_timeout=60,
            )
        except ApiException as error:
            if error.status == 404:
                return None
            raise AssertionError(f"GET {path} failed ({error.status}): {error.body}") from None
        return json.loads(response.data)

    def run(self, *args: str, input: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [self.binary, f"--kubeconfig={self.kubeconfig}", f"--cache-dir={STATE / 'kubectl-cache'}", *args],
            input=input,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({result.returncode}):\n{result.stderr}")
        return result

    def json(self, *args: str) -> Any:
        # `get KIND -n NS [-l SELECTOR]` of a kind read in process: a list, as kubectl prints it.
        listing = len(args) == 4 or (len(args) == 6 and args[4] == "-l")
        if listing and args[0] == "get" and args[1] in _READ_IN_PROCESS and args[2] == "-n":
            api, plural = _READ_IN_PROCESS[args[1]]
            query = {"labelSelector": args[5]} if len(args) == 6 else None
            listed = self._read(f"/{api}/namespaces/{args[3]}/{plural}", query) or {"items": []}
            return {"apiVersion": "v1", "kind": "List", "items": listed.get("items") or []}
        return json.loads(self.run(*args, "-o", "json").stdout)

    def get(self, kind: str, name: str, namespace: str) -> dict[str, Any] | None:
        if kind in _READ_IN_PROCESS:
            api, plural = _READ_IN_PROCESS[kind]
            return self._read(f"/{api}/namespaces/{namespace}/{plural}/{name}")
        result = self.run("get", kind, name, "-n", namespace, "-o", "json", check=False)
        return json.loads(result.stdout) if result.returncode == 0 else None

    def apply(self, manifest: str, namespace: str | None = None) -> str:
        args = ["apply", "-f", "-"] + (["-n", namespace] if namespace else [])
        return self.run(*args, input=manifest).stdout


def helm(cluster: Kubectl, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """The cluster's helm (built by hack/localcluster/build.sh) on `cluster`'s kubeconfig."""
    done = subprocess.run(
        [str(bin_dir() / "helm"), f"--kubeconfig={cluster.kubeconfig}", *args],
        capture_output=True,
        text=True,
        timeout=300,
    )
    if check and done.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return done


def operator_pods(cluster: Kubectl, release: str, ns: str) -> list[dict]:
    """The running pods of a chart release installed in `ns`."""
    pods = cluster.json("get", "pods", "-n", ns, "-l", f"app.kubernetes.io/instance={release}")["items"]
    return [p for p in pods if not p["metadata"].get("deletionTimestamp") and p["status"].get("phase") == "Running"]


def install_ha_release(cluster: Kubectl, release: str, ns: str) -> list[dict]:
    """The chart installed in `ns` as `release` with HA (two replicas, one Lease), watching `ns` alone;
    its two running pods."""
    helm(
        cluster,
        "install",
        release,
        str(REPO / "charts/mlops-operator"),
        "-n",
        ns,
        "--values",
        str(REPO / "hack/localcluster/values-local.yaml"),
        "--set",
        f"watchNamespaces={{{ns}}}",
        "--set",
        "ha.enabled=true",
        "--set",
        "replicas=2",
        "--wait",
        "--timeout",
        "3m",
    )
    return wait_for(
        lambda: len(p := operator_pods(cluster, release, ns)) == 2 and p, timeout=120, what="two operator pods"
    )


def lease_holder(cluster: Kubectl, release: str, ns: str) -> str | None:
    """The pod that leads an HA release: the holder (identity `<pod>_<n>`) of the Lease its Deployment's
    `--leader-election` names (`<fullname>-leader`)."""
    [deployment] = cluster.json("get", "deployments", "-n", ns, "-l", f"app.kubernetes.io/instance={release}")["items"]
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    lease = cluster.get("lease", args[args.index("--leader-election") + 1], ns) or {}
    holder = (lease.get("spec") or {}).get("holderIdentity") or ""
    return holder.rsplit("_", 1)[0] or None


def condition(obj: dict[str, Any] | None, type_: str) -> dict[str, Any] | None:
    """The condition of a type in an object's status, or None."""
    for cond in ((obj or {}).get("status") or {}).get("conditions") or []:
        if cond.get("type") == type_:
            return cond
    return None


def wait_phase(kubectl: Kubectl, kind: str, name: str, namespace: str, phases: tuple[str, ...], timeout: float = 120):
    """Poll until the object's status.phase is one of `phases`; return the object."""

    def check():
        obj = kubectl.get(kind, name, namespace)
        return obj if obj and (obj.get("status") or {}).get("phase") in phases else None

    try:
        return wait_for(check, timeout=timeout, what=f"{kind}/{name} to reach {phases}")
    except AssertionError as error:
        obj = kubectl.get(kind, name, namespace)
        raise AssertionError(f"{error}\nstatus: {json.dumps((obj or {}).get('status'), indent=1)}") from None


def artifact_path(namespace: str, uri: str) -> pathlib.Path:
    """Where an artifact URI of a test namespace lives on this host: an object of the cluster's S3 server
    (its posix backend keeps `s3://bucket/key` at `<root>/bucket/key`), or a file on the namespace's claim."""
    if uri.startswith("s3://"):  # a version's files are under the directory its index names (storage/s3.py)
        path = STATE / "s3" / "data" / uri.removeprefix("s3://")
        for version in (path, path.parent):  # a version, or a file of one
            index = version / ".published"
            if index.is_file() and (writer := json.loads(index.read_text()).get("dir")):
                return version / writer if version == path else version / writer / path.name
        return path
    assert uri.startswith("pvc://mlops-artifacts/"), uri
    return STATE / "volumes" / namespace / "mlops-artifacts" / uri.removeprefix("pvc://mlops-artifacts/")


def captured_records(prefix: str) -> list[dict[str, Any]]:
    """The records the model servers captured under `prefix` (`captures/<ns>/<model-deployment>`) in the
    cluster's S3 server, read through the store as a capture Dataset's check Job reads them."""
    from mlops_operator.data.capture import read_records
    from mlops_operator.storage.s3 import S3Store

    return read_records(S3Store.from_uri(test_store_uri(), client=s3_client()), prefix)


def test_store_uri() -> str:
    """The artifact store of the test install (hack/localcluster/values-local.yaml: artifacts.store)."""
    return f"s3://{s3_env()['MLOPS_S3_BUCKET']}/artifacts"


def s3_client(keys: tuple[str, str] | None = None) -> Any:
    """A boto3 client of the cluster's S3 server, with its root keys or the (access, secret) pair `keys`."""
    import boto3
    from botocore.config import Config

    env = s3_env()
    access, secret = keys or (env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"])
    return boto3.client(
        "s3",
        endpoint_url=env["AWS_ENDPOINT_URL"],
        region_name=env["AWS_REGION"],
        aws_access_key_id=access,
        aws_secret_access_key=secret,
        config=Config(s3={"addressing_style": "path"}),
    )


SERVER_CREDENTIALS_SECRET = "mlops-s3-server"  # the test install's artifacts.s3.serverCredentialsSecret


def scoped_store_keys(kubectl: Kubectl, namespace: str) -> dict[str, tuple[str, str]]:
    """The documented multi-tenant setup (docs/operations.md, "Multi-tenant install") on the cluster's S3
    server: a user for the namespace's Jobs and one for its servers, each allowed by the bucket policy
    only what `mlops-operator store-policy` prints for it, and their keys in the namespace's two Secrets.
    Returns {"jobs": (access, secret), "servers": (access, secret)}."""
    import botocore.exceptions

    from mlops_operator.resources.store import namespace_store_policy

    env = s3_env()
    admin = {
        **os.environ,
        "ADMIN_ACCESS_KEY_ID": env["AWS_ACCESS_KEY_ID"],
        "ADMIN_SECRET_ACCESS_KEY": env["AWS_SECRET_ACCESS_KEY"],
        "ADMIN_ENDPOINT_URL": env["AWS_ENDPOINT_URL"],
        "ADMIN_REGION": env["AWS_REGION"],
    }
    versitygw = str(next(bin_dir().glob("versitygw-*")))
    keys: dict[str, tuple[str, str]] = {}
    statements: list[dict[str, Any]] = []
    for holder, secret_name in (("jobs", "mlops-s3"), ("servers", SERVER_CREDENTIALS_SECRET)):
        access, secret = f"{namespace}-{holder}", uuid.uuid4().hex
        made = subprocess.run(
            [versitygw, "admin", "create-user", "--access", access, "--secret", secret, "--role", "user"],
            env=admin,
            capture_output=True,
            text=True,
        )
        assert made.returncode == 0, f"versitygw admin create-user {access}: {made.stdout}{made.stderr}"
        for statement in namespace_store_policy(test_store_uri(), namespace, holder=holder)["Statement"]:
            sid = "".join(c for c in f"{namespace}{holder}{statement['Sid']}" if c.isalnum())
            statements.append({**statement, "Sid": sid, "Principal": {"AWS": [access]}})
        kubectl.run(
            "create",
            "secret",
            "generic",
            secret_name,
            "-n",
            namespace,
            f"--from-literal=AWS_ACCESS_KEY_ID={access}",
            f"--from-literal=AWS_SECRET_ACCESS_KEY={secret}",
        )
        keys[holder] = (access, secret)
    root = s3_client()
    bucket = env["MLOPS_S3_BUCKET"]
    with one_at_a_time("bucket-policy"):  # one policy document for the bucket: read, add, write
        try:
            policy = json.loads(root.get_bucket_policy(Bucket=bucket)["Policy"])
        except botocore.exceptions.ClientError:
            policy = {"Version": "2012-10-17", "Statement": []}
        policy["Statement"] += statements
        root.put_bucket_policy(Bucket=bucket, Policy=json.dumps(policy))
    return keys


def s3_env() -> dict[str, str]:
    """The cluster's S3 server: AWS_ENDPOINT_URL, the credentials, MLOPS_S3_BUCKET (.localcluster/s3.env)."""
    lines = (STATE / "s3.env").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if "=" in line)


def add_s3_credentials(kubectl: Kubectl, namespace: str, *, secret_key: str | None = None) -> None:
    """The Secrets the operator gives its pods in `namespace` (chart: artifacts.s3.credentialsSecret, and
    serverCredentialsSecret in the test install), with the cluster's S3 root keys, or another `secret_key`."""
    env = s3_env()
    for name in ("mlops-s3", SERVER_CREDENTIALS_SECRET):
        kubectl.run(
            "create",
            "secret",
            "generic",
            name,
            "-n",
            namespace,
            f"--from-literal=AWS_ACCESS_KEY_ID={env['AWS_ACCESS_KEY_ID']}",
            f"--from-literal=AWS_SECRET_ACCESS_KEY={secret_key or env['AWS_SECRET_ACCESS_KEY']}",
        )


def add_artifact_volume(namespace: str) -> None:
    """The namespace's artifact store: the PVC `mlops-artifacts` the operator's Jobs mount."""
    made = subprocess.run(
        ["python3", str(REPO / "hack/localcluster/cluster.py"), "volume", namespace, "mlops-artifacts"],
        capture_output=True,
        text=True,
    )
    assert made.returncode == 0, made.stderr


def training_run_manifest(name: str, estimator: str, *, model: str = "iris", dataset: str = "iris", **spec: Any) -> str:
    """A TrainingRun of `estimator` on a Dataset; `params` and `preprocessing` go into spec.model."""
    body = {
        "apiVersion": "mlops.dev/v1alpha1",
        "kind": "TrainingRun",
        "metadata": {"name": name},
        "spec": {"datasetRef": {"name": dataset}, "model": {"name": model, "estimator": estimator}, **spec},
    }
    for key in ("params", "preprocessing"):
        if key in spec:
            body["spec"]["model"][key] = body["spec"].pop(key)
    return json.dumps(body)


def answers(url: str, body: bytes) -> bool:
    """Whether a POST of `body` to `url` is answered 200: a new Service is served once kube-proxy has
    programmed it, a moment after its endpoints are ready."""
    import urllib.request

    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=body), timeout=5) as response:
            return response.status == 200
    except OSError:
        return False


def two_iris_versions(kubectl: Kubectl, namespace: str, prefix: str) -> tuple[str, str]:
    """Two trained versions of the iris model (LogisticRegression, C=1 and C=0.5) in `namespace`:
    `<prefix>-a` and `<prefix>-b`, for tests that roll one out over the other."""
    kubectl.apply((REPO / "examples/dataset-iris.yaml").read_text(), namespace)
    names = (f"{prefix}-a", f"{prefix}-b")
    for name, extra in zip(names, ({}, {"params": {"C": 0.5}}), strict=True):
        kubectl.apply(training_run_manifest(name, "sklearn.linear_model.LogisticRegression", **extra), namespace)
    for name in names:
        wait_phase(kubectl, "trainingrun", name, namespace, ("Succeeded",), timeout=240)
    return names


def model_deployment_manifest(name: str, *, model: str = "iris", run: str | None = None, **spec: Any) -> str:
    """A ModelDeployment of 2 replicas following `model`'s champion (or pinned to `run`), without the guard."""
    selector = {"trainingRun": run} if run else {"name": model}
    body = {
        "apiVersion": "mlops.dev/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": name},
        "spec": {"model": selector, "replicas": 2, "postPromotion": {"enabled": False}, **spec},
    }
    return json.dumps(body)


def champions(kubectl: Kubectl, namespace: str, model: str = "iris") -> list[str]:
    """Names of the TrainingRuns labelled as the champion of `model` (the registry query)."""
    selector = f"mlops.dev/model={model},mlops.dev/promoted=true"
    listed = kubectl.json("get", "trainingruns", "-n", namespace, "-l", selector)
    return [item["metadata"]["name"] for item in listed["items"]]


@contextlib.contextmanager
def deployed_operator_namespace(kubectl: Kubectl, prefix: str) -> Iterator[str]:
    """For bench/: the operator as `make deploy` installs it, and a fresh namespace with the credentials
    of the artifact store (the cluster's S3 server)."""
    subprocess.run([str(REPO / "hack/deploy.sh")], check=True)
    namespace = f"{prefix}-{uuid.uuid4().hex[:6]}"
    kubectl.run("create", "namespace", namespace)
    add_s3_credentials(kubectl, namespace)
    try:
        yield namespace
    finally:
        kubectl.run("delete", "namespace", namespace, "--wait=false", check=False)


def status_fields(text: str) -> dict[str, str]:
    """`Label: value` lines of the status view, by label."""
    found = {}
    for line in text.splitlines():
        label, sep, value = line.partition(":")
        if sep and not line.startswith(" ") and value.startswith(" "):
            found.setdefault(label, value.strip())
    return found


class Background:
    """`with` a loop of `_run` in a thread of its own until the block ends (`self.stop` is set)."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        raise NotImplementedError

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        self.thread.join(timeout=15)


class LabelledTraffic(Background):
    """Requests through a Service, about 20 a second, each followed by labels for what it answered,
    posted with the receipt of the answer (`parameters.receipt`): any pod of the ModelDeployment scores
    them under the version that predicted, and a capture joins them to the captured rows. Each request
    sends `rows`, labelled `truth(version, rows, predictions)`, unless a subclass's `next_request` draws
    them. `by_id` is kept for callers of the id form, which servers refuse now: it changes nothing.
    `answered` counts the answers by version, `failed` the requests no answer came to, `refused` the
    feedback answered 4xx."""

    def __init__(
        self,
        url: str,
        rows: list[list[float]] | None = None,
        truth: Callable[..., list] | None = None,
        *,
        by_id: bool = False,
    ) -> None:
        super().__init__()
        self.url, self.rows, self.truth, self.by_id = url, rows, truth, by_id
        self.answered, self.sent, self.failed, self.refused = {}, 0, 0, 0

    def next_request(self) -> tuple[list[list[float]], Callable[..., list]]:
        """The rows of the next request, and its labels as `truth(version, rows, predictions)`."""
        return self.rows, self.truth

    def _post(self, path: str, body: dict) -> dict:
        request = urllib.request.Request(
            f"{self.url}/{path}", data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            return json.load(response)

    def _run(self) -> None:
        while not self.stop.is_set():
            self._request()
            self.stop.wait(0.05)

    def _request(self) -> None:
        self.sent += 1
        rows, truth = self.next_request()
        tensor = {"name": "x", "shape": [len(rows), len(rows[0])], "datatype": "FP64", "data": rows}
        try:
            answer = self._post("infer", {"id": f"r{self.sent}", "inputs": [tensor]})
        except OSError:
            self.failed += 1
            return
        try:
            version, predicted = answer["model_version"], answer["outputs"][0]["data"]
            self.answered[version] = self.answered.get(version, 0) + 1
            feedback = {"receipt": answer["parameters"]["receipt"], "labels": truth(version, rows, predicted)}
        except KeyError:  # an answer without a receipt: nothing to label
            return
        try:
            self._post("feedback", feedback)
        except urllib.error.HTTPError:
            self.refused += 1
        except OSError:
            pass


def run_training_of(request: dict[str, Any], store: Any, **options: Any) -> Any:
    """trainer.train.run_training on a request written as the JSON a training Job gets (MLOPS_REQUEST)."""
    from mlops_operator.resources.results import TrainingRequest
    from mlops_operator.trainer.train import run_training

    return run_training(TrainingRequest.model_validate(request), store, **options)


def service_predictions(cluster: Kubectl, ns: str, service: str) -> list | None:
    """Predictions of the iris model for two flowers through Service `service`; None if no answer came."""
    ip = cluster.get("service", service, ns)["spec"]["clusterIP"]
    rows = [[5.1, 3.5, 1.4, 0.2], [6.0, 2.9, 4.5, 1.5]]
    body = json.dumps({"inputs": [{"name": "x", "shape": [2, 4], "datatype": "FP64", "data": rows}]}).encode()
    try:
        with urllib.request.urlopen(
            urllib.request.Request(f"http://{ip}/v2/models/iris/infer", data=body), timeout=5
        ) as response:
            return json.load(response)["outputs"][0]["data"]
    except OSError:
        return None
