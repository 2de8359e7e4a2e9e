"""Benchmark: the full ``nkpredict train`` job next to a hand-written all-genes XGBoost CV.

For each cohort size, one simulated cohort (written as Parquet) is used by two child
processes, one after the other in the same run:

* **the job**: ``nkpredict train`` with every baseline, ``--cv-repeats`` repeats of 5-fold
  cross-validation, leave-one-lineage-out, the final fit and MLflow logging (a fresh SQLite
  store; ``--no-report``), with ``--n-jobs`` (default: one worker per core);
* **the hand-written CV**: what a user would write without the tool: read the Parquet file,
  log2(CPM + 1), 5-fold ``StratifiedKFold`` of ``XGBClassifier(n_estimators=300,
  tree_method="hist", n_jobs=<cores>)`` on all genes, ROC AUC of the pooled predictions.

The machine is shared, so what is comparable is the ratio of the two in one run. Peak memory
is the largest proportional set size (PSS) of a child and all its descendants, summed
(sampled once a second): pages the job's workers share (the memory-mapped matrix) count once in
all, as they take memory once; the summed resident size, which counts them once per process,
is printed as a comment too. Accuracy columns come from the job's logged metrics: the
model, the all-genes XGBoost baseline, the simulator's own probabilities (the best
achievable), and the hand-written CV's ROC AUC.

Usage::

    python benchmarks/train_scale.py --sizes 500 --genes 10000
    python benchmarks/train_scale.py --sizes 1000 --genes 20000
    python benchmarks/train_scale.py --sizes 5000 --genes 20000 --job-only
    python benchmarks/train_scale.py --sizes 600 --genes 3000   # the demo cohort

Prints a markdown table for BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import mlflow
import psutil
from mlflow import MlflowClient

from nkpredict.simulate.cohort import simulate_cohort
from nkpredict.simulate.config import SimulationConfig

METRICS = (
    "cv_roc_auc",
    "baseline_xgb_allgenes_cv_roc_auc",
    "baseline_linear_cv_roc_auc",
    "oracle_roc_auc",
)
REFERENCE_TREES = 300
REFERENCE_FOLDS = 5


def _tree_memory(process: psutil.Process) -> tuple[int, int]:
    """Proportional set size (PSS: a page shared by k processes counts 1/k in each) and
    resident bytes, each summed over ``process`` and its descendants."""
    pss = rss = 0
    try:
        members = [process, *process.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0, 0
    for member in members:
        try:
            info = member.memory_full_info()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        pss += getattr(info, "pss", info.rss)
        rss += info.rss
    return pss, rss


def timed_child(command: list[str], cwd: Path) -> tuple[float, float, str]:
    """Run ``command``; return wall seconds, peak tree PSS in GiB and its stdout."""
    start = time.perf_counter()
    child = subprocess.Popen(command, cwd=cwd, stdout=subprocess.PIPE, text=True)
    peak = peak_rss = 0
    done = threading.Event()

    def watch() -> None:
        nonlocal peak, peak_rss
        process = psutil.Process(child.pid)
        while not done.is_set():
            pss, rss = _tree_memory(process)
            peak, peak_rss = max(peak, pss), max(peak_rss, rss)
            done.wait(1.0)  # reading smaps costs CPU: sample once a second

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    out, _ = child.communicate()
    elapsed = time.perf_counter() - start
    done.set()
    watcher.join()
    if child.returncode != 0:
        raise SystemExit(f"{command[:4]} failed with exit code {child.returncode}")
    print(
        f"<!-- {' '.join(command[1:4])}: peak PSS {peak / 1024**3:.2f} GiB, "
        f"peak RSS summed over processes {peak_rss / 1024**3:.2f} GiB -->",
        flush=True,
    )
    return elapsed, peak / 1024**3, out


def run_job(workdir: Path, repeats: int, n_jobs: int) -> dict[str, float]:
    """One ``nkpredict train`` child process on the cohort in ``workdir``."""
    uri = f"sqlite:///{workdir / 'mlflow.db'}"
    command = [
        sys.executable, "-m", "training.cli", "train",
        "--expression", str(workdir / "expression.parquet"),
        "--labels", str(workdir / "labels.csv"),
        "--label-column", "resistant", "--tracking-uri", uri,
        "--cv-repeats", str(repeats), "--n-jobs", str(n_jobs), "--no-report", "--quiet",
    ]  # fmt: skip
    seconds, peak, _ = timed_child(command, workdir)
    mlflow.set_tracking_uri(uri)
    experiment = mlflow.get_experiment_by_name("nkpredict")
    run = MlflowClient(uri).search_runs([experiment.experiment_id])[0]
    return {
        "seconds": seconds,
        "peak_gib": peak,
        **{m: run.data.metrics.get(m, float("nan")) for m in METRICS},
    }


def run_reference(workdir: Path) -> dict[str, float]:
    """The hand-written CV (``--reference-cv`` of this script) as a child process."""
    command = [sys.executable, __file__, "--reference-cv", str(workdir)]
    seconds, peak, out = timed_child(command, workdir)
    return {"seconds": seconds, "peak_gib": peak, **json.loads(out.strip().splitlines()[-1])}


def reference_cv(workdir: Path) -> None:
    """What a user writes by hand: all genes, 5-fold CV of a 300-tree XGBoost (prints JSON)."""
    import numpy as np
    import pandas as pd
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold
    from xgboost import XGBClassifier

    counts = pd.read_parquet(workdir / "expression.parquet")
    labels = pd.read_csv(workdir / "labels.csv", index_col=0)["resistant"]
    y = labels.loc[counts.index].to_numpy()
    values = counts.to_numpy(dtype=np.float64)
    x = np.log2(values / values.sum(axis=1, keepdims=True) * 1e6 + 1.0).astype(np.float32)
    predicted = np.zeros(y.shape[0])
    folds = StratifiedKFold(n_splits=REFERENCE_FOLDS, shuffle=True, random_state=0)
    for train, test in folds.split(x, y):
        model = XGBClassifier(
            n_estimators=REFERENCE_TREES,
            tree_method="hist",
            n_jobs=len(os.sched_getaffinity(0)),
            random_state=0,
        )
        model.fit(x[train], y[train])
        predicted[test] = model.predict_proba(x[test])[:, 1]
    print(json.dumps({"roc_auc": float(roc_auc_score(y, predicted))}))


def write_cohort(n_samples: int, n_genes: int, workdir: Path) -> None:
    cohort = simulate_cohort(SimulationConfig(n_samples=n_samples, n_genes=n_genes, seed=0))
    cohort.counts.to_parquet(workdir / "expression.parquet")
    cohort.labels.to_csv(workdir / "labels.csv")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[500, 1000])
    parser.add_argument("--genes", type=int, default=20000)
    parser.add_argument("--repeats", type=int, default=3, help="CV repeats (5 folds each)")
    parser.add_argument("--n-jobs", type=int, default=-1, help="the job's --n-jobs")
    parser.add_argument("--job-only", action="store_true", help="skip the hand-written CV")
    parser.add_argument("--reference-cv", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.reference_cv is not None:
        reference_cv(args.reference_cv)
        return
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, "
        f"{psutil.virtual_memory().total / 1024**3:.0f} GiB, python {platform.python_version()}, "
        f"load average before: {os.getloadavg()[0]:.1f}"
    )
    print(
        "\n| samples | genes | job (s) | hand-written CV (s) | job / hand-written | "
        "job peak (GiB) | hand-written peak (GiB) | cv_roc_auc | xgb all genes | "
        "hand-written AUC | oracle |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for size in args.sizes:
        with tempfile.TemporaryDirectory(prefix="nkp-bench-") as tmp:
            workdir = Path(tmp)
            write_cohort(size, args.genes, workdir)
            job = run_job(workdir, args.repeats, args.n_jobs)
            nan = float("nan")
            ref = (
                {"seconds": nan, "peak_gib": nan, "roc_auc": nan}
                if args.job_only
                else run_reference(workdir)
            )
        print(
            f"| {size} | {args.genes} | {job['seconds']:.0f} | {ref['seconds']:.0f} | "
            f"{job['seconds'] / ref['seconds']:.2f} | {job['peak_gib']:.2f} | "
            f"{ref['peak_gib']:.2f} | {job['cv_roc_auc']:.3f} | "
            f"{job['baseline_xgb_allgenes_cv_roc_auc']:.3f} | {ref['roc_auc']:.3f} | "
            f"{job['oracle_roc_auc']:.3f} |",
            flush=True,
        )
    print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
