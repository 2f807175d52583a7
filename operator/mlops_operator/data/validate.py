"""Checks a table against a Dataset's schema; each problem names the column and the first offending rows."""

from __future__ import annotations

import math

from ..api.dataset import ColumnSchema, DatasetSpec
from .table import Table

MAX_ROWS_PER_PROBLEM = 3
MAX_PROBLEMS = 5
_BOOLEANS = {"true", "false", "1", "0", "yes", "no"}


def _cell_problem(value: str, column: ColumnSchema) -> str | None:
    if not value.strip():
        return None if column.nullable else "is empty but the column is not nullable"
    if column.type in ("float", "integer"):
        try:
            number = float(value)
        except ValueError:
            return f"{value!r} is not a {column.type}"
        if not math.isfinite(number):
            return f"{value!r} is not a finite number"
        if column.type == "integer" and not number.is_integer():
            return f"{value!r} is not an integer"
        if column.min is not None and number < column.min:
            return f"{value} is below the minimum {column.min:g}"
        if column.max is not None and number > column.max:
            return f"{value} is above the maximum {column.max:g}"
    elif column.type == "boolean" and value.strip().lower() not in _BOOLEANS:
        return f"{value!r} is not a boolean"
    if column.allowed_values is not None and value not in column.allowed_values:
        return f"{value!r} is not one of the allowed values"
    return None


def schema_problems(table: Table, spec: DatasetSpec) -> list[str]:
    """Human-readable problems, most important first; empty when the table passes."""
    problems: list[str] = []
    if spec.target not in table.header:
        problems.append(f"the target column {spec.target!r} is not in the header {table.header}")
    schema = spec.schema_
    if schema is None:
        return problems
    if len(table.rows) < schema.min_rows:
        problems.append(f"the data has {len(table.rows)} rows, fewer than minRows {schema.min_rows}")
    for column in schema.columns:
        if column.name not in table.header:
            problems.append(f"column {column.name!r} is missing from the header")
            continue
        bad = []
        for number, value in enumerate(table.column(column.name), start=1):
            issue = _cell_problem(value, column)
            if issue:
                bad.append(f"row {number}: {issue}")
                if len(bad) == MAX_ROWS_PER_PROBLEM:
                    break
        if bad:
            problems.append(f"column {column.name!r}: " + "; ".join(bad))
    return problems[:MAX_PROBLEMS]
