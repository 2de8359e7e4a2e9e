"""Benchmark: full ``nkpredict train`` wall time, peak memory and accuracy by cohort size.

Each size runs in its own process (``nkpredict train`` on a simulated cohort written as
Parquet), in a fresh temporary MLflow store, so peak memory (max RSS of the child) is that of
one training job. Accuracy columns come from the run's logged metrics: the model, the plain
all-genes XGBoost baseline and the simulator's own probabilities (the best achievable).

Usage::

    python benchmarks/train_scale.py --sizes 200 1000 5000 --genes 20000
    python benchmarks/train_scale.py --sizes 600 --genes 3000   # the demo cohort

Prints a markdown table for BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import mlflow
from mlflow import MlflowClient

from nkpredict.simulate.cohort import simulate_cohort
from nkpredict.simulate.config import SimulationConfig

METRICS = (
    "cv_roc_auc",
    "baseline_xgb_allgenes_cv_roc_auc",
    "baseline_linear_cv_roc_auc",
    "oracle_roc_auc",
)


def run_one(n_samples: int, n_genes: int, repeats: int, workdir: Path) -> dict[str, float]:
    """Simulate, then time one ``nkpredict train`` child process."""
    cohort = simulate_cohort(SimulationConfig(n_samples=n_samples, n_genes=n_genes, seed=0))
    expression = workdir / "expression.parquet"
    labels = workdir / "labels.csv"
    cohort.counts.to_parquet(expression)
    cohort.labels.to_csv(labels)
    uri = f"sqlite:///{workdir / 'mlflow.db'}"
    command = [
        sys.executable, "-m", "training.cli", "train",
        "--expression", str(expression), "--labels", str(labels),
        "--label-column", "resistant", "--tracking-uri", uri,
        "--cv-repeats", str(repeats), "--no-report", "--quiet",
    ]  # fmt: skip
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    start = time.perf_counter()
    subprocess.run(command, check=True, cwd=workdir, stdout=subprocess.DEVNULL)
    elapsed = time.perf_counter() - start
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    mlflow.set_tracking_uri(uri)
    run = MlflowClient(uri).search_runs([mlflow.get_experiment_by_name("nkpredict").experiment_id])[
        0
    ]
    return {
        "seconds": elapsed,
        "peak_gib": max(peak_kib, before) / 1024**2,
        **{m: run.data.metrics.get(m, float("nan")) for m in METRICS},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[200, 1000, 5000])
    parser.add_argument("--genes", type=int, default=20000)
    parser.add_argument("--repeats", type=int, default=3, help="CV repeats (5 folds each)")
    args = parser.parse_args()
    print(
        f"machine: {platform.machine()}, {platform.processor() or 'cpu'}, "
        f"python {platform.python_version()}"
    )
    print(
        "\n| samples | genes | wall time (s) | peak RSS (GiB) | cv_roc_auc | "
        "xgb all genes | linear | oracle |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for size in args.sizes:
        with tempfile.TemporaryDirectory(prefix="nkp-bench-") as tmp:
            r = run_one(size, args.genes, args.repeats, Path(tmp))
        print(
            f"| {size} | {args.genes} | {r['seconds']:.0f} | {r['peak_gib']:.2f} | "
            f"{r['cv_roc_auc']:.3f} | {r['baseline_xgb_allgenes_cv_roc_auc']:.3f} | "
            f"{r['baseline_linear_cv_roc_auc']:.3f} | {r['oracle_roc_auc']:.3f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
