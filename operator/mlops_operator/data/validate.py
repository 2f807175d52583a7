"""Checks a table against a Dataset's schema; each problem names the column and the first offending rows.

A cell's verdict is `_cell_problem` on its canonical text, as it always was. To stay fast on millions of
rows, each column is first narrowed, vectorised, to the cells that may have a problem (a superset of
those that do: cells pyarrow cannot decide are always in it); only those reach `_cell_problem`, in row
order, until MAX_ROWS_PER_PROBLEM are found. A typed source (Parquet) must also have a column type that
fits: a text column where numbers are expected is one problem naming the column.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..api.dataset import ColumnSchema, DatasetSpec
from .table import BATCH_ROWS, BLANK_PATTERN, PY_WHITESPACE, Table, in_order

MAX_ROWS_PER_PROBLEM = 3
MAX_PROBLEMS = 5
_BOOLEANS = {"true", "false", "1", "0", "yes", "no"}
_WS = "".join(f"\\x{{{ord(ch):x}}}" for ch in PY_WHITESPACE)
# str.strip().lower() in _BOOLEANS, spelled out: RE2's (?i) would also match the long s (ſ) for s.
_BOOLEAN_PATTERN = f"^[{_WS}]*(?:[Tt][Rr][Uu][Ee]|[Ff][Aa][Ll][Ss][Ee]|[Yy][Ee][Ss]|[Nn][Oo]|1|0)[{_WS}]*$"


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


def _mask(array: pa.ChunkedArray | pa.Array) -> np.ndarray:
    return np.asarray(array.to_numpy(zero_copy_only=False), dtype=bool)


def _suspects(table: Table, column: ColumnSchema) -> np.ndarray:
    """Whether each cell may have a problem: every cell that has one, and some that have none."""
    numeric = column.type in ("float", "integer")
    text = None if numeric and column.allowed_values is None else table.text(column.name)
    if column.type in ("float", "integer"):
        numbers = table.numbers(column.name)
        values = numbers.values
        with np.errstate(invalid="ignore"):
            wrong = ~np.isfinite(values)
            if column.type == "integer":
                wrong |= np.floor(values) != values
            if column.min is not None:
                wrong |= values < column.min
            if column.max is not None:
                wrong |= values > column.max
        suspect = numbers.unknown | (wrong & ~numbers.blank)
        if not column.nullable:
            suspect |= numbers.blank
    elif column.type == "boolean":
        suspect = ~_mask(pc.match_substring_regex(text, _BOOLEAN_PATTERN))
        if column.nullable:
            suspect &= ~_mask(pc.equal(text, ""))
    elif column.nullable:
        suspect = np.zeros(table.num_rows, dtype=bool)
    else:
        suspect = _mask(pc.match_substring_regex(text, BLANK_PATTERN))
    if column.allowed_values is not None:
        suspect |= ~_mask(pc.is_in(text, value_set=pa.array(column.allowed_values, type=pa.string())))
    return suspect


def _first_problems(table: Table, column: ColumnSchema) -> list[str]:
    """`row N: problem` for the first MAX_ROWS_PER_PROBLEM cells of the column that have one."""
    bad: list[str] = []
    rows = np.flatnonzero(_suspects(table, column))
    text = table.text(column.name) if rows.size else None
    for start in range(0, rows.size, BATCH_ROWS):
        chunk = rows[start : start + BATCH_ROWS]
        for row, value in zip(chunk.tolist(), text.take(pa.array(chunk)).to_pylist(), strict=True):
            issue = _cell_problem(value, column)
            if issue:
                bad.append(f"row {row + 1}: {issue}")
                if len(bad) == MAX_ROWS_PER_PROBLEM:
                    return bad
    return bad


def _type_problem(kind: pa.DataType, column: ColumnSchema) -> str | None:
    """For a typed source: why the column's type cannot hold the schema's type, if it cannot."""
    if pa.types.is_dictionary(kind):
        kind = kind.value_type
    numeric = pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_decimal(kind)
    text = pa.types.is_string(kind) or pa.types.is_large_string(kind)
    fits = {
        "float": numeric,
        "integer": numeric,  # a float column of whole numbers (pandas' integers with nulls) is checked by value
        "boolean": pa.types.is_boolean(kind) or pa.types.is_integer(kind) or text,
    }
    if pa.types.is_null(kind) or fits.get(column.type, True):
        return None
    return f"has type {kind} in the data, which cannot hold {column.type} values"


def schema_problems(table: Table, spec: DatasetSpec) -> list[str]:
    """Human-readable problems, most important first; empty when the table passes."""
    problems: list[str] = []
    if spec.target not in table.header:
        problems.append(f"the target column {spec.target!r} is not in the header {table.header}")
    schema = spec.schema_
    if schema is None:
        return problems
    if table.num_rows < schema.min_rows:
        problems.append(f"the data has {table.num_rows} rows, fewer than minRows {schema.min_rows}")
    for problem in in_order(functools.partial(_column_problem, table), schema.columns):
        if problem:
            problems.append(problem)
        if len(problems) >= MAX_PROBLEMS:
            break
    return problems[:MAX_PROBLEMS]


def _column_problem(table: Table, column: ColumnSchema) -> str | None:
    """The problem of one column, if it has one (columns are checked on a few threads)."""
    if column.name not in table.header:
        return f"column {column.name!r} is missing from the header"
    if table.typed and (wrong_type := _type_problem(table.arrow_type(column.name), column)):
        return f"column {column.name!r} {wrong_type}"
    bad = _first_problems(table, column)
    return f"column {column.name!r}: " + "; ".join(bad) if bad else None
