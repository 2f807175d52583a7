"""The pyarrow table of the Dataset check: versions pinned by the first (csv-module) implementation, the same
rows and errors as Python's csv module, typed Parquet, one version for the same data in CSV and Parquet,
format detection, vectorised schema checks and profiles that agree with the cell-by-cell originals."""

from __future__ import annotations

import csv
import hashlib
import io
import math
import pathlib
import re
import string

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlops_operator.api.dataset import DatasetSpec
from mlops_operator.data import table as tables
from mlops_operator.data.check import run_check
from mlops_operator.data.profile import build_profile, class_key
from mlops_operator.data.sources import SourceError, builtin_table, parse_source, read_source, source_format
from mlops_operator.data.table import Table, TableError, float_text, is_parquet, parse_csv, parse_parquet
from mlops_operator.data.validate import _cell_problem, schema_problems
from mlops_operator.storage import ArtifactStore
from mlops_operator.trainer.train import load_dataset

DATA = pathlib.Path(__file__).parents[1] / "integration" / "data"
SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# --- versions that exist must not change -----------------------------------------------------------------
# Computed with the csv-module implementation (HEAD before pyarrow: operator/mlops_operator/data/table.py).
PINNED = {
    "crlf": (b"x,y,target\r\n1,2,0\r\n3,4,1\r\n", "8fac3c1a9cdf2b7881f0970e70fb242045e16289d4a34dff26ecbcf90075c40f"),
    "quoted": (
        b'"x","note","target"\n1,"a, b",0\n2,"say ""hi""",1\n3,"two\nlines",0\n4,"cr\rinside",1\n',
        "305f200335d240f8ab4a983028befd58dbe5f43a80b85f909c983a74658c90bc",
    ),
    "bom": (b"\xef\xbb\xbfx,y,target\n1.50,2,0\n", "ab43eeab78ad051062f25289642123588cc0614051d4db8e3888f65af57e1314"),
    "blank_lines": (
        b"\n\nx,y,target\n\n1,2,0\n , \n,,\n3,4,1\n\n",
        "8fac3c1a9cdf2b7881f0970e70fb242045e16289d4a34dff26ecbcf90075c40f",
    ),
    "header_whitespace": (
        b" x ,\ty\t, target \n1,2,0\n",
        "86867a9c525be0098411e69a1fc6d18370d5458d30c3b870e5c78739285b3984",
    ),
    "no_final_newline": (
        b"x,y,target\n1,2,0\n3,4,1",
        "8fac3c1a9cdf2b7881f0970e70fb242045e16289d4a34dff26ecbcf90075c40f",
    ),
    "unicode": (
        "naïve,ключ,target\n日本, x ,1\n".encode(),
        "c1d9fc47d47660010640e4c0c7ece74b9392adb5970e16f315b10b9d2aa9d5c9",
    ),
    "unterminated_quote": (b'x,target\n1,"2', "90f67d0b4cc437e8f6c20f0732d3536bdbe1754b085ae26c20c5cbc915468e6e"),
    "iris.csv": ((DATA / "iris.csv").read_bytes(), "1e52d3d96ba49c50fe132731766e8b9b3d456d7b44163a4d62d2a256e19005e5"),
}
PINNED_BUILTIN = {
    "iris": "1e52d3d96ba49c50fe132731766e8b9b3d456d7b44163a4d62d2a256e19005e5",
    "wine": "546a846b5fce7a9b41bcfc524abdb869bdf964b3a958ddcb4e8be5e30057702f",
    "diabetes": "08779b698e32fc83ab9ac1f20196760b3347fc986927f652310d1a8b865219e8",
    "breast_cancer": "432ff316e7bfb60b70a275064b4401315cc39f09c9099d031013a23647e98687",
    "digits": "9f7fca3251c178a06039990b75e3023f8b888151d2e2d4579c3ba0d2744a1d00",
}


@pytest.mark.parametrize("name", sorted(PINNED))
def test_versions_of_csv_sources_are_those_of_the_first_implementation(name: str) -> None:
    data, digest = PINNED[name]
    table = parse_csv(data)
    assert table.version == f"sha256:{digest}"
    assert hashlib.sha256(table.canonical_bytes()).hexdigest() == digest


