"""Fit time of the model against another checkout of nkpredict, side by side in one run.

Times the fit of ``NKResistanceModel().core()`` on a prepared matrix (what cross-validation runs
once per fold: features and boosted trees; not the final model's domain checks) on simulated
cohorts of several sizes, alternating between this checkout and the one given with
``--other`` (a directory holding another version's ``nkpredict`` package, e.g. made with
``git worktree add /tmp/before <commit>``), each in its own process, and prints the median
seconds and the ratio. Both use one XGBoost thread, as the model does by default.

Usage::

    python benchmarks/fit_time.py --other /tmp/before --sizes 120 300 1000 --repeats 3
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
n, genes, seed = (int(v) for v in sys.argv[1:4])
cohort = simulate_cohort(SimulationConfig(n_samples=n, n_genes=genes, seed=seed))
model = NKResistanceModel()
matrix = model.prepare(cohort.counts).matrix
start = time.perf_counter()
model.core().fit(matrix, cohort.labels["resistant"].to_numpy())
print(json.dumps({"seconds": time.perf_counter() - start}))
"""


def _time(root: Path, n: int, genes: int, seed: int) -> float:
    env = {**os.environ, "PYTHONPATH": str(root)}
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, str(n), str(genes), str(seed)],
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
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print("| samples | this checkout (s) | other (s) | ratio |")
    print("|---:|---:|---:|---:|")
    for n in args.sizes:
        this, other = [], []
        for seed in range(args.repeats):
            this.append(_time(HERE, n, args.genes, seed))
            other.append(_time(args.other, n, args.genes, seed))
        a, b = statistics.median(this), statistics.median(other)
        print(f"| {n} | {a:.2f} | {b:.2f} | {a / b:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
