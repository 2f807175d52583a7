"""Fixtures the unit tests share: a real S3 server (VersityGW on loopback) for the object-store tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from support.s3server import S3Server, s3_server


@pytest.fixture(scope="module")
def s3(tmp_path_factory) -> Iterator[S3Server]:
    """One S3 server per test module, on a fresh posix root; each test takes buckets of its own."""
    root = tmp_path_factory.mktemp("s3") / "data"
    root.mkdir()
    with s3_server(root) as running:
        yield running
