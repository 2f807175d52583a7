"""The locked environment (`make lock`): requirements.lock (the image) and requirements-dev.lock (.venv, CI)
pin every dependency pyproject.toml names, within its range, each with its hashes, and agree."""

from __future__ import annotations

import re
import tomllib

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from support import REPO

PIN = re.compile(r"^([A-Za-z0-9_.\[\],-]+)==([^\s\\]+)")


def pins(lock: str) -> dict[str, tuple[str, int]]:
    """{distribution: (version, hashes)} of a lock file."""
    found: dict[str, tuple[str, int]] = {}
    name = None
    for line in (REPO / lock).read_text().splitlines():
        if match := PIN.match(line):
            name = canonicalize_name(match.group(1).split("[")[0])
            found[name] = (match.group(2), 0)
        elif name and line.strip().startswith("--hash=sha256:"):
            version, hashes = found[name]
            found[name] = (version, hashes + 1)
    return found


def test_the_locks_pin_every_dependency_within_its_range_with_hashes() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    runtime, dev = pins("requirements.lock"), pins("requirements-dev.lock")
    for lock, wanted in ((runtime, project["dependencies"]), (dev, project["optional-dependencies"]["dev"])):
        for text in wanted:
            requirement = Requirement(text)
            name = canonicalize_name(requirement.name)
            assert name in lock, f"{name} is not locked: run `make lock`"
            assert requirement.specifier.contains(lock[name][0]), f"{name}=={lock[name][0]} is not {requirement}"
    assert all(hashes for _, hashes in [*runtime.values(), *dev.values()]), "a pin without its hashes"
    differ = {n: (v, dev.get(n, ("-",))[0]) for n, (v, _) in runtime.items() if dev.get(n, ("",))[0] != v}
    assert not differ, f"the image and .venv would run other versions: {differ}"


def test_each_image_variant_lock_is_the_image_lock_but_for_what_it_overrides() -> None:
    """requirements-<variant>.lock (hack/lock-variants/<variant>.txt): the versions the variant names, every
    other distribution as the image has it (scikit-learn 1.9 needs narwhals, 1.3 does not), with hashes."""
    runtime = pins("requirements.lock")
    for overrides in sorted((REPO / "hack/lock-variants").glob("*.txt")):
        wanted = {
            canonicalize_name(m.group(1)): m.group(2)
            for line in overrides.read_text().splitlines()
            if (m := PIN.match(line))
        }
        variant = pins(f"requirements-{overrides.stem}.lock")
        assert {n: variant[n][0] for n in wanted} == wanted, f"{overrides.name}: run `make lock`"
        others = {n: v for n, (v, _) in variant.items() if n not in wanted and runtime.get(n, ("",))[0] != v}
        assert not others, f"requirements-{overrides.stem}.lock differs from requirements.lock in {others}"
        assert all(hashes for _, hashes in variant.values()), "a pin without its hashes"