@pytest.mark.parametrize("name", sorted(PINNED_BUILTIN))
def test_versions_of_builtin_datasets_are_those_of_the_first_implementation(name: str) -> None:
    assert builtin_table(name, "target").version == f"sha256:{PINNED_BUILTIN[name]}"


def _reference(data: bytes) -> tuple[list[str], list[list[str]], bytes]:
    """The first implementation (Python's csv module, cell by cell): the oracle for the pyarrow reader."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise TableError(f"the data is not UTF-8 text ({error.reason} at byte {error.start})") from None
    lines = [row for row in csv.reader(io.StringIO(text)) if row and any(cell.strip() for cell in row)]
    if not lines:
        raise TableError("the data is empty: no header row")
    header = [cell.strip() for cell in lines[0]]
    if len(set(header)) != len(header):
        raise TableError(f"the header repeats column names: {sorted({h for h in header if header.count(h) > 1})}")
    for number, row in enumerate(lines[1:], start=1):
        if len(row) != len(header):
            raise TableError(f"row {number} has {len(row)} cells, the header has {len(header)}")
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(lines[1:])
    return header, lines[1:], out.getvalue().encode()


def _agrees_with_reference(data: bytes) -> None:
    try:
        header, rows, canonical = _reference(data)
    except csv.Error:  # the first implementation crashed (a bare \r ending a line): no version to keep
        return
    except TableError as error:
        with pytest.raises(TableError) as raised:
            parse_csv(data)
        assert str(raised.value) == str(error)
        return
    table = parse_csv(data)
    assert table.header == header and table.num_rows == len(rows)
    assert [table.column(h) for h in header] == [[row[i] for row in rows] for i in range(len(header))]
    # csv.writer stopped leaving a bare \r unquoted in CPython 3.11.9; the versions that exist did not
    if sys_quotes_bare_cr():
        canonical = _reference_canonical_without_cr_quoting(header, rows)
    assert table.canonical_bytes() == canonical
    assert b"".join(bytes(chunk) for chunk in table.canonical_chunks()) == canonical


def sys_quotes_bare_cr() -> bool:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerow(["a\rb"])
    return out.getvalue() != "a\rb\n"


def _reference_canonical_without_cr_quoting(header: list[str], rows: list[list[str]]) -> bytes:
    def line(row: list[str]) -> str:
        if len(row) == 1 and row[0] == "":
            return '""'
        return ",".join('"' + c.replace('"', '""') + '"' if any(ch in c for ch in ',"\n') else c for c in row)

    return "".join(line(row) + "\n" for row in [header, *rows]).encode()


CELL = st.text(
    alphabet=["a", "b", "1", ".", ",", '"', " ", "\t", "\n", "\r", "é", "\x1c", "\u3000", "\ufeff"], max_size=5
)


@st.composite
def csv_texts(draw) -> bytes:
    width = draw(st.integers(1, 4))
    lines = []
    for _ in range(draw(st.integers(0, 6))):
        cells = draw(st.lists(CELL, min_size=width, max_size=width) | st.lists(CELL, max_size=5))
        quoted = ['"' + c.replace('"', '""') + '"' if draw(st.booleans()) else c for c in cells]
        lines.append(",".join(quoted))
    end = draw(st.sampled_from(["\n", "\r\n", "\r"]))
    return (draw(st.sampled_from(["", "\ufeff"])) + end.join(lines) + draw(st.sampled_from(["", end]))).encode()


@SETTINGS
@given(csv_texts())
def test_pyarrow_reads_rows_as_the_csv_module_does(data: bytes) -> None:
    _agrees_with_reference(data)


@SETTINGS
@given(st.binary(max_size=40) | st.text(alphabet=string.printable + "é\ufeff\u3000", max_size=40).map(str.encode))
def test_any_bytes_get_the_csv_modules_rows_or_its_error(data: bytes) -> None:
    _agrees_with_reference(data)


@pytest.mark.parametrize(
    "data",
    [
        b"a,b\n" + b"".join(f'{i},"x{i}, ""{i}"""\r\n'.encode() for i in range(tables.BATCH_ROWS + 7)),
        b"a,b\n" + b"".join(f"{i},{i % 3}\n".encode() for i in range(tables.BATCH_ROWS * 2 + 1)),
        b"  \na,b\n" + b"x," * 2 * 10 + b"\n" + b"1,2\n",  # a long ragged row
        b"a,b\n" + (b"x" * 100_000 + b",") * 12 + b"\n1,2\n",  # a row longer than pyarrow's block (1 MiB)
    ],
)
def test_many_rows_and_long_rows_agree_with_the_csv_module(data: bytes) -> None:
    _agrees_with_reference(data)


