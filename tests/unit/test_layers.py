"""The pure packages stay pure: importing any module of rollout/, resources/ or the promotion policy
pulls in no Kubernetes client, no kopf and no HTTP client. Each module is imported in a fresh
interpreter, since this test process has long imported them all."""

from __future__ import annotations

import json
import pathlib
import pkgutil
import subprocess
import sys

import pytest

import mlops_operator
import mlops_operator.resources
import mlops_operator.rollout

FORBIDDEN = ("kubernetes", "kopf", "requests", "boto3")
PURE = sorted(
    [
        f"{package.__name__}.{m.name}"
        for package in (mlops_operator.rollout, mlops_operator.resources)
        for m in pkgutil.iter_modules(package.__path__)
    ]
    + ["mlops_operator.registry.promotion", "mlops_operator.registry.rollbacks"]
)
PROBE = """
import importlib, json, sys
importlib.import_module(sys.argv[1])
print(json.dumps(sorted({name.split(".")[0] for name in sys.modules} & set(sys.argv[2:]))))
"""


def test_the_pure_modules_are_found() -> None:
    assert {
        "mlops_operator.rollout.canary",
        "mlops_operator.rollout.timing",
        "mlops_operator.rollout.analysis",
        "mlops_operator.resources.serving",
    } <= set(PURE)


@pytest.mark.parametrize("module", PURE)
def test_a_pure_module_imports_no_client(module: str) -> None:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, module, *FORBIDDEN], capture_output=True, text=True, check=False, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [], f"{module} pulls in {done.stdout.strip()}"


def test_the_probe_sees_a_client_when_there_is_one() -> None:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, "mlops_operator.adapters.prometheus", *FORBIDDEN],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert json.loads(done.stdout) == ["requests"]


def _imported_modules(path) -> set[str]:
    """Every module `path` imports, anywhere in it (also inside functions), as absolute names."""
    import ast

    package = ".".join(path.relative_to(PACKAGE_ROOT).with_suffix("").parts[:-1])
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
            module = f"{base}.{node.module}" if node.level and node.module else (node.module or base)
            found |= {module, *(f"{module}.{alias.name}" for alias in node.names)}
    return found


PACKAGE_ROOT = pathlib.Path(mlops_operator.__file__).parent.parent


@pytest.mark.parametrize("path", sorted((PACKAGE_ROOT / "mlops_operator/server").glob("*.py")), ids=lambda p: p.name)
def test_the_server_does_not_depend_on_training_code(path) -> None:
    """The server reads the model format (modelformat/), never the trainer's modules."""
    trainer = sorted(m for m in _imported_modules(path) if m.startswith("mlops_operator.trainer"))
    assert trainer == [], f"{path.name} imports {trainer}"


def test_the_import_reader_sees_relative_imports() -> None:
    imported = _imported_modules(PACKAGE_ROOT / "mlops_operator/server/runtime.py")
    assert "mlops_operator.modelformat.files" in imported, sorted(imported)
