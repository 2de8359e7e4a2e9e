"""Benchmark: a 1,000,000-cell atlas grouped by 200 samples, local and Dask engines.

1. A small model and a pool of sparse UMI-count cells, as in ``score_million.py``
   (``--genes`` genes, ~2,000 UMIs per cell); an ``.h5ad`` file of ``--cells`` cells (CSR,
   float32) written in slices, with a categorical ``obs["sample"]`` of ``--samples`` values.
2. ``nkpredict predict`` in a child process per case, measured like ``score_million.py``
   (wall time of the child; peak RSS summed over it and its descendants, Dask workers
   included):

   - ``table``: the per-cell predictions table (``.parquet``), no grouping (the baseline);
   - ``groups``: ``--group-by sample`` with ``--out cells.obs.parquet`` (per-cell ``obs``
     columns and ``cells.groups.csv``: resistant fraction, pseudobulk, top axes);
   - ``h5ad``: ``--group-by sample`` with ``--out scored.h5ad`` (a copy of the atlas with the
     ``nk_*`` columns in ``obs``; the copy of ``X`` is part of the time).

Usage::

    python benchmarks/singlecell_scale.py --cells 1000000
    python benchmarks/singlecell_scale.py --cells 20000 --genes 1000     # a quick check

Prints a markdown table for BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import psutil
from anndata.io import read_elem, write_elem
from score_million import cell_pool, run_measured, train_model, write_cells

CASES = {
    "table": ("scores.parquet", False),
    "groups": ("cells.obs.parquet", True),
    "h5ad": ("scored.h5ad", True),
}


def add_samples(path: Path, n_samples: int) -> None:
    """Give every cell of ``path`` a categorical ``obs["sample"]`` (contiguous blocks)."""
    with h5py.File(path, "a") as handle:
        obs = read_elem(handle["obs"])
        codes = np.arange(len(obs)) * n_samples // len(obs)
        names = [f"patient-{i:03d}" for i in range(n_samples)]
        obs["sample"] = pd.Categorical.from_codes(codes, categories=names)
        del handle["obs"]
        write_elem(handle, "obs", obs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=1_000_000)
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--genes", type=int, default=2_000)
    parser.add_argument("--chunk-size", type=int, default=10_000)
    parser.add_argument("--engines", nargs="+", default=["local", "dask"])
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    parser.add_argument("--workdir", type=Path, help="keep files here (default: a temp dir)")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="nkp-singlecell-") as tmp:
        workdir = args.workdir or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        model_dir, counts = train_model(args.genes, workdir)
        path = workdir / "atlas.h5ad"
        started = time.perf_counter()
        per_cell = write_cells(path, args.cells, cell_pool(counts), list(counts.columns))
        add_samples(path, args.samples)
        gib = path.stat().st_size / 1024**3
        print(f"{args.cells} cells, {per_cell:.0f} stored values/cell, {gib:.2f} GiB, "
              f"written in {time.perf_counter() - started:.0f} s", file=sys.stderr)  # fmt: skip
        for case in args.cases:
            name, grouped = CASES[case]
            for engine in args.engines:
                out = workdir / name
                command = [
                    sys.executable, "-m", "training.cli", "predict", "--model", str(model_dir),
                    "--expression", str(path), "--out", str(out), "--engine", engine,
                    "--chunk-size", str(args.chunk_size), "--quiet",
                    *(["--group-by", "sample"] if grouped else []),
                ]  # fmt: skip
                seconds, peak = run_measured(command, workdir / f"{case}-{engine}.log")
                groups = 0
                if grouped:
                    table = pd.read_csv(out.with_name(out.name.split(".")[0] + ".groups.csv"))
                    groups = len(table)
                rows.append((case, engine, seconds, peak, groups))
                print(f"  {case} {engine}: {seconds:.0f} s, {peak:.2f} GiB", file=sys.stderr)
                out.unlink()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    memory = psutil.virtual_memory().total / 1024**3
    print(f"machine: {platform.machine()}, {cores} cores, {memory:.0f} GiB RAM, "
          f"python {platform.python_version()}; {args.cells:,} cells x {args.genes} genes "
          f"({per_cell:.0f} stored values/cell, {gib:.2f} GiB), {args.samples} samples, "
          f"chunk size {args.chunk_size}; dask = LocalCluster, {cores} workers x 1 thread; "
          f"load average before: {os.getloadavg()[0]:.1f}")  # fmt: skip
    print("\n| output | engine | groups | wall time (s) | cells / s | peak RSS, all (GiB) |")
    print("|---|---|---:|---:|---:|---:|")
    for case, engine, seconds, peak, groups in rows:
        print(f"| {case} | {engine} | {groups or '-'} | {seconds:.0f} | "
              f"{args.cells / seconds:,.0f} | {peak:.2f} |")  # fmt: skip


if __name__ == "__main__":
    main()