def test_a_canonical_csv_is_its_own_snapshot_and_a_crlf_one_is_rewritten_once() -> None:
    data = b"x,y,target\n1,2,0\n3,4,1\n"
    assert parse_csv(data).canonical_bytes() is data
    assert parse_csv(data.replace(b"\n", b"\r\n")).known_canonical == data
    assert parse_csv(b'"x",y,target\n1,2,0\n').known_canonical is None  # quoted: formatted by pyarrow


def test_the_whitespace_list_is_pythons() -> None:
    assert "".join(chr(c) for c in range(0x110000) if chr(c).isspace()) == tables.PY_WHITESPACE


# --- typed numbers -------------------------------------------------------------------------------------------

NUMBERISH = st.text(alphabet=list("0123456789+-.eE_ nainfty()x١"), max_size=8)


@SETTINGS
@given(st.lists(NUMBERISH, min_size=1, max_size=12))
def test_numbers_are_read_as_pythons_float_reads_them(cells: list[str]) -> None:
    table = Table.from_rows(["x"], [[c] for c in cells])
    expected, bad = [], None
    for row, cell in enumerate(cells):
        try:
            expected.append(float(cell) if cell.strip() else math.nan)
        except ValueError:
            bad = (row, cell)
            break
    if bad is not None:
        with pytest.raises(TableError, match=re.escape(f"row {bad[0] + 1}: {bad[1]!r} is not a number")):
            table.numeric_column("x")
        return
    np.testing.assert_array_equal(table.numeric_column("x"), np.array(expected))


def test_numeric_matrix_names_the_first_bad_cell_by_row_then_column() -> None:
    table = parse_csv(b"a,b,c\n1,2,3\n4,x,5\ny,6,z\n")
    with pytest.raises(TableError, match=r"column 'b', row 2: 'x' is not a number"):
        table.numeric_matrix(["a", "b", "c"])
    with pytest.raises(TableError, match=r"column 'c', row 3: 'z' is not a number"):
        table.numeric_matrix(["c", "a"])
    np.testing.assert_array_equal(parse_csv(b"a,b\n1, 2 \n,3\n").numeric_matrix(["a", "b"]), [[1, 2], [np.nan, 3]])


SPECIAL_FLOATS = [
    0.0,
    -0.0,
    1.0,
    2.5,
    0.1,
    1e-4,
    9.999e-5,
    1e-5,
    5e-324,
    1e15,
    1234567890123456.0,
    9999999999999998.0,
    1e16,
    1e22,
    -1.5e300,
    1.7976931348623157e308,
    float("inf"),
    float("-inf"),
    float("nan"),
]


@SETTINGS
@given(st.lists(st.floats(allow_nan=True, allow_infinity=True) | st.none(), max_size=50))
def test_floats_are_written_as_pythons_repr(values: list[float | None]) -> None:
    array = pa.array([*values, *SPECIAL_FLOATS], type=pa.float64())
    expected = ["" if v is None else repr(v) for v in [*values, *SPECIAL_FLOATS]]
    assert float_text(array).to_pylist() == expected
    assert float_text(array.slice(1)).to_pylist() == expected[1:], "a slice of a batch, as to_batches gives"


def test_random_doubles_of_every_magnitude_are_written_as_repr() -> None:
    rng = np.random.default_rng(5)
    values = np.concatenate(
        [
            rng.normal(0, 1, 20000),
            rng.normal(0, 1, 20000) * 10.0 ** rng.integers(-30, 30, 20000),
            rng.integers(0, 2**63 - 1, 20000, dtype=np.int64).view(np.float64),
        ]
    )
    assert float_text(pa.array(values)).to_pylist() == [repr(v) for v in values.tolist()]


# --- Parquet ---------------------------------------------------------------------------------------------------


