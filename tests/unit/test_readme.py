"""The README tells the truth: the make targets it names exist, and the links it gives resolve.
(Its manifests are applied to the API server by tests/integration/test_crds.py.)"""

from __future__ import annotations

import pathlib
import re

REPO = pathlib.Path(__file__).resolve().parents[2]
README = (REPO / "README.md").read_text()


def test_every_make_target_the_readme_names_exists() -> None:
    targets = set(re.findall(r"^([a-z][a-z-]*):", (REPO / "Makefile").read_text(), re.MULTILINE))
    named = set(re.findall(r"make ([a-z][a-z-]+)", README))
    assert named and named <= targets, f"the README names targets the Makefile lacks: {sorted(named - targets)}"


def test_the_ci_runs_the_readmes_test_command() -> None:
    assert "make test" in README
    assert "make test" in (REPO / ".ci/run").read_text()


def test_every_relative_link_resolves() -> None:
    links = [link for link in re.findall(r"\]\(([^)#]+)\)", README) if "://" not in link]
    assert links
    missing = [link for link in links if not (REPO / link).exists()]
    assert not missing, f"broken links in README.md: {missing}"


def readme_manifests() -> list[str]:
    return re.findall(r"```yaml\n(.*?)```", README, re.DOTALL)


def test_the_tour_shows_the_three_kinds() -> None:
    kinds = [re.search(r"^kind: (\w+)", m, re.MULTILINE).group(1) for m in readme_manifests()]
    assert kinds == ["Dataset", "TrainingRun", "ModelDeployment"]
