"""The README's first command cannot rot: `make demo` is `make deploy` (the operator fixture runs the
same hack/deploy.sh) followed by hack/demo.py, which this test runs and reads as a user would."""

from __future__ import annotations

import subprocess
import sys

import pytest

from support import REPO, Kubectl

pytestmark = pytest.mark.usefixtures("operator")


def test_the_demo_tells_the_whole_lifecycle(cluster: Kubectl) -> None:
    done = subprocess.run([sys.executable, str(REPO / "hack/demo.py")], capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, f"the demo failed:\n{done.stdout}\n{done.stderr}"
    out = done.stdout
    for words in (
        "✓ validated",
        "✓ champion: iris-stump, the better of the two",
        "✓ iris-stump serves 100 %",
        "canary iris-logreg at 25 %",
        "canary iris-logreg at 50 %",
        "✓ iris-logreg is stable at 100 %",
        "✓ rolled back automatically",
        "✓ stable is still iris-logreg",
        "make cluster-down",
    ):
        assert words in out, f"{words!r} is missing from the demo's output:\n{out}"
    md = cluster.get("modeldeployment", "iris", "mlops-demo")["status"]
    assert [(h["version"], h["outcome"]) for h in md["history"][:2]] == [
        ("iris-guess", "RolledBack"),
        ("iris-logreg", "Promoted"),
    ]
    assert md["stable"]["version"] == "iris-logreg" and "iris-guess" in md["failedVersions"]
