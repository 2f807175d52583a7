"""A dataset as a canonical CSV table: its content version is the sha256 of the canonical bytes.

Canonical form: header cells stripped, rows as the csv module parses them, `\\n` line endings, no
blank lines. The same data therefore gets the same version whatever its line endings or quoting.
"""

from __future__ import annotations

import csv
import hashlib
import io
from dataclasses import dataclass

import numpy as np


class TableError(ValueError):
    """The bytes are not a CSV table (empty, ragged, not text)."""


@dataclass(frozen=True)
class Table:
    header: list[str]
    rows: list[list[str]]

    @property
    def version(self) -> str:
        return "sha256:" + hashlib.sha256(self.canonical_bytes()).hexdigest()

    def canonical_bytes(self) -> bytes:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(self.header)
        writer.writerows(self.rows)
        return out.getvalue().encode()

    def column(self, name: str) -> list[str]:
        index = self.header.index(name)
        return [row[index] for row in self.rows]

    def numeric_matrix(self, columns: list[str]) -> np.ndarray:
        """The columns as a float matrix; raises TableError naming the first cell that is not a number."""
        indexes = [self.header.index(c) for c in columns]
        matrix = np.empty((len(self.rows), len(columns)), dtype=np.float64)
        for r, row in enumerate(self.rows):
            for j, i in enumerate(indexes):
                try:
                    matrix[r, j] = float(row[i]) if row[i].strip() else np.nan
                except ValueError:
                    raise TableError(f"column {columns[j]!r}, row {r + 1}: {row[i]!r} is not a number") from None
        return matrix


def parse_csv(data: bytes) -> Table:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise TableError(f"the data is not UTF-8 text ({error.reason} at byte {error.start})") from None
    reader = csv.reader(io.StringIO(text))
    lines = [row for row in reader if row and any(cell.strip() for cell in row)]
    if not lines:
        raise TableError("the data is empty: no header row")
    header = [cell.strip() for cell in lines[0]]
    if len(set(header)) != len(header):
        duplicated = sorted({h for h in header if header.count(h) > 1})
        raise TableError(f"the header repeats column names: {duplicated}")
    rows = lines[1:]
    for number, row in enumerate(rows, start=1):
        if len(row) != len(header):
            raise TableError(f"row {number} has {len(row)} cells, the header has {len(header)}")
    return Table(header=header, rows=rows)


def from_arrays(feature_names: list[str], features: np.ndarray, target: np.ndarray, target_name: str) -> Table:
    """A table from scikit-learn arrays (the bundled datasets)."""

    def cell(value: object) -> str:
        number = float(value)  # type: ignore[arg-type]
        return str(int(number)) if number.is_integer() else repr(number)

    rows = [[cell(v) for v in row] + [cell(t)] for row, t in zip(features, target, strict=True)]
    return Table(header=[*feature_names, target_name], rows=rows)
