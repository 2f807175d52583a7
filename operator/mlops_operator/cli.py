"""The `mlops-operator` command: `run` the operator, print the generated `crds`."""

from __future__ import annotations

import argparse
import pathlib
import sys

from . import __version__


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mlops-operator", description=__doc__)
    parser.add_argument("--version", action="version", version=f"mlops-operator {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="run the operator (kopf) against the current kubeconfig or in-cluster")
    run.add_argument("--namespace", "-n", action="append", default=[], help="watch only these namespaces")
    run.add_argument("--liveness-port", type=int, default=8081, help="port of /healthz (0: off)")
    run.add_argument("--peering", default="", help="kopf peering name for HA (several replicas, one active)")
    run.add_argument("--verbose", action="store_true", help="log debug messages")

    crds = commands.add_parser("crds", help="print the generated CustomResourceDefinitions")
    crds.add_argument("--output-dir", action="append", default=[], help="write one file per CRD into DIR")

    args = parser.parse_args(argv)
    if args.command == "crds":
        return _crds(args.output_dir)
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


def _run(args: argparse.Namespace) -> int:
    import kopf

    from . import controllers  # noqa: F401  (registers the handlers)

    kopf.configure(verbose=args.verbose, log_prefix=True)
    kopf.run(
        clusterwide=not args.namespace,
        namespaces=args.namespace,
        standalone=not args.peering,
        peering_name=args.peering or None,
        liveness_endpoint=f"http://0.0.0.0:{args.liveness_port}/healthz" if args.liveness_port else None,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
