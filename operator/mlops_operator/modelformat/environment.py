"""What a model version was trained with: Python, the libraries whose versions decide what it predicts,
the lock file the image installed them from (its sha256) and the image the trainer ran in.

The trainer records it in the version's metadata.json (covered by MANIFEST.json) and in its result, so
the TrainingRun's status shows it (`status.model.environment`) and a server can compare it with its own."""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import pathlib
import platform

from ..api.names import IMAGE_ENV

# The distributions whose versions are recorded, by the key they have in the environment.
LIBRARIES = {"scikitLearn": "scikit-learn", "numpy": "numpy", "scipy": "scipy", "skops": "skops", "pyarrow": "pyarrow"}
LOCK_FILE_ENV = "MLOPS_LOCK_FILE"  # the image's requirements.lock (operator/Dockerfile)


def current_environment() -> dict[str, str]:
    """This process's environment, as a version records it (keys left out when unknown)."""
    found = {"python": platform.python_version()}
    for key, distribution in LIBRARIES.items():
        try:
            found[key] = importlib.metadata.version(distribution)
        except importlib.metadata.PackageNotFoundError:
            continue
    lock = pathlib.Path(os.environ.get(LOCK_FILE_ENV) or "/nonexistent")
    if lock.is_file():
        found["lockSha256"] = hashlib.sha256(lock.read_bytes()).hexdigest()
    if image := os.environ.get(IMAGE_ENV):
        found["image"] = image
    return found
