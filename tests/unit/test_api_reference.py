"""docs/api.md is generated from the models: the checked-in file matches, and it documents every field."""

from __future__ import annotations

from typing import Any

import pytest

from mlops_operator.api import crd
from mlops_operator.api.reference import render_reference
from mlops_operator.cli import main
from support import REPO


def test_checked_in_reference_matches_the_models() -> None:
    checked_in = (REPO / "docs" / "api.md").read_text()
    assert checked_in == render_reference(), (
        "docs/api.md is stale: run `make crds` (or `.venv/bin/mlops-operator api-docs --output docs/api.md`)"
    )


def _paths(node: dict[str, Any], path: str):
    for name, sub in (node.get("properties") or {}).items():
        yield f"{path}.{name}"
        yield from _paths(sub, f"{path}.{name}")
    if isinstance(node.get("items"), dict):
        yield from _paths(node["items"], f"{path}[]")


@pytest.mark.parametrize("info", crd.KINDS, ids=lambda i: i.kind)
def test_every_field_of_the_schema_has_a_row(info: crd.KindInfo) -> None:
    reference = render_reference()
    section = reference.split(f"\n## {info.kind}\n", 1)[1].split("\n## ", 1)[0]
    schema = crd.crd_for(info)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    for part in ("spec", "status"):
        for path in _paths(schema["properties"][part], part):
            assert f"| `{path}` |" in section, f"{info.kind}: no row for {path}"


def _row(path: str) -> list[str]:
    line = next(line for line in render_reference().splitlines() if line.startswith(f"| `{path}` |"))
    return [cell.strip() for cell in line.strip("|").split(" | ")]


@pytest.mark.parametrize(
    ("path", "cells"),
    [
        # path, type, required, default, description, constraints (fragment)
        ("spec.source.builtin.name", ["string", "yes", "", "Name of the bundled dataset", "one of `iris`, `wine`"]),
        ("spec.refreshInterval", ["string", "no", "`10m`", "re-read", "pattern `^([0-9]+(\\.[0-9]+)?(ms\\|s"]),
        ("spec.historyLimit", ["integer", "no", "`10`", "recent versions", "≥ 1 and ≤ 100"]),
        ("spec.resources.requests", ["map[string]int-or-string", "no", "", "Minimum resources", ""]),
        ("spec.model.params", ["object (any fields)", "no", "`{}`", "Keyword arguments", ""]),
        ("spec.promotion.gates", ["[]object", "no", "`[]`", "Absolute bounds", "each item: CEL `has(self.min)"]),
        (
            "spec.strategy.canary.steps",
            [
                "[]object",
                "no",
                "`[{setWeight: 20}, {pause: {duration: 1m}}, {setWeight: 50}, {pause: {duration: 1m}}]`",
                "Steps in order",
                "setWeight must not decrease",
            ],
        ),
        ("spec.analysis.metrics[].successCondition", ["string", "no", "", "'result < 0.05'", "length ≤ 256"]),
        ("status.pauseReason", ["string", "no", "", "PauseStep, InconclusiveAnalysis or SpecPaused", ""]),
        ("status.conditions[].status", ["string", "yes", "", "True, False or Unknown", "one of `True`"]),
    ],
)
def test_rows_carry_type_required_default_description_and_constraints(path: str, cells: list[str]) -> None:
    row = _row(path)
    type_, required, default, description, constraints = row[1:]
    assert [type_, required, default] == cells[:3], row
    assert cells[3] in description and cells[4] in constraints, row


def test_cells_stay_one_table_cell() -> None:
    from mlops_operator.api.reference import _cell

    assert _cell("a | b\n  <md>-stable, x < 1") == "a \\| b &lt;md>-stable, x < 1"


def test_cli_writes_and_prints_the_reference(tmp_path, capsys) -> None:
    target = tmp_path / "api.md"
    assert main(["api-docs", "--output", str(target)]) == 0
    assert target.read_text() == render_reference()
    assert main(["api-docs"]) == 0
    assert capsys.readouterr().out == render_reference()
