"""A real S3 server for tests: the local cluster's VersityGW binary on loopback, over a temporary posix root.

The binary is built from its Go module by hack/localcluster/build.sh if the cache lacks it (minutes,
once); a test that needs S3 never runs against a fake.
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import secrets
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass

from support import REPO, wait_for


@dataclass(frozen=True)
class S3Server:
    endpoint: str
    access_key: str
    secret_key: str
    root: pathlib.Path  # the posix backend: one directory per bucket

    def env(self) -> dict[str, str]:
        """What a pod of the operator gets: the endpoint, the credentials, path-style addressing."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_REGION": "us-east-1",
            "MLOPS_S3_ADDRESSING": "path",
        }

    def bucket(self, name: str) -> str:
        (self.root / name).mkdir(exist_ok=True)
        return name


def versitygw_binary() -> pathlib.Path:
    built = subprocess.run(
        ["bash", str(REPO / "hack/localcluster/build.sh")],
        capture_output=True,
        text=True,
        env={**os.environ, "LOCALCLUSTER_COMPONENTS": "versitygw"},
    )
    if built.returncode != 0:
        raise RuntimeError(f"building VersityGW failed:\n{built.stderr[-3000:]}")
    version = next(
        line.split("=", 1)[1].split()[0]
        for line in (REPO / "hack/localcluster/versions.sh").read_text().splitlines()
        if line.startswith("VERSITYGW_VERSION=")
    )
    return pathlib.Path(built.stdout.strip()) / f"versitygw-{version}"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _healthy(url: str) -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


@contextlib.contextmanager
def s3_server(root: pathlib.Path) -> Iterator[S3Server]:
    access, secret = f"test{secrets.token_hex(4)}", secrets.token_urlsafe(18)
    port = _free_port()
    log = (root.parent / "versitygw.log").open("wb")
    process = subprocess.Popen(
        [str(versitygw_binary()), "--port", f"127.0.0.1:{port}", "--health", "/health", "--quiet", "posix", str(root)],
        env={**os.environ, "ROOT_ACCESS_KEY_ID": access, "ROOT_SECRET_ACCESS_KEY": secret},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        endpoint = f"http://127.0.0.1:{port}"
        wait_for(
            lambda: process.poll() is not None or _healthy(f"{endpoint}/health"),
            timeout=30,
            what="VersityGW to answer its health check",
        )
        if process.poll() is not None:
            raise RuntimeError(f"VersityGW exited: {(root.parent / 'versitygw.log').read_text()[-2000:]}")
        yield S3Server(endpoint, access, secret, root)
    finally:
        process.terminate()
        process.wait(timeout=10)
        log.close()
