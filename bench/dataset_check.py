#!/usr/bin/env python3
"""Measures the Dataset check (read, validate, version, snapshot, profile) on a large file (run by hand, not in CI).

    .venv/bin/python bench/dataset_check.py [--rows 1000000] [--previous-ref HEAD] [--cases previous,csv,parquet]
                                            [--repeat 1]

No cluster: it calls `run_check`, the function the check Job runs, on a pvc-style source under a temp
directory with a file:// artifact store, for
- previous: the code of `--previous-ref` (default HEAD, the last commit), taken with `git archive` into a
  temp package, on the CSV;
- csv, parquet: the code of this working tree on the CSV and on the same data as Parquet.
Each case runs in a fresh Python process, so its peak RSS (VmHWM) is its own; the peak after the imports,
before the check, is shown beside it. With --repeat N: the median time and the largest peak of N runs.
The source size limit (100 MiB, `read_source`'s max_bytes) is lifted for the measurement, in both codes
alike. Once this code is committed, compare against the commit before it: --previous-ref HEAD~1.

The data (deterministic, seed 7): `--rows` rows × 20 columns: 12 floats (3 decimals), 6 categorical texts
(5 to 20 values), an integer count and an integer target (3 classes). The spec's schema names every column
(float min/max, category allowedValues, integer), so validation reads every cell, as a real check does.
"""

from __future__ import annotations

import argparse
import io
import json
import pathlib
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time

REPO = pathlib.Path(__file__).resolve().parents[1]
FLOATS, CATEGORIES = 12, 6


