"""The `mlops-operator` command: `run` the operator, print the generated `crds` and `api-docs`."""

from __future__ import annotations

import argparse
import contextlib
import json
import pathlib
import sys
import time

from . import __version__


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mlops-operator", description=__doc__)
    parser.add_argument("--version", action="version", version=f"mlops-operator {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="run the operator (kopf) against the current kubeconfig or in-cluster")
    run.add_argument("--namespace", "-n", action="append", default=[], help="watch only these namespaces")
    run.add_argument("--liveness-port", type=int, default=8081, help="port of /healthz (0: off)")
    run.add_argument("--metrics-port", type=int, default=9100, help="port of the operator's /metrics (0: off)")
    run.add_argument(
        "--leader-election",
        default="",
        metavar="LEASE",
        help="HA (several replicas, one active): run only while holding this Lease (adapters/lease.py)",
    )
    run.add_argument(
        "--leader-election-namespace",
        default="",
        help="the Lease's namespace (default: $MLOPS_POD_NAMESPACE, the operator's own)",
    )
    run.add_argument("--verbose", action="store_true", help="log debug messages")

    crds = commands.add_parser("crds", help="print the generated CustomResourceDefinitions")
    crds.add_argument("--output-dir", action="append", default=[], help="write one file per CRD into DIR")

    api_docs = commands.add_parser("api-docs", help="print the API reference (Markdown) generated from the models")
    api_docs.add_argument("--output", default=None, help="write it to FILE (docs/api.md) instead")

    policy = commands.add_parser(
        "store-policy", help="print the IAM policy of one namespace's store keys (its own prefixes only)"
    )
    policy.add_argument("--store", required=True, help="the artifact store, s3://bucket[/prefix] (artifacts.store)")
    policy.add_argument("--namespace", "-n", required=True)
    policy.add_argument(
        "--for",
        dest="holder",
        choices=("jobs", "servers"),
        required=True,
        help="jobs: artifacts.s3.credentialsSecret; servers: artifacts.s3.serverCredentialsSecret",
    )

    serve = commands.add_parser("serve", help="serve a stored model over the Open Inference Protocol v2 (REST)")
    serve.add_argument("--model-uri", required=True, help="s3://… or pvc://… (in MLOPS_STORE_URI) or file://…")
    serve.add_argument(
        "--sha256",
        default=None,
        help="refuse to start unless the model's MANIFEST.json (and each file it lists) checks out",
    )
    serve.add_argument("--host", default="0.0.0.0")
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument("--max-batch-size", type=int, default=64, help="most rows one predict call batches")
    serve.add_argument("--max-batch-delay-ms", type=float, default=2.0, help="longest a request waits for others")
    serve.add_argument(
        "--reproducibility",
        choices=("strict", "replay", "off"),
        default="replay",
        help="before serving, replay the version's golden rows (replay), also refuse other libraries than "
        "those that trained it (strict), or skip the check (off)",
    )
    serve.add_argument("--capture-uri", default="", help="keep predicted rows and labels here (s3://… or file://…)")
    serve.add_argument("--capture-sample-rate", type=float, default=1.0, help="share of requests captured")
    serve.add_argument("--capture-max-age-seconds", type=float, default=7 * 86400, help="capture retention: age")
    serve.add_argument("--capture-max-bytes", type=int, default=1 << 30, help="capture retention: size in all")
    serve.add_argument(
        "--receipt-key-file",
        default=None,
        help="the key (raw bytes, shared by the ModelDeployment's pods) that signs the receipts feedback must "
        "present; default $MLOPS_RECEIPT_KEY_FILE; none: no receipts, feedback refused",
    )
    serve.add_argument(
        "--feedback-max-age-seconds",
        type=float,
        default=86400.0,
        help="how long after a prediction its receipt is accepted as feedback",
    )

    commands.add_parser("dataset-check", help="(in a Job) validate, version and profile a Dataset's source")
    commands.add_parser("train", help="(in a Job) train, evaluate and store one model version")

    args = parser.parse_args(argv)
    if args.command == "crds":
        return _crds(args.output_dir)
    if args.command == "store-policy":
        from .resources.store import namespace_store_policy

        sys.stdout.write(json.dumps(namespace_store_policy(args.store, args.namespace, holder=args.holder), indent=2))
        sys.stdout.write("\n")
        return 0
    if args.command == "api-docs":
        return _api_docs(args.output)
    if args.command in ("dataset-check", "train"):
        return _job(args.command)
    if args.command == "serve":
        return _serve(args)
    return _run(args)


def _crds(output_dirs: list[str]) -> int:
    from .api import crd

    if not output_dirs:
        sys.stdout.write(crd.render_all())
        return 0
    for directory in output_dirs:
        path = pathlib.Path(directory)
        path.mkdir(parents=True, exist_ok=True)
        for name, text in crd.crd_files().items():
            (path / name).write_text(text)
    return 0


def _api_docs(output: str | None) -> int:
    from .api.reference import render_reference

    if output is None:
        sys.stdout.write(render_reference())
    else:
        pathlib.Path(output).write_text(render_reference())
    return 0


def _job(command: str) -> int:
    """Run a Job's work from its environment; report a small JSON result as the termination message.

    The message is what the operator reads, and the kubelet keeps only 4 KiB of it:
    resources.results.termination_message bounds it (the large parts are in the store, named by URI and
    digest). The same text is printed to the log.
    Environment: MLOPS_REQUEST (JSON), MLOPS_STORE_URI and MLOPS_STORE_PATH (where the store is mounted),
    MLOPS_INPUT_DIR (mounted sources), MLOPS_RESULT_PATH (default /dev/termination-log).
    Exit codes: 0 done (a failed dataset check is a result too), 2 permanent error, 1 anything else.
    """
    import json
    import os
    import traceback

    from .api.reasons import store_reason
    from .resources.results import termination_message
    from .storage import ArtifactStore, StoreError

    result_path = pathlib.Path(os.environ.get("MLOPS_RESULT_PATH", "/dev/termination-log"))
    code = 0
    try:
        request = json.loads(os.environ["MLOPS_REQUEST"])
        store = ArtifactStore.from_uri(os.environ["MLOPS_STORE_URI"], os.environ.get("MLOPS_STORE_PATH"))
        if command == "dataset-check":
            from .api.dataset import DatasetSpec
            from .data.check import run_check

            result = run_check(
                DatasetSpec.model_validate(request["spec"]),
                namespace=request["namespace"],
                name=request["name"],
                store=store,
                input_dir=pathlib.Path(os.environ.get("MLOPS_INPUT_DIR", "/input")),
                capture=request.get("capture"),
            )
        else:
            from .resources.results import JobResult, TrainingRequest
            from .trainer.pipeline import PermanentTrainingError
            from .trainer.train import run_training

            try:
                snapshots = None
                if os.environ.get("MLOPS_SNAPSHOT_STORE_URI"):  # the dataset's snapshot is in another store
                    snapshots = ArtifactStore.from_uri(
                        os.environ["MLOPS_SNAPSHOT_STORE_URI"], os.environ.get("MLOPS_SNAPSHOT_STORE_PATH")
                    )
                result = run_training(TrainingRequest.model_validate(request), store, snapshots=snapshots)
            except PermanentTrainingError as error:
                result, code = JobResult(ok=False, permanent=True, message=str(error)[:1500]), 2
    except StoreError as error:  # the store refused or is unreachable: a reason status can carry
        result, code = {"ok": False, "reason": store_reason(error.reason), "message": str(error)[:1500]}, 1
    except Exception as error:  # reported to the operator through the termination message
        traceback.print_exc()
        result, code = {"ok": False, "message": f"{type(error).__name__}: {error}"[:1500]}, 1
    text = termination_message(result)
    print(text, flush=True)
    with contextlib.suppress(OSError):
        result_path.write_bytes(text.encode())
    return code


def _serve(args: argparse.Namespace) -> int:
    import logging
    import os

    from aiohttp import web

    from .server.app import build_app
    from .server.runtime import load
    from .storage import StoreError

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    log = logging.getLogger("mlops_operator.server")
    retry = 1.0
    while True:
        try:
            loaded, profile = load(args.model_uri, expected_sha256=args.sha256, reproducibility=args.reproducibility)
            break
        except StoreError as error:
            if error.reason not in ("Unreachable", "Unavailable"):
                log.error("refusing to serve %s: %s", args.model_uri, error)
                return 1
            # The store is down: stay unready (nothing listens yet) and try again, instead of a crash
            # loop whose back-off would outlast the outage.
            log.error("cannot fetch %s, retrying in %.0fs: %s", args.model_uri, retry, error)
            time.sleep(retry)
            retry = min(retry * 2, 30.0)
        except Exception as error:
            log.error("refusing to serve %s: %s: %s", args.model_uri, type(error).__name__, error)
            _termination_message(f"refusing to serve {args.model_uri}: {type(error).__name__}: {error}")
            return 1
    log.info("serving model %s version %s (%d features)", loaded.name, loaded.version, len(loaded.features))
    try:
        receipt_key = _receipt_key(args.receipt_key_file or os.environ.get("MLOPS_RECEIPT_KEY_FILE"))
    except ValueError as error:
        log.error("refusing to serve: %s", error)
        return 1
    if receipt_key is None:
        log.warning("no --receipt-key-file: answers carry no receipt and feedback is refused")
    capture = None
    if args.capture_uri:
        from .server.capture import CaptureWriter
        from .storage import ArtifactStore

        capture = CaptureWriter(
            ArtifactStore.from_uri(args.capture_uri),
            "",
            version=loaded.version,
            pod=os.environ.get("HOSTNAME", "server"),
            features=loaded.features,
            sample_rate=args.capture_sample_rate,
            max_age_seconds=args.capture_max_age_seconds,
            max_bytes=args.capture_max_bytes,
        )
        log.info(
            "capturing %.0f%% of the requests and their labels to %s", 100 * args.capture_sample_rate, args.capture_uri
        )
    app = build_app(
        loaded,
        profile=profile,
        max_batch_size=args.max_batch_size,
        max_batch_delay=args.max_batch_delay_ms / 1000,
        capture=capture,
        receipt_key=receipt_key,
        feedback_max_age=args.feedback_max_age_seconds,
    )
    web.run_app(app, host=args.host, port=args.port, access_log=None, print=None)
    return 0


def _termination_message(text: str) -> None:
    """Why the server stopped, where the kubelet shows it (`kubectl describe pod`: Last State, Message)."""
    import os

    path = pathlib.Path(os.environ.get("MLOPS_RESULT_PATH", "/dev/termination-log"))
    with contextlib.suppress(OSError):
        if path.exists():  # the kubelet's (in a pod); none when serving by hand
            path.write_text(text[:4000])


def _receipt_key(path: str | None) -> bytes | None:
    """The receipt key a file holds (the operator mounts it from the ModelDeployment's Secret); None
    without a file. A file named but unreadable or too short is a ValueError: serving without receipts
    when they were asked for would silently refuse every label."""
    from .server.receipts import MIN_KEY_BYTES

    if not path:
        return None
    try:
        key = pathlib.Path(path).read_bytes()
    except OSError as error:
        raise ValueError(f"cannot read the receipt key {path}: {error.strerror or error}") from None
    if len(key) < MIN_KEY_BYTES:
        raise ValueError(f"the receipt key {path} has {len(key)} bytes; at least {MIN_KEY_BYTES} are needed")
    return key


# The Lease is held `LEASE_SECONDS` after its last renewal; the leader renews every `RENEW_SECONDS` and
# stops (the process exits, the kubelet restarts it as a standby) when it could not for `RENEW_DEADLINE`,
# before any standby may take over. A standby looks every `RETRY_SECONDS`.
LEASE_SECONDS, RENEW_SECONDS, RENEW_DEADLINE, RETRY_SECONDS = 15, 4, 10, 2


def _lead(args: argparse.Namespace) -> object:
    """Block until this replica holds the Lease, answering the liveness probe meanwhile (a standby is
    alive); then renew it in a thread that ends the process once it cannot. Returns the elector."""
    import http.server
    import logging
    import os
    import socket
    import threading

    from .adapters import kube
    from .adapters.lease import LeaseElector

    log = logging.getLogger("mlops_operator.leader")
    namespace = args.leader_election_namespace or os.environ.get("MLOPS_POD_NAMESPACE", "")
    if not namespace:
        raise SystemExit("--leader-election needs --leader-election-namespace or $MLOPS_POD_NAMESPACE")
    identity = f"{socket.gethostname()}_{os.urandom(4).hex()}"
    elector = LeaseElector(
        kube.coordination(),
        namespace,
        args.leader_election,
        identity,
        duration=LEASE_SECONDS,
    )

    class Alive(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (the http.server API)
            self.send_response(200 if self.path == "/healthz" else 404)
            self.end_headers()

        def log_message(self, *_: object) -> None:
            pass

    probe = None
    if args.liveness_port:
        probe = http.server.ThreadingHTTPServer(("0.0.0.0", args.liveness_port), Alive)
        threading.Thread(target=probe.serve_forever, daemon=True).start()
    log.info(f"standing by for Lease {namespace}/{args.leader_election} as {identity}")
    while not elector.try_acquire_or_renew():
        time.sleep(RETRY_SECONDS)
    log.info(f"leading: Lease {namespace}/{args.leader_election} held by {identity}")
    if probe is not None:  # kopf serves the probe from now on
        probe.shutdown()
        probe.server_close()

    def renew() -> None:
        renewed = time.monotonic()
        while True:
            time.sleep(RENEW_SECONDS)
            if elector.try_acquire_or_renew():
                renewed = time.monotonic()
            elif time.monotonic() - renewed > RENEW_DEADLINE:
                log.error(f"lost Lease {namespace}/{args.leader_election}: stopping before another replica leads")
                os._exit(1)

    threading.Thread(target=renew, daemon=True, name="lease-renewal").start()
    return elector


def _run(args: argparse.Namespace) -> int:
    import logging

    import kopf

    from . import controllers  # noqa: F401  (registers the handlers)
    from .adapters import kube

    kube.count_kopf_requests()  # before kopf's first request

    kopf.configure(verbose=args.verbose, log_prefix=True)
    # Not a line per liveness probe: neither the HTTP access line nor kopf's "Activity succeeded".
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    logging.getLogger("kopf.activities.probe").setLevel(logging.WARNING)
    # kopf logs "Handler ... succeeded" per watch event at INFO, and posts what it logs per object as
    # Events: a write per event. Warnings and errors still reach both; decisions are posted explicitly.
    logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    if args.metrics_port:
        import prometheus_client

        prometheus_client.start_http_server(args.metrics_port)
    elector = _lead(args) if args.leader_election else None
    try:
        kopf.run(
            clusterwide=not args.namespace,
            namespaces=args.namespace,
            standalone=True,
            liveness_endpoint=f"http://0.0.0.0:{args.liveness_port}/healthz" if args.liveness_port else None,
        )
    finally:
        if elector is not None:
            elector.release()  # type: ignore[attr-defined]
    return 0


if __name__ == "__main__":
    sys.exit(main())
