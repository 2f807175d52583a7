"""A dataset as a columnar table (pyarrow) whose content version is the sha256 of its canonical CSV bytes.

Canonical form (unchanged since the first version, so pinned versions still resolve): header cells
stripped, rows as Python's csv module parses them, no blank rows (every cell empty or whitespace),
`\\n` line endings, and csv.writer's minimal quoting: a cell is quoted when it holds `,`, `"` or `\\n`
(quotes doubled); a bare `\\r` is not a reason, as in the csv.writer of CPython before 3.11.9, which
computed the versions that exist; a row of one empty cell is written `""`. The same data therefore
gets the same version whatever its line endings or quoting, and whatever the Python it is checked on.

- CSV: pyarrow.csv reads every column as text, which is what the version is defined over ("1.50" and
  "1.5" are different content); numbers are typed from the text on demand, vectorised
  (`numbers`, `numeric_matrix`). When the input is already canonical (no quotes, no `\\r`, no blank
  lines, a stripped header: the usual case, and always the stored snapshot) its bytes are the
  canonical bytes and nothing is rewritten (`\\r\\n` endings alone: one replace). Whatever pyarrow
  declines (a ragged row, an unterminated quote, a row longer than its 1 MiB block, bytes that are not
  UTF-8) is read by the csv module itself, in chunks, so it keeps its old rows or its old error. One
  difference: a bare `\\r` line ending, which the csv module refused (the check crashed), is a line end.
- Parquet: read typed (pyarrow.parquet). Its version is the sha256 of the canonical CSV of its values
  as pandas' `to_csv(index=False)` writes them: integers in decimal, floats as Python's repr of the
  float64 (`0.1`, `2.0`, `1e-05`, `nan`, `inf`; a float32 is widened first), booleans `True`/`False`,
  nulls empty, text as it is, other types (decimal, date, timestamp, UTF-8 binary) as pyarrow casts
  them to text; column names stripped, blank rows dropped. So integer, float64, boolean and text
  columns with nulls get one version whether they arrive as such a CSV or as Parquet.
- Arrays (scikit-learn's bundled datasets): whole numbers without a decimal point, others as repr.

The canonical bytes are produced batch by batch (vectorised quoting and joining in pyarrow), not as
one Python string; a table holds one copy of them, the snapshot the check stores.
"""

from __future__ import annotations

import codecs
import csv
import functools
import hashlib
import io
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

BOM = codecs.BOM_UTF8
PARQUET_MAGIC = b"PAR1"
BATCH_ROWS = 1 << 16
BATCH_BYTES = 32 << 20
HEAD_ROWS = 256
WORKERS = min(4, os.cpu_count() or 1)
T, R = TypeVar("T"), TypeVar("R")
CHUNK_BYTES = 1 << 20
# The characters str.strip() removes (str.isspace); test_tables checks the list against Python's.
PY_WHITESPACE = "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680" + "".join(map(chr, range(0x2000, 0x200B)))
PY_WHITESPACE += "\u2028\u2029\u202f\u205f\u3000"
_WS_CLASS = "".join(f"\\x{{{ord(ch):x}}}" for ch in PY_WHITESPACE)
BLANK_PATTERN = f"^[{_WS_CLASS}]*$"
# Numbers pyarrow's cast reads exactly as Python's float() does (both round correctly).
SIMPLE_NUMBER = r"^-?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?$"


class TableError(ValueError):
    """The bytes are not a table (empty, ragged, not text, not Parquet, a column no CSV can hold)."""


@dataclass(frozen=True)
class Numbers:
    """A column read as numbers: `values` (NaN where blank or undecided), `blank` (the text is empty),
    `unknown` (cells pyarrow could not decide, e.g. " 1.5" or "1_000": Python's float() decides)."""

    values: np.ndarray
    blank: np.ndarray
    unknown: np.ndarray