def columns_of(rows: int, seed: int = 7) -> dict:
    """The bench's columns as numpy arrays (the same for every case)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    columns: dict = {f"num_{i}": np.round(rng.normal(100 * i, 10 + i, rows), 3) for i in range(FLOATS)}
    for i in range(CATEGORIES):
        values = np.array([f"cat_{k}" for k in range(5 + 3 * i)])
        columns[f"cat_{i}"] = values[rng.integers(0, len(values), rows)]
    columns["count"] = rng.integers(0, 1000, rows)
    columns["target"] = rng.integers(0, 3, rows)
    return columns


def schema_of() -> dict:
    columns = [{"name": f"num_{i}", "type": "float", "min": -1e6, "max": 1e6} for i in range(FLOATS)]
    columns += [
        {"name": f"cat_{i}", "type": "category", "allowedValues": [f"cat_{k}" for k in range(5 + 3 * i)]}
        for i in range(CATEGORIES)
    ]
    columns += [{"name": "count", "type": "integer", "min": 0}, {"name": "target", "type": "integer"}]
    return {"columns": columns, "minRows": 1}


def write_sources(directory: pathlib.Path, rows: int) -> dict[str, pathlib.Path]:
    """data.csv (no quotes, as pandas' to_csv writes such data) and data.parquet (snappy), under pvc/."""
    import pyarrow as pa
    import pyarrow.csv as pa_csv
    import pyarrow.parquet as pq

    table = pa.table(columns_of(rows))
    pvc = directory / "pvc"
    pvc.mkdir(parents=True, exist_ok=True)
    body = io.BytesIO()
    pa_csv.write_csv(table, body, pa_csv.WriteOptions(include_header=False, quoting_style="none"))
    (pvc / "data.csv").write_bytes(",".join(table.column_names).encode() + b"\n" + body.getvalue())
    pq.write_table(table, pvc / "data.parquet")
    return {"csv": pvc / "data.csv", "parquet": pvc / "data.parquet"}


def previous_package(ref: str, directory: pathlib.Path) -> pathlib.Path:
    """The mlops_operator package of a git ref, extracted under directory (git archive: no checkout)."""
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", "--format=tar", ref, "operator/mlops_operator"],
        check=True,
        capture_output=True,
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(directory, filter="data")
    return directory / "operator"


def worker(package_root: str, work: str, fmt: str) -> None:
    """One measurement, in this fresh process: prints a JSON line."""
    sys.path.insert(0, package_root)
    from mlops_operator.api.dataset import DatasetSpec
    from mlops_operator.data import check, sources
    from mlops_operator.storage import ArtifactStore

    sources.read_source.__kwdefaults__ = {**(sources.read_source.__kwdefaults__ or {}), "max_bytes": 1 << 40}
    fields = {"source": {"pvc": {"claimName": "data", "path": f"data.{fmt}"}}, "schema": schema_of()}
    if fmt != "csv":
        fields["format"] = fmt
    spec = DatasetSpec.model_validate(fields)
    root = pathlib.Path(work)
    store = ArtifactStore.from_uri(f"file://{root}/store-{fmt}-{time.monotonic_ns()}")
    before = peak_rss_mb()
    started = time.perf_counter()
    result = check.run_check(spec, namespace="bench", name="d", store=store, input_dir=root)
    seconds = time.perf_counter() - started
    print(json.dumps({"seconds": seconds, "peak_mb": peak_rss_mb(), "imports_mb": before, "result": result}))


def peak_rss_mb() -> float:
    """This process's peak RSS (VmHWM): unlike ru_maxrss, it does not start from the forking parent's."""
    for line in pathlib.Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def measure(package_root: pathlib.Path, work: pathlib.Path, fmt: str) -> dict:
    done = subprocess.run(
        [sys.executable, __file__, "--worker", str(package_root), str(work), fmt],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def report(rows: int, sizes: dict[str, int], measured: dict[str, dict]) -> None:
    base = measured.get("previous")
    print(f"\nDataset check of {rows:,} rows × 20 columns (run_check: read, validate, version, snapshot, profile)\n")
    print("| case | input | check | peak RSS | RSS after imports | vs previous (time, peak) | rows | version |")
    print("|---|---|---|---|---|---|---|---|")
    for case, m in measured.items():
        result = m["result"]
        source = "CSV" if case != "parquet" else "Parquet"
        ratio = (
            ""
            if base is None or case == "previous"
            else (f"{base['seconds'] / m['seconds']:.1f}× faster, {m['peak_mb'] / base['peak_mb']:.2f}×")
        )
        version = result.get("version", result.get("reason", "?"))[:19]
        print(
            f"| {case} ({source}) | {sizes[source] / 1e6:.0f} MB | {m['seconds']:.2f} s | {m['peak_mb']:,.0f} MB "
            f"| {m['imports_mb']:,.0f} MB | {ratio} | {result.get('rows', '-'):,} | {version}… |"
        )
    if base is not None and "csv" in measured:
        same = base["result"].get("version") == measured["csv"]["result"].get("version")
        print(f"\nthe CSV's version is the same for the previous and the new code: {'yes' if same else 'NO'}")


def main() -> int:
    if len(sys.argv) == 5 and sys.argv[1] == "--worker":
        worker(*sys.argv[2:])
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--previous-ref", default="HEAD", help="git ref of the code to compare against")
    parser.add_argument("--cases", default="previous,csv,parquet", help="comma-separated: previous, csv, parquet")
    parser.add_argument("--repeat", type=int, default=1, help="runs per case: the median time, the largest peak")
    args = parser.parse_args()
    cases = [c for c in args.cases.split(",") if c]
    with tempfile.TemporaryDirectory(prefix="dataset-check-bench-") as temp:
        work = pathlib.Path(temp)
        print(f"writing {args.rows:,} rows as CSV and Parquet under {work} ...", flush=True)
        paths = write_sources(work, args.rows)
        sizes = {"CSV": paths["csv"].stat().st_size, "Parquet": paths["parquet"].stat().st_size}
        measured: dict[str, dict] = {}
        for case in cases:
            package = REPO / "operator"
            if case == "previous":
                package = previous_package(args.previous_ref, work / "previous")
            runs = []
            for run in range(args.repeat):
                print(f"measuring {case} ({run + 1}/{args.repeat}) ...", flush=True)
                runs.append(measure(package, work, "parquet" if case == "parquet" else "csv"))
                if not runs[-1]["result"].get("ok"):
                    print(f"  the check failed: {runs[-1]['result']}", flush=True)
            measured[case] = {
                **runs[0],
                "seconds": statistics.median(r["seconds"] for r in runs),
                "peak_mb": max(r["peak_mb"] for r in runs),
            }
        report(args.rows, sizes, measured)
    return 0


if __name__ == "__main__":
    sys.exit(main())