def _parquet(table: pa.Table) -> bytes:
    out = io.BytesIO()
    pq.write_table(table, out)
    return out.getvalue()


MIXED = pa.table(
    {
        "n": pa.array([1, 2, None, -4], type=pa.int64()),
        "f": pa.array([0.1, 2.0, None, 1e-5], type=pa.float64()),
        "small": pa.array([1.5, 2.25, 3.0, None], type=pa.float32()),
        "b": pa.array([True, False, None, True]),
        "s": pa.array(["a, b", 'say "hi"', None, "two\nlines"]),
        "c": pa.array(["x", "y", "x", "z"]).dictionary_encode(),
        "target": pa.array([0, 1, 0, 1], type=pa.int8()),
    }
)
MIXED_CSV = (
    b"n,f,small,b,s,c,target\n"
    b'1,0.1,1.5,True,"a, b",x,0\n'
    b'2,2.0,2.25,False,"say ""hi""",y,1\n'
    b",,3.0,,,x,0\n"
    b'-4,1e-05,,True,"two\nlines",z,1\n'
)


def test_parquet_is_read_typed() -> None:
    table = parse_parquet(_parquet(MIXED))
    assert table.typed and table.header == MIXED.column_names and table.num_rows == 4
    assert [str(table.arrow_type(h)) for h in ("n", "f", "b", "s")] == ["int64", "double", "bool", "string"]
    np.testing.assert_array_equal(table.numeric_column("n"), [1, 2, np.nan, -4])
    assert table.column("f") == ["0.1", "2.0", "", "1e-05"]
    assert table.column("b") == ["True", "False", "", "True"]
    with pytest.raises(TableError, match="column 'b', row 1: 'True' is not a number"):
        table.numeric_column("b")


def test_the_same_data_gets_one_version_as_csv_and_as_parquet() -> None:
    from_parquet, from_csv = parse_parquet(_parquet(MIXED)), parse_csv(MIXED_CSV)
    assert from_parquet.canonical_bytes() == from_csv.canonical_bytes() == MIXED_CSV
    assert from_parquet.version == from_csv.version
    assert build_profile(from_parquet, "target") == build_profile(from_csv, "target")


def test_parquet_drops_blank_rows_and_strips_names_as_a_csv_does() -> None:
    stored = pa.table(
        {" x ": pa.array([1.0, None, 3.0]), "y": pa.array(["a", "  ", "b"]), "target": pa.array([0, None, 1])}
    )
    table = parse_parquet(_parquet(stored))
    assert table.header == ["x", "y", "target"] and table.num_rows == 2
    assert table.version == parse_csv(b" x ,y,target\n1.0,a,0\n,  ,\n3.0,b,1\n").version


@pytest.mark.parametrize(
    ("stored", "words"),
    [
        (pa.table({"a": [1], "A": [2]}).rename_columns(["a", " a"]), "the header repeats column names: ['a']"),
        (pa.table({"a": pa.array([[1, 2]])}), "column 'a' has type list<"),
        (pa.table({}), "no columns"),
        (pa.table({"a": pa.array([b"ok", b"\xff"])}), "column 'a': its binary values cannot be written as CSV text"),
    ],
)
def test_parquet_tables_no_csv_can_hold_are_refused(stored: pa.Table, words: str) -> None:
    with pytest.raises(TableError, match=words.replace("[", r"\[").replace("]", r"\]")):
        parse_parquet(_parquet(stored))


def test_parquet_values_of_other_types_are_written_as_pyarrow_casts_them() -> None:
    import datetime as dt
    import decimal

    stored = pa.table(
        {
            "d": pa.array([dt.date(2024, 1, 31)]),
            "dec": pa.array([decimal.Decimal("1.50")]),
            "bytes": pa.array([b"text"]),
            "none": pa.nulls(1),
            "target": pa.array([1]),
        }
    )
    table = parse_parquet(_parquet(stored))
    assert table.canonical_bytes() == b"d,dec,bytes,none,target\n2024-01-31,1.50,text,,1\n"
    assert table.numeric_column("dec").tolist() == [1.5]