@dataclass(frozen=True, eq=False)
class Table:
    """Columns in `data` (one per header name, in order). `typed` when the source had types (Parquet):
    then validation checks the types too; otherwise every column is the source's text."""

    header: list[str]
    data: pa.Table
    typed: bool = False
    known_canonical: bytes | None = field(default=None, repr=False)

    @property
    def num_rows(self) -> int:
        return self.data.num_rows

    @functools.cached_property
    def version(self) -> str:
        return "sha256:" + hashlib.sha256(self.canonical_bytes()).hexdigest()

    def canonical_bytes(self) -> bytes:
        """The canonical CSV (see the module's docstring); built once, batch by batch."""
        return self._canonical

    @functools.cached_property
    def _canonical(self) -> bytes:
        if self.known_canonical is not None:
            return self.known_canonical
        out = io.BytesIO()
        for chunk in self.canonical_chunks():
            out.write(chunk)
        return out.getvalue()  # BytesIO hands over its buffer: no second copy

    def canonical_chunks(self) -> Iterator[bytes | memoryview]:
        """The canonical CSV in pieces of at most BATCH_ROWS rows, for hashing or writing as a stream."""
        if self.known_canonical is not None:
            yield self.known_canonical
            return
        yield (",".join(_quote_cell(h, alone=len(self.header) == 1) for h in self.header) + "\n").encode()
        batches = (batch for batch in self.data.to_batches(max_chunksize=self._batch_rows()) if batch.num_rows)
        yield from in_order(_format_batch, batches)

    def _batch_rows(self) -> int:
        """Rows per formatted batch: BATCH_ROWS, fewer for wide rows, so that a batch's text stays far below
        the 2 GiB a pyarrow string array can hold (text can be a few times the values' size)."""
        per_row = self.data.nbytes // max(1, self.num_rows)
        return max(1, min(BATCH_ROWS, BATCH_BYTES // max(1, per_row)))

    def index(self, name: str) -> int:
        return self.header.index(name)

    def arrow_type(self, name: str) -> pa.DataType:
        return self.data.schema.field(self.index(name)).type

    def text(self, name: str) -> pa.ChunkedArray:
        """The column's cells as canonical text (no nulls)."""
        column = self.data.column(self.index(name))
        return pa.chunked_array([text_of(chunk) for chunk in column.chunks], type=pa.string())

    def column(self, name: str) -> list[str]:
        """The column's cells as Python strings (small tables, tests; large ones use `text`)."""
        return self.text(name).to_pylist()

    def numbers(self, name: str) -> Numbers:
        """The column as float64, vectorised; see Numbers for what stays for Python to decide."""
        column = self.data.column(self.index(name))
        if pa.types.is_integer(column.type) or pa.types.is_floating(column.type):
            values = pc.cast(column, pa.float64(), safe=False)
            blank = _bools(pc.is_null(values))
            return Numbers(_floats(values), blank, np.zeros(len(blank), dtype=bool))
        return text_numbers(self.text(name))

    def numeric_column(self, name: str) -> np.ndarray:
        values, bad = self._numeric_column(name)
        if bad is not None:
            raise TableError(f"column {name!r}, row {bad[0] + 1}: {bad[1]!r} is not a number")
        return values

    def _numeric_column(self, name: str) -> tuple[np.ndarray, tuple[int, str] | None]:
        """The column as floats (blank: NaN) as Python's float() reads each cell, or its first bad cell.
        The first cells are tried first: a text column is usually told from a number column there."""
        if not (pa.types.is_integer(self.arrow_type(name)) or pa.types.is_floating(self.arrow_type(name))):
            head = self.text(name).slice(0, HEAD_ROWS).to_pylist()
            for row, cell in enumerate(head):
                try:
                    float(cell) if cell.strip() else None
                except ValueError:
                    return np.empty(0), (row, cell)
        numbers = self.numbers(name)
        values = numbers.values
        undecided = np.flatnonzero(numbers.unknown)
        if undecided.size:
            values = values.copy()
            text = self.text(name)
            for start in range(0, undecided.size, BATCH_ROWS):
                rows = undecided[start : start + BATCH_ROWS]
                for row, cell in zip(rows.tolist(), text.take(pa.array(rows)).to_pylist(), strict=True):
                    if not cell.strip():
                        values[row] = np.nan
                        continue
                    try:
                        values[row] = float(cell)
                    except ValueError:
                        return values, (row, cell)
        return values, None

    def numeric_matrix(self, columns: list[str]) -> np.ndarray:
        """The columns as a float matrix; raises TableError naming the first cell (by row, then column)
        that is not a number."""
        matrix = np.empty((self.num_rows, len(columns)), dtype=np.float64)
        first_bad: tuple[int, int, str] | None = None
        for j, name in enumerate(columns):
            values, bad = self._numeric_column(name)
            if bad is not None and (first_bad is None or bad[0] < first_bad[0]):
                first_bad = (bad[0], j, bad[1])
            if first_bad is None:
                matrix[:, j] = values
        if first_bad is not None:
            row, j, cell = first_bad
            raise TableError(f"column {columns[j]!r}, row {row + 1}: {cell!r} is not a number")
        return matrix

    @staticmethod
    def from_rows(header: list[str], rows: list[list[str]]) -> Table:
        """A text table from Python rows (every row as long as the header)."""
        columns = [pa.array([row[i] for row in rows], type=pa.string()) for i in range(len(header))]
        return Table(header=list(header), data=_arrow_table(header, columns))


def _arrow_table(header: list[str], columns: list) -> pa.Table:
    names = [f"c{i}" for i in range(len(header))]  # positional: header names may be "" or look alike
    return pa.Table.from_arrays(columns, names=names) if columns else pa.table({})


# --- text of typed values, and the canonical rows --------------------------------------------------------


def _bools(array: pa.ChunkedArray | pa.Array) -> np.ndarray:
    return np.asarray(array.to_numpy(zero_copy_only=False), dtype=bool)


def _floats(array: pa.ChunkedArray | pa.Array) -> np.ndarray:
    return np.asarray(array.to_numpy(zero_copy_only=False), dtype=np.float64)


def check_text_type(name: str, kind: pa.DataType) -> None:
    """Raises TableError for a column type no CSV cell can hold (lists, structs, maps, ...)."""
    if pa.types.is_dictionary(kind):
        return check_text_type(name, kind.value_type)
    if pa.types.is_nested(kind) or pa.types.is_union(kind) or isinstance(kind, pa.ExtensionType):
        raise TableError(f"column {name!r} has type {kind}, which a CSV cell cannot hold")
    return None


def _check_writable(name: str, column: pa.ChunkedArray) -> None:
    """Raises TableError, naming the column, if its values have no CSV text: bytes that are not UTF-8 (all
    of them are tried), or a type pyarrow cannot cast to text (one value is tried)."""
    kind = column.type.value_type if pa.types.is_dictionary(column.type) else column.type
    if pa.types.is_string(kind) or pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind):
        return
    binary = pa.types.is_binary(kind) or pa.types.is_large_binary(kind) or pa.types.is_fixed_size_binary(kind)
    try:
        for chunk in column.chunks if binary else column.chunks[:1]:
            text_of(chunk if binary else chunk.slice(0, 1))
    except TableError as error:
        raise TableError(f"column {name!r}: {error}") from None


def text_of(array: pa.Array) -> pa.Array:
    """The canonical text of each value (see the module's docstring): a string array without nulls."""
    kind = array.type
    if pa.types.is_dictionary(kind):
        return text_of(array.dictionary_decode())
    if pa.types.is_string(kind):
        return array.fill_null("") if array.null_count else array
    if pa.types.is_null(kind):
        return pa.nulls(len(array), pa.string()).fill_null("")
    if pa.types.is_boolean(kind):
        return pc.if_else(array, "True", "False").fill_null("")
    if pa.types.is_floating(kind):
        return float_text(pc.cast(array, pa.float64()))
    try:
        return pc.cast(array, pa.string()).fill_null("")
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as error:
        raise TableError(f"its {kind} values cannot be written as CSV text: {error}") from None


def float_text(array: pa.Array) -> pa.Array:
    """Python's repr of each float64 (nulls: ""), vectorised: pyarrow's shortest digits where repr writes
    the same fixed notation (1e-4 ≤ |x| < 1e16, and pyarrow wrote no exponent), with `.0` added to whole
    numbers; repr itself for the rest (exponents, nan, inf: rarely many)."""
    values = _floats(array)
    text = pc.cast(array, pa.string()).fill_null("")
    with np.errstate(invalid="ignore"):
        size = np.abs(values)
        fixed = np.isfinite(values) & ((size == 0) | ((size >= 1e-4) & (size < 1e16)))
    if b"e" in _data_bytes(text).tobytes():  # no exponent anywhere: the usual case, told by one memchr
        fixed &= ~_bools(pc.match_substring(text, "e"))
    whole = fixed & (np.floor(values, where=fixed, out=np.zeros_like(values)) == values)
    by_repr = ~fixed
    if array.null_count:
        by_repr &= ~_bools(array.is_null())
    if whole.any():
        text = _append_point_zero(text, whole)
    if by_repr.any():
        reprs = pa.array([repr(v) for v in values[by_repr].tolist()], type=pa.string())
        text = pc.replace_with_mask(text, pa.array(by_repr), reprs)
    return text


def _append_point_zero(text: pa.Array, where: np.ndarray) -> pa.Array:
    """The strings (without nulls) with `.0` appended where `where` is true: two bytes inserted after each
    such value, offsets shifted, in numpy (a third of the cost of pyarrow's replace_with_mask)."""
    offsets = np.frombuffer(text.buffers()[1], dtype=np.int32)[text.offset : text.offset + len(text) + 1]
    body = _data_bytes(text)
    ends = np.repeat(offsets[1:][where] - offsets[0], 2)
    data = np.insert(body, ends, np.tile(np.frombuffer(b".0", dtype=np.uint8), int(where.sum())))
    shifted = offsets - offsets[0]
    shifted[1:] += 2 * np.cumsum(where, dtype=np.int32)
    return pa.StringArray.from_buffers(len(text), pa.py_buffer(shifted), pa.py_buffer(data))


def _quote_cell(cell: str, *, alone: bool) -> str:
    if alone and cell == "":
        return '""'
    return '"' + cell.replace('"', '""') + '"' if any(ch in cell for ch in ',"\n') else cell


def _data_bytes(array: pa.Array) -> np.ndarray:
    """The bytes of a string array's values (a view, not a copy)."""
    offsets = np.frombuffer(array.buffers()[1], dtype=np.int32)[array.offset : array.offset + len(array) + 1]
    data = array.buffers()[2]
    if data is None or not len(offsets) or offsets[-1] == offsets[0]:
        return np.zeros(0, dtype=np.uint8)
    return np.frombuffer(data, dtype=np.uint8)[offsets[0] : offsets[-1]]


def _quoted(text: pa.Array) -> pa.Array:
    """csv.writer's minimal quoting, vectorised; a column without `,` `"` or newlines is returned as is."""
    values = _data_bytes(text).tobytes()
    if b"," not in values and b'"' not in values and b"\n" not in values:
        return text
    needs = pc.match_substring_regex(text, '[,"\n]')
    quoted = pc.binary_join_element_wise('"', pc.replace_substring(text, '"', '""'), '"', "")
    return pc.if_else(needs, quoted, text)


def _format_batch(batch: pa.RecordBatch) -> memoryview:
    return _format_rows([_quoted(text_of(column)) for column in batch.columns])


def in_order(work: Callable[[T], R], items: Iterable[T]) -> Iterator[R]:
    """work(item) for each item, in order, on a few threads (pyarrow's kernels release the GIL); at most
    2 × WORKERS results wait, so memory stays a few batches whatever the table's size."""
    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        pending: deque[Future[R]] = deque()
        for item in items:
            pending.append(pool.submit(work, item))
            if len(pending) >= 2 * WORKERS:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def _format_rows(cells: list[pa.Array]) -> memoryview:
    """The CSV lines of a batch of quoted cells, as one buffer: its values joined by `,`, each ending in `\\n`."""
    last = cells[-1]
    if len(cells) == 1:  # a row of one empty cell is written `""` (blank rows never get here, but be exact)
        last = pc.if_else(pc.equal(last, ""), '""', last)
    lines = pc.binary_join_element_wise(*cells[:-1], pc.binary_join_element_wise(last, "\n", ""), ",")
    return memoryview(_data_bytes(lines))


# --- reading -----------------------------------------------------------------------------------------------


def is_parquet(data: bytes) -> bool:
    """Parquet files start and end with the magic bytes PAR1."""
    return len(data) >= 8 and data[:4] == PARQUET_MAGIC and data[-4:] == PARQUET_MAGIC


def _valid_utf8(data: bytes) -> bool:
    if data.isascii():
        return True
    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        for start in range(0, len(data), CHUNK_BYTES):
            decoder.decode(data[start : start + CHUNK_BYTES])
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return False
    return True


def _is_blank_text(text: str) -> bool:
    """Whether a raw CSV line is a blank row for Python's csv module (every cell empty or whitespace)."""
    try:
        return not any(cell.strip() for row in csv.reader(io.StringIO(text)) for cell in row)
    except csv.Error:
        return False


def blank_cells(column: pa.ChunkedArray | pa.Array) -> pa.ChunkedArray | pa.Array:
    """Per cell: whether its text is empty or whitespace (str.strip() leaves nothing)."""
    kind = column.type
    if pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_dictionary(kind):
        if pa.types.is_dictionary(kind):
            column = pc.cast(column, kind.value_type)
        return pc.match_substring_regex(column.fill_null(""), BLANK_PATTERN)
    return pc.is_null(column)


def blank_rows(data: pa.Table) -> np.ndarray:
    """Indexes of the rows whose every cell is blank; column by column, only over rows still in doubt."""
    if not data.num_columns:
        return np.zeros(0, dtype=np.int64)
    rows = np.flatnonzero(_bools(blank_cells(data.column(0))))
    for column in data.columns[1:]:
        if not rows.size:
            break
        rows = rows[_bools(blank_cells(column.take(pa.array(rows))))]
    return rows


def _without_rows(data: pa.Table, rows: np.ndarray) -> pa.Table:
    if not rows.size:
        return data
    keep = np.ones(data.num_rows, dtype=bool)
    keep[rows] = False
    return data.filter(pa.array(keep))


def _check_header(header: list[str]) -> None:
    if len(set(header)) != len(header):
        duplicated = sorted({h for h in header if header.count(h) > 1})
        raise TableError(f"the header repeats column names: {duplicated}")


def _arrow_csv(data: bytes) -> tuple[pa.Table, int]:
    """Every record as text, the header row included, and how many blank records of another length than
    the first were skipped; raises pyarrow's errors (a ragged row, ...) for the csv module to judge."""
    skipped: list[str] = []

    def skip_blank(row: pa_csv.InvalidRow) -> str:
        if _is_blank_text(row.text or ""):
            skipped.append(row.text)
            return "skip"
        return "error"

    source = pa.py_buffer(data)
    parse = pa_csv.ParseOptions(newlines_in_values=b'"' in data, invalid_row_handler=skip_blank)
    probe = pa_csv.open_csv(
        source,
        read_options=pa_csv.ReadOptions(autogenerate_column_names=True, use_threads=False),
        parse_options=parse,
    )
    names = probe.schema.names
    probe.close()
    convert = pa_csv.ConvertOptions(
        column_types={name: pa.string() for name in names},
        null_values=[],
        strings_can_be_null=False,
        quoted_strings_can_be_null=False,
        check_utf8=False,  # _valid_utf8 checked it
    )
    read = pa_csv.ReadOptions(autogenerate_column_names=True)
    records = pa_csv.read_csv(source, read_options=read, parse_options=parse, convert_options=convert)
    return records, len(skipped)


def parse_csv(data: bytes) -> Table:
    """A CSV table, read by pyarrow; see the module's docstring for what the csv module reads instead."""
    if not _valid_utf8(data):
        return parse_csv_module(data)
    try:
        records, skipped = _arrow_csv(data)
    except pa.ArrowException:
        return parse_csv_module(data)
    blank = blank_rows(records)
    first = 0
    while first < blank.size and blank[first] == first:
        first += 1
    if first == records.num_rows:
        raise TableError("the data is empty: no header row")
    raw_header = [records.column(i)[first].as_py() for i in range(records.num_columns)]
    header = [cell.strip() for cell in raw_header]
    _check_header(header)
    rows = _without_rows(records.slice(first + 1), blank[first:] - first - 1)
    known = None
    if not blank.size and not skipped and header == raw_header:
        known = _unquoted_canonical(data[len(BOM) :] if data.startswith(BOM) else data)
    return Table(header=header, data=_arrow_table(header, rows.columns), known_canonical=known)


def _unquoted_canonical(body: bytes) -> bytes | None:
    """The canonical bytes of a CSV without a quote, a bare `\\r` or an empty line, whose header is stripped
    and rows not blank: its `\\r\\n` made `\\n`, a last `\\n` added. None for any other CSV."""
    if b'"' in body:
        return None
    if b"\r" in body:
        body = body.replace(b"\r\n", b"\n")
        if b"\r" in body:
            return None
    if b"\n\n" in body or body.startswith(b"\n"):
        return None
    return body if body.endswith(b"\n") else body + b"\n"


def parse_csv_module(data: bytes) -> Table:
    """The table as Python's csv module reads it (the first versions' reader), gathered into pyarrow
    in chunks of BATCH_ROWS rows; the reference for what pyarrow declines."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise TableError(f"the data is not UTF-8 text ({error.reason} at byte {error.start})") from None
    reader = csv.reader(io.StringIO(text))
    header: list[str] | None = None
    chunks: list[list[pa.Array]] = []
    pending: list[list[str]] = []
    number = 0
    try:
        for row in reader:
            if not row or not any(cell.strip() for cell in row):
                continue
            if header is None:
                header = [cell.strip() for cell in row]
                _check_header(header)
                continue
            number += 1
            if len(row) != len(header):
                raise TableError(f"row {number} has {len(row)} cells, the header has {len(header)}")
            pending.append(row)
            if len(pending) == BATCH_ROWS:
                chunks.append(_text_columns(pending, len(header)))
                pending = []
    except csv.Error as error:
        raise TableError(f"line {reader.line_num}: {error}") from None
    if header is None:
        raise TableError("the data is empty: no header row")
    chunks.append(_text_columns(pending, len(header)))
    columns = [pa.chunked_array([chunk[i] for chunk in chunks], type=pa.string()) for i in range(len(header))]
    return Table(header=header, data=_arrow_table(header, columns))


def _text_columns(rows: list[list[str]], width: int) -> list[pa.Array]:
    return [pa.array([row[i] for row in rows], type=pa.string()) for i in range(width)]


def parse_parquet(data: bytes) -> Table:
    """A Parquet table, typed as stored; column names stripped, blank rows dropped (as in a CSV)."""
    try:
        stored = pq.read_table(pa.BufferReader(data))
    except (pa.ArrowException, OSError, ValueError) as error:
        raise TableError(f"the data is not a Parquet file: {error}") from None
    header = [name.strip() for name in stored.column_names]
    if not header:
        raise TableError("the data is empty: no columns")
    _check_header(header)
    for name, column in zip(header, stored.columns, strict=True):
        check_text_type(name, column.type)
        _check_writable(name, column)
    rows = _without_rows(stored, blank_rows(stored))
    return Table(header=header, data=_arrow_table(header, rows.columns), typed=True)


def text_numbers(text: pa.ChunkedArray) -> Numbers:
    """Text cells as numbers: pyarrow's cast where it reads a cell as Python's float() would; cells it
    reads as NaN, or cannot read, are left `unknown`."""
    blank = pc.equal(pc.binary_length(text), 0)
    empty_as_null = pc.if_else(blank, pa.scalar(None, pa.string()), text)
    try:
        values = pc.cast(empty_as_null, pa.float64())
        unknown = pc.fill_null(pc.is_nan(values), False)  # "nan(1)" is NaN to pyarrow, an error to float()
    except pa.ArrowInvalid:
        simple = pc.match_substring_regex(text, SIMPLE_NUMBER)
        values = pc.cast(pc.if_else(simple, text, pa.scalar(None, pa.string())), pa.float64())
        unknown = pc.invert(pc.or_(simple, blank))
    return Numbers(_floats(values), _bools(blank), _bools(unknown))


def from_arrays(feature_names: list[str], features: np.ndarray, target: np.ndarray, target_name: str) -> Table:
    """A table from scikit-learn arrays (the bundled datasets)."""

    def cell(value: object) -> str:
        number = float(value)  # type: ignore[arg-type]
        return str(int(number)) if number.is_integer() else repr(number)

    columns = [pa.array([cell(v) for v in features[:, j].tolist()], type=pa.string()) for j in range(features.shape[1])]
    columns.append(pa.array([cell(t) for t in np.asarray(target).tolist()], type=pa.string()))
    header = [*feature_names, target_name]
    return Table(header=header, data=_arrow_table(header, columns))
