"""Models on disk: skops format (no pickle), sha256-checked, loaded with an explicit trusted-type list.

A model version is a directory: `model.skops`, `metadata.json` (feature order, classes, task),
optionally `profile.json` (the training dataset's profile, for drift) and `calibration.json` (the
label-free accuracy estimate's calibration, see calibration.py; only classifiers with probabilities
and a held-out split that can calibrate them have one), and `MANIFEST.json`, which lists the sha256
of each of the others. The sha256 the trainer reports, and the TrainingRun records and the server is
started with, is MANIFEST.json's: one checksum covers every file the server loads. `read_model_files`
checks the manifest against it, then each listed file against the manifest, and returns the verified
bytes (the server parses those, not a second read of the file).

A directory without MANIFEST.json was stored before it existed: its recorded sha256 is model.skops's
own, checked as before; its metadata.json is not covered (`ModelFiles.covered` is False).

A model file that needs any type outside `TRUSTED_TYPES` (beyond what skops trusts by default) is
refused before anything in it is loaded.
"""

from __future__ import annotations

import hashlib
import json
import pathlib
from dataclasses import dataclass
from typing import Any

# skops already trusts scikit-learn's estimators and numpy's containers; these are the remaining
# internal types the allow-listed estimators store (tree structures, neighbour indexes, distances).
TRUSTED_TYPES = frozenset(
    {
        "sklearn.tree._tree.Tree",
        "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
        "sklearn.neighbors._kd_tree.KDTree",
        "sklearn.neighbors._ball_tree.BallTree",
        "sklearn.metrics._dist_metrics.EuclideanDistance64",
        "sklearn.metrics._dist_metrics.ManhattanDistance64",
        "sklearn.metrics._dist_metrics.MinkowskiDistance64",
    }
)


MANIFEST = "MANIFEST.json"
MODEL_FILE = "model.skops"
METADATA_FILE = "metadata.json"
PROFILE_FILE = "profile.json"
CALIBRATION_FILE = "calibration.json"
GOLDEN_FILE = "golden.json"  # held-out rows with what the model predicted for them (modelformat/replay.py)
# Plain names: nothing outside the directory. Code older than a name refuses a manifest that lists it.
MANIFEST_FILES = frozenset({MODEL_FILE, METADATA_FILE, PROFILE_FILE, CALIBRATION_FILE, GOLDEN_FILE})
REQUIRED_FILES = (MODEL_FILE, METADATA_FILE)


class ModelIntegrityError(Exception):
    """The model files are not the ones recorded, or the model needs types outside the trusted list."""


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def manifest_bytes(files: dict[str, bytes]) -> bytes:
    """MANIFEST.json for a model directory holding `files`: the sha256 of each."""
    unknown = sorted(set(files) - MANIFEST_FILES)
    if unknown or any(name not in files for name in REQUIRED_FILES):
        raise ValueError(f"a model directory holds {sorted(MANIFEST_FILES)} (at least {list(REQUIRED_FILES)})")
    manifest = {"manifestVersion": 1, "files": {name: sha256_hex(data) for name, data in sorted(files.items())}}
    return json.dumps(manifest, indent=1, sort_keys=True).encode()


@dataclass(frozen=True)
class ModelFiles:
    """The verified bytes of a model directory's files, by name."""

    files: dict[str, bytes]
    covered: bool  # False: stored before MANIFEST.json, only model.skops is checked

    def __getitem__(self, name: str) -> bytes:
        return self.files[name]

    def get(self, name: str) -> bytes | None:
        return self.files.get(name)


def read_model_files(directory: pathlib.Path, *, expected_sha256: str | None) -> ModelFiles:
    """The files of the model version in `directory`, each checked against the recorded `expected_sha256`.

    Without `expected_sha256` (a model served by hand) the files are still checked against MANIFEST.json.
    Raises ModelIntegrityError for any mismatch, OSError for a file that cannot be read.
    """
    expected = expected_sha256.removeprefix("sha256:").lower() if expected_sha256 else None
    if not (directory / MANIFEST).exists():
        return _read_unmanifested(directory, expected=expected)
    raw = (directory / MANIFEST).read_bytes()
    actual = sha256_hex(raw)
    if expected is not None and actual != expected:
        raise ModelIntegrityError(
            f"{MANIFEST} has sha256 {actual}, but the recorded sha256 is {expected}: not the model version trained"
        )
    try:
        listed = json.loads(raw)["files"]
        if not isinstance(listed, dict) or not all(isinstance(d, str) for d in listed.values()):
            raise TypeError
    except (ValueError, KeyError, TypeError):
        raise ModelIntegrityError(f"{MANIFEST} does not list files with their sha256") from None
    unknown = sorted(set(listed) - MANIFEST_FILES)
    missing = [name for name in REQUIRED_FILES if name not in listed]
    if unknown or missing:
        raise ModelIntegrityError(f"{MANIFEST} lists unknown files {unknown} or misses {missing}")
    files = {}
    for name, digest in sorted(listed.items()):
        data = (directory / name).read_bytes()
        actual = sha256_hex(data)
        if actual != digest:
            raise ModelIntegrityError(
                f"{name} has sha256 {actual}, but {MANIFEST} records {digest}: it was changed after training"
            )
        files[name] = data
    return ModelFiles(files=files, covered=True)


def _read_unmanifested(directory: pathlib.Path, *, expected: str | None) -> ModelFiles:
    data = (directory / MODEL_FILE).read_bytes()
    metadata = (directory / METADATA_FILE).read_bytes()
    if expected is None:  # served by hand: the digest metadata.json itself records
        try:
            expected = json.loads(metadata)["sha256"]
        except (ValueError, KeyError, TypeError):
            raise ModelIntegrityError(f"no sha256 given, and {METADATA_FILE} records none") from None
    actual = sha256_hex(data)
    if actual != expected:
        raise ModelIntegrityError(
            f"model sha256 is {actual}, expected {expected} (and the directory has no {MANIFEST})"
        )
    return ModelFiles(files={MODEL_FILE: data, METADATA_FILE: metadata}, covered=False)


def dump_model(model: Any) -> bytes:
    import skops.io

    return skops.io.dumps(model)


def load_model(data: bytes, *, expected_sha256: str) -> Any:
    """The model in `data`, after checking its sha256 and that it needs only trusted types."""
    actual = sha256_hex(data)
    if actual != expected_sha256.removeprefix("sha256:"):
        raise ModelIntegrityError(f"model sha256 is {actual}, expected {expected_sha256}")
    return load_trusted(data)


def load_trusted(data: bytes) -> Any:
    """The model in `data` (already checked against its recorded sha256), if it needs only trusted types."""
    import skops.io

    untrusted = skops.io.get_untrusted_types(data=data)
    refused = sorted(set(untrusted) - TRUSTED_TYPES)
    if refused:
        raise ModelIntegrityError(f"model needs types outside the trusted list: {refused}")
    return skops.io.loads(data, trusted=untrusted)
