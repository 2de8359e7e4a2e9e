"""Fit time of the model against another checkout of nkpredict, side by side in one run.

Times the fit of ``NKResistanceModel().core()`` on a prepared matrix (what cross-validation runs
once per fold: features and boosted trees; not the final model's domain checks) on simulated
cohorts of several sizes, alternating between this checkout and the one given with
``--other`` (a directory holding another version's ``nkpredict`` package, e.g. made with
``git worktree add /tmp/before <commit>``), each in its own process, and prints the median
seconds and the ratio. Both use one XGBoost thread, as the model does by default, and one
BLAS thread, as the job's parallel fold fits do.

Each process fits once untimed (the first fit of a process also pays for imports and first
calls that later folds of a cross-validation do not), then times ``--fits`` fits with the
process's CPU clock and keeps the fastest; the row is the median of that over ``--repeats``
cohorts (seeds), whose sizes of early-stopped runs differ.

Usage::

    python benchmarks/fit_time.py --other /tmp/before --sizes 120 300 1000 --repeats 5
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent

_CHILD = """
import json, sys, time
from nkpredict.simulate.cohort import simulate_cohort
from nkpredict.simulate.config import SimulationConfig
from nkpredict.model.fitted import NKResistanceModel
n, genes, seed, fits = (int(v) for v in sys.argv[1:5])
cohort = simulate_cohort(SimulationConfig(n_samples=n, n_genes=genes, seed=seed))
model = NKResistanceModel()
matrix = model.prepare(cohort.counts).matrix
labels = cohort.labels["resistant"].to_numpy()
model.core().fit(matrix, labels)
times = []
for _ in range(fits):
    start = time.process_time()
    model.core().fit(matrix, labels)
    times.append(time.process_time() - start)
print(json.dumps({"seconds": min(times)}))
"""


def _time(root: Path, n: int, genes: int, seed: int, fits: int) -> float:
    env = {
        **os.environ,
        "PYTHONPATH": str(root),
        "OPENBLAS_NUM_THREADS": "1",
        "OMP_NUM_THREADS": "1",
    }
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, str(n), str(genes), str(seed), str(fits)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        cwd=root,
    )
    return float(json.loads(done.stdout.strip().splitlines()[-1])["seconds"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--other", type=Path, required=True)
    parser.add_argument("--sizes", nargs="+", type=int, default=[120, 300, 1000])
    parser.add_argument("--genes", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=5, help="cohorts (seeds) per size")
    parser.add_argument("--fits", type=int, default=3, help="timed fits per cohort (fastest kept)")
    args = parser.parse_args()
    print("| samples | this checkout (s) | other (s) | ratio |")
    print("|---:|---:|---:|---:|")
    for n in args.sizes:
        this, other = [], []
        for seed in range(args.repeats):
            this.append(_time(HERE, n, args.genes, seed, args.fits))
            other.append(_time(args.other, n, args.genes, seed, args.fits))
        a, b = statistics.median(this), statistics.median(other)
        print(f"| {n} | {a:.2f} | {b:.2f} | {a / b:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
