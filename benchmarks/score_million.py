"""Benchmark: score a million single-cell-like profiles with the local and the Dask engine.

1. Simulate a bulk cohort (:func:`nkpredict.simulate.cohort.simulate_cohort`, ``--genes`` genes,
   400 samples) and train a small model on it.
2. Draw a pool of 20,000 single cells: each samples one cohort profile (a "cell type") at a
   log-normal depth of ~2,000 UMIs (Poisson counts), which gives sparse integer counts
   like a droplet experiment. The ``.h5ad`` file of N cells (CSR, float32) draws its rows
   from the pool with replacement and is written 100,000 cells at a time (AnnData's backed
   sparse ``append``), so generating it never holds the matrix in memory. Scoring cost does
   not depend on cells being distinct.
3. Run ``nkpredict predict`` in a child process per engine (``local``: streaming in one
   process; ``dask``: a LocalCluster with one single-threaded worker per core) and, for
   sizes up to ``--in-memory-max``, the former in-memory path (``read_expression`` of the
   whole file, then ``predict_table``). Wall time is that of the child; peak memory is the
   largest sum of RSS over the child and all its descendants (Dask nanny and worker
   processes included), sampled every 0.1 s with psutil.

Usage::

    python benchmarks/score_million.py --cells 100000 1000000
    python benchmarks/score_million.py --cells 20000 --genes 2000    # a quick check

Prints a markdown table for BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import anndata
import h5py
import numpy as np
import pandas as pd
import psutil
from anndata.io import sparse_dataset, write_elem
from scipy import sparse

from nkpredict.model.fitted import NKResistanceModel
from nkpredict.simulate.cohort import simulate_cohort
from nkpredict.simulate.config import SimulationConfig

POOL_CELLS = 20_000
WRITE_CELLS = 100_000
MEAN_UMIS = 2_000
IN_MEMORY = """
import sys
from nkpredict.data.expression import read_expression
from nkpredict.io import write_table
from nkpredict.model.fitted import NKResistanceModel
model = NKResistanceModel.load(sys.argv[1])
write_table(model.predict_table(model.prepare(read_expression(sys.argv[2]))), sys.argv[3])
"""


def train_model(n_genes: int, workdir: Path) -> tuple[Path, pd.DataFrame]:
    """A small model on a simulated bulk cohort; returns its directory and the cohort."""
    cohort = simulate_cohort(SimulationConfig(n_samples=400, n_genes=n_genes, seed=0))
    model = NKResistanceModel(booster={"n_estimators": 200})
    model.fit(cohort.counts, cohort.labels["resistant"])
    return model.save(workdir / "model"), cohort.counts


def cell_pool(counts: pd.DataFrame, seed: int = 1) -> sparse.csr_matrix:
    """POOL_CELLS sparse UMI count profiles, shape (POOL_CELLS, n_genes), float32."""
    rng = np.random.default_rng(seed)
    profiles = counts.to_numpy() / counts.to_numpy().sum(axis=1, keepdims=True)
    depth = rng.lognormal(np.log(MEAN_UMIS), 0.6, POOL_CELLS)
    parts = []
    for start in range(0, POOL_CELLS, 2_000):
        kinds = rng.integers(0, len(profiles), min(2_000, POOL_CELLS - start))
        means = profiles[kinds] * depth[start : start + len(kinds), None]
        values = rng.poisson(means).astype(np.float32)
        values[values.sum(axis=1) == 0, 0] = 1  # no empty cells
        parts.append(sparse.csr_matrix(values))
    return sparse.vstack(parts, format="csr")


def write_cells(path: Path, n_cells: int, pool: sparse.csr_matrix, genes: list[str]) -> float:
    """An .h5ad of ``n_cells`` pool cells written in slices; returns stored values per cell."""
    rng = np.random.default_rng(n_cells)
    names = [f"cell-{i:07d}" for i in range(n_cells)]

    def draw(n: int) -> sparse.csr_matrix:
        return pool[rng.integers(0, pool.shape[0], n)]

    first = min(WRITE_CELLS, n_cells)
    anndata.AnnData(
        X=draw(first), obs=pd.DataFrame(index=names[:first]), var=pd.DataFrame(index=genes)
    ).write_h5ad(path)
    with h5py.File(path, "a") as handle:
        matrix = sparse_dataset(handle["X"])
        for start in range(first, n_cells, WRITE_CELLS):
            matrix.append(draw(min(WRITE_CELLS, n_cells - start)))
        del handle["obs"]
        write_elem(handle, "obs", pd.DataFrame(index=names))
        return float(handle["X"]["indptr"][-1]) / n_cells


def run_measured(command: list[str], log: Path) -> tuple[float, float]:
    """Run ``command``; return wall seconds and peak RSS (GiB) summed over its process tree."""
    with log.open("w") as stderr:
        start = time.perf_counter()
        child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=stderr)
        root, peak = psutil.Process(child.pid), 0
        while child.poll() is None:
            total = 0
            try:
                tree = [root, *root.children(recursive=True)]
            except psutil.NoSuchProcess:
                break
            for process in tree:
                try:
                    total += process.memory_info().rss
                except (psutil.NoSuchProcess, psutil.AccessDenied):
                    continue
            peak = max(peak, total)
            time.sleep(0.1)
        child.wait()
        elapsed = time.perf_counter() - start
    if child.returncode:
        raise SystemExit(f"{' '.join(command)} failed:\n{log.read_text()[-3000:]}")
    return elapsed, peak / 1024**3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--genes", type=int, default=5_000)
    parser.add_argument("--chunk-size", type=int, default=10_000)
    parser.add_argument("--engines", nargs="+", default=["local", "dask"])
    parser.add_argument(
        "--in-memory-max", type=int, default=100_000, help="largest size also scored in memory"
    )
    parser.add_argument("--workdir", type=Path, help="keep files here (default: a temp dir)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="nkp-million-") as tmp:
        workdir = args.workdir or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        model_dir, counts = train_model(args.genes, workdir)
        pool = cell_pool(counts)
        rows = []
        for n_cells in args.cells:
            path = workdir / f"cells-{n_cells}.h5ad"
            started = time.perf_counter()
            per_cell = write_cells(path, n_cells, pool, list(counts.columns))
            written = time.perf_counter() - started
            gib = path.stat().st_size / 1024**3
            print(f"{n_cells} cells: {per_cell:.0f} stored values/cell, {gib:.2f} GiB, "
                  f"written in {written:.0f} s", file=sys.stderr)  # fmt: skip
            runs = [(engine, engine) for engine in args.engines]
            if n_cells <= args.in_memory_max:
                runs.append(("in memory (read whole)", "memory"))
            for label, engine in runs:
                out = workdir / f"scores-{n_cells}-{engine}.parquet"
                if engine == "memory":
                    command = [sys.executable, "-c", IN_MEMORY, str(model_dir), str(path), str(out)]
                else:
                    command = [
                        sys.executable, "-m", "training.cli", "predict", "--model",
                        str(model_dir), "--expression", str(path), "--out", str(out),
                        "--engine", engine, "--chunk-size", str(args.chunk_size), "--quiet",
                    ]  # fmt: skip
                seconds, peak = run_measured(command, workdir / f"{engine}.log")
                rows.append((n_cells, per_cell, label, seconds, peak))
                print(f"  {label}: {seconds:.0f} s, {peak:.2f} GiB", file=sys.stderr)
                out.unlink()
            path.unlink()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    memory = psutil.virtual_memory().total / 1024**3
    print(f"machine: {platform.machine()}, {cores} cores, {memory:.0f} GiB RAM, "
          f"python {platform.python_version()}; {args.genes} genes, chunk size "
          f"{args.chunk_size}; dask = LocalCluster, {cores} workers x 1 thread")  # fmt: skip
    print("\n| cells | stored values / cell | engine | wall time (s) | cells / s | "
          "peak RSS, all processes (GiB) |")  # fmt: skip
    print("|---:|---:|---|---:|---:|---:|")
    for n_cells, per_cell, label, seconds, peak in rows:
        print(f"| {n_cells:,} | {per_cell:.0f} | {label} | {seconds:.0f} | "
              f"{n_cells / seconds:,.0f} | {peak:.2f} |")  # fmt: skip


if __name__ == "__main__":
    main()