def test_wide_rows_are_formatted_in_smaller_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tables, "BATCH_BYTES", 100)
    stored = pa.table({f"c{i}": pa.array(np.arange(10.0) + i) for i in range(30)})
    table = parse_parquet(_parquet(stored))
    assert table._batch_rows() == 1
    lines = [",".join(repr(float(r + i)) for i in range(30)) for r in range(10)]
    assert table.canonical_bytes() == ("\n".join([",".join(stored.column_names), *lines]) + "\n").encode()


def test_format_detection() -> None:
    parquet = _parquet(MIXED)
    assert is_parquet(parquet) and not is_parquet(MIXED_CSV) and not is_parquet(b"PAR1")
    assert not is_parquet(b"PAR1" + b"x" * 10)  # the magic bytes at both ends
    assert (source_format(parquet, "auto"), source_format(MIXED_CSV, "auto")) == ("parquet", "csv")
    assert source_format(parquet, "csv") == "csv"
    assert parse_source(parquet, "auto").version == parse_source(MIXED_CSV, "auto").version


@pytest.mark.parametrize(
    ("data", "wanted", "words"),
    [
        (b"x,target\n1,0\n", "parquet", "the source is not a Parquet table: the data is not a Parquet file"),
        (b"PAR1 not really PAR1", "auto", "the source is not a Parquet table: the data is not a Parquet file"),
        (b"\x00\x9f\x92\x96 binary", "auto", "the source is not a CSV table: the data is not UTF-8 text"),
        (_parquet(MIXED), "csv", "(the bytes are a Parquet file: set spec.format to parquet or auto)"),
    ],
)
def test_bytes_that_are_not_the_format_are_a_schema_violation(data: bytes, wanted: str, words: str) -> None:
    with pytest.raises(SourceError) as raised:
        parse_source(data, wanted)
    assert raised.value.reason == "SchemaViolation" and words in raised.value.message


def _pvc_spec(**fields) -> DatasetSpec:
    return DatasetSpec.model_validate({"source": {"pvc": {"claimName": "data", "path": "d.bin"}}, **fields})


def test_a_parquet_source_is_checked_snapshotted_as_csv_and_trained_on(tmp_path: pathlib.Path) -> None:
    (tmp_path / "pvc").mkdir()
    (tmp_path / "pvc" / "d.bin").write_bytes(_parquet(MIXED.select(["n", "f", "small", "target"])))
    store = ArtifactStore.from_uri(f"file://{tmp_path}/store")
    result = run_check(_pvc_spec(format="auto"), namespace="ns", name="d", store=store, input_dir=tmp_path)
    assert result["ok"], result
    assert result["snapshotUri"].endswith("/data.csv") and result["rows"] == 4
    snapshot = store.read(result["snapshotUri"])
    assert snapshot == b"n,f,small,target\n1,0.1,1.5,0\n2,2.0,2.25,1\n,,3.0,0\n-4,1e-05,,1\n"
    assert result["version"] == "sha256:" + hashlib.sha256(snapshot).hexdigest()
    x, y, features = load_dataset(
        store, snapshot_uri=result["snapshotUri"], version=result["version"], target="target", task="classification"
    )
    assert features == ["n", "f", "small"] and x.shape == (4, 3) and y.tolist() == [0, 1, 0, 1]


def test_a_parquet_source_with_the_wrong_schema_names_the_column(tmp_path: pathlib.Path) -> None:
    (tmp_path / "pvc").mkdir()
    (tmp_path / "pvc" / "d.bin").write_bytes(_parquet(MIXED))
    schema = {
        "columns": [
            {"name": "s", "type": "float"},
            {"name": "missing", "type": "integer"},
            {"name": "n", "type": "integer", "min": 0},
            {"name": "b", "type": "boolean"},
            {"name": "f", "type": "float", "nullable": True, "max": 1},
        ]
    }
    spec = _pvc_spec(format="parquet", schema=schema)
    store = ArtifactStore.from_uri(f"file://{tmp_path}/store")
    result = run_check(spec, namespace="ns", name="d", store=store, input_dir=tmp_path)
    assert (result["ok"], result["reason"]) == (False, "SchemaViolation")
    assert result["message"].split("; ", 2)[:2] == [
        "column 's' has type string in the data, which cannot hold float values",
        "column 'missing' is missing from the header",
    ]
    assert (
        "column 'n': row 3: is empty but the column is not nullable; row 4: -4 is below the minimum 0"
        in (result["message"])
    )
    assert "column 'b': row 3: is empty but the column is not nullable" in result["message"]
    assert "column 'f': row 2: 2.0 is above the maximum 1" in result["message"]


def test_a_file_that_is_neither_csv_nor_parquet_is_a_schema_violation(tmp_path: pathlib.Path) -> None:
    (tmp_path / "pvc").mkdir()
    (tmp_path / "pvc" / "d.bin").write_bytes(bytes(range(256)))
    with pytest.raises(SourceError) as raised:
        read_source(_pvc_spec(format="auto"), input_dir=tmp_path)
    assert raised.value.reason == "SchemaViolation"
    assert raised.value.message.startswith("the source is not a CSV table: the data is not UTF-8 text")


def test_a_target_with_too_many_text_classes_fails_the_check_and_does_not_crash(tmp_path: pathlib.Path) -> None:
    (tmp_path / "pvc").mkdir()
    (tmp_path / "pvc" / "d.bin").write_bytes(b"x,target\n" + b"".join(f"{i},c{i}\n".encode() for i in range(60)))
    store = ArtifactStore.from_uri(f"file://{tmp_path}/store")
    result = run_check(_pvc_spec(), namespace="ns", name="d", store=store, input_dir=tmp_path)
    assert (result["ok"], result["reason"]) == (False, "SchemaViolation")
    assert "'target' has more than 50 classes and is not numeric" in result["message"]


# --- the vectorised schema check and profile against their cell-by-cell originals -------------------------------


def _reference_problems(table: Table, spec: DatasetSpec) -> list[str]:
    problems = []
    for column in spec.schema_.columns:
        bad = []
        for number, value in enumerate(table.column(column.name), start=1):
            issue = _cell_problem(value, column)
            if issue:
                bad.append(f"row {number}: {issue}")
                if len(bad) == 3:
                    break
        if bad:
            problems.append(f"column {column.name!r}: " + "; ".join(bad))
    return problems[:5]


VALUES = st.sampled_from(
    [
        "1",
        "0",
        "-3",
        "2.5",
        "1e3",
        " 7 ",
        "1_0",
        "nan",
        "inf",
        "-inf",
        "nan(1)",
        "",
        "  ",
        "x",
        "yes",
        " True",
        "FALSE",
        "no",
        "ſalse",
        "a,b",
        "١",
    ]
)
COLUMN = st.fixed_dictionaries(
    {"type": st.sampled_from(["float", "integer", "string", "category", "boolean"]), "nullable": st.booleans()},
    optional={
        "min": st.sampled_from([-1.0, 0.0, 2.0]),
        "max": st.sampled_from([0.0, 1.0, 100.0]),
        "allowedValues": st.lists(VALUES, max_size=4),
    },
)


@SETTINGS
@given(st.lists(st.tuples(COLUMN, st.lists(VALUES, max_size=8)), min_size=1, max_size=3), st.integers(0, 7))
def test_schema_problems_are_those_of_the_cell_by_cell_check(columns, length: int) -> None:
    schema = []
    for i, (column, _) in enumerate(columns):
        column = {**column, "name": f"c{i}"}
        if column["type"] not in ("float", "integer"):
            column.pop("min", None), column.pop("max", None)
        elif "min" in column and "max" in column and column["min"] > column["max"]:
            column.pop("min")
        if column["type"] not in ("string", "category"):
            column.pop("allowedValues", None)
        schema.append(column)
    rows = [[cells[r % len(cells)] if cells else "" for _, cells in columns] for r in range(length)]
    table = Table.from_rows([c["name"] for c in schema], rows)
    spec = DatasetSpec.model_validate(
        {"source": {"builtin": {"name": "iris"}}, "target": "c0", "schema": {"columns": schema, "minRows": 1}}
    )
    expected = ([f"the data has {length} rows, fewer than minRows 1"] if not length else []) + _reference_problems(
        table, spec
    )
    assert schema_problems(table, spec) == expected[:5]


def _reference_profile(table: Table, target: str) -> dict:
    """The first implementation's build_profile, over Python lists of strings."""
    from mlops_operator.data.profile import BINS, MAX_CLASSES, bin_shares

    def numbers(name: str) -> np.ndarray:
        return np.array([float(c) if c.strip() else np.nan for c in table.column(name)], dtype=np.float64)

    features = {}
    for name in table.header:
        if name == target:
            continue
        try:
            values = numbers(name)
        except ValueError:
            categories, counts = np.unique(np.asarray(table.column(name)), return_counts=True)
            order = np.argsort(-counts)[:20]
            features[name] = {
                "kind": "categorical",
                "frequencies": {str(categories[i]): float(counts[i] / counts.sum()) for i in order},
            }
            continue
        finite = values[~np.isnan(values)]
        edges = sorted(set(np.quantile(finite, np.linspace(0, 1, BINS + 1)[1:-1]).tolist())) if finite.size else []
        features[name] = {
            "kind": "numeric",
            "edges": edges,
            "shares": bin_shares(values, edges),
            "min": float(finite.min()),
            "max": float(finite.max()),
            "mean": float(finite.mean()),
            "std": float(finite.std()),
            "missing": float(np.isnan(values).mean()),
        }
        distinct = sorted(set(finite.tolist()))  # added later: the frequencies of a feature of few values
        if len(distinct) <= 20:
            features[name]["frequencies"] = {class_key(v): float(np.sum(finite == v) / finite.size) for v in distinct}
    labels, counts = np.unique(np.asarray(table.column(target)), return_counts=True)
    if len(labels) <= MAX_CLASSES:
        shares = {str(k): float(c / counts.sum()) for k, c in zip(labels, counts, strict=True)}
        return {
            "rows": table.num_rows,
            "features": features,
            "target": {"name": target, "kind": "classes", "shares": shares},
        }
    values = numbers(target)
    return {
        "rows": table.num_rows,
        "features": features,
        "target": {
            "name": target,
            "kind": "numeric",
            "mean": float(np.nanmean(values)),
            "std": float(np.nanstd(values)),
            **_reference_bins(values),
        },
    }


def _reference_bins(values: np.ndarray) -> dict:
    """Added later: a numeric target's decile bins, as its features have them."""
    from mlops_operator.data.profile import BINS, bin_shares

    finite = values[~np.isnan(values)]
    edges = sorted(set(np.quantile(finite, np.linspace(0, 1, BINS + 1)[1:-1]).tolist()))
    return {"edges": edges, "shares": bin_shares(values, edges)}


@pytest.mark.parametrize("target", ["target", "num"])
def test_the_profile_is_the_one_np_unique_and_the_cell_by_cell_numbers_gave(target: str) -> None:
    rng = np.random.default_rng(3)
    lines = [
        f"{v:.3f},{'abcdefghij'[int(k)]}{'é' if k % 3 else ''},{int(k) if k % 5 else 'x'},{'' if k % 2 else ' 3 '},"
        f"{int(k) % 3},{rng.integers(0, 30)}"
        for v, k in zip(rng.normal(0, 1, 3000), rng.integers(0, 10, 3000), strict=True)
    ]
    table = parse_csv(("num,cat,mixed,blank,target,many\n" + "\n".join(lines)).encode())
    profile = build_profile(table, target)
    assert profile == _reference_profile(table, target)
    assert profile["features"]["cat"]["kind"] == "categorical" and profile["features"]["blank"]["mean"] == 3.0
    assert profile["features"]["many"]["kind"] == "numeric"


def test_an_empty_table_has_a_profile() -> None:
    profile = build_profile(parse_csv(b"x,target\n"), "target")
    assert (profile["rows"], profile["target"]) == (0, {"name": "target", "kind": "classes", "shares": {}})
    assert profile["features"]["x"]["edges"] == [] and profile["features"]["x"]["mean"] is None


def test_work_on_threads_comes_back_in_order_and_stops_early() -> None:
    def slow_square(n: int) -> int:  # uneven work, so that the threads finish out of order
        sum(range(20_000 * (n % 3)))
        return n * n

    assert list(tables.in_order(slow_square, range(50))) == [n * n for n in range(50)]
    started = []
    results = tables.in_order(lambda n: started.append(n) or n, iter(range(1000)))
    assert [next(results) for _ in range(3)] == [0, 1, 2]
    results.close()
    assert len(started) <= 3 + 2 * tables.WORKERS, "only a window of items is ever submitted"
