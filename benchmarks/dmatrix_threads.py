"""Fit time of the boosted trees with XGBoost matrices built on all cores or on the run's threads.

Every boosting run builds its XGBoost matrices (:meth:`BoostingData.dmatrix`). Built with
XGBoost's default thread count (every core's OpenMP threads) a small matrix can cost tens of
milliseconds when other processes share the cores; :func:`nkpredict.model.boosting.boost` now
builds them with the run's own ``nthread``. This script fits the default learner
(``BoostedTrees()``: prior, five inner folds, early stopping) on the NK features of a simulated
cohort both ways, alternating, and prints the median fit times, their ratio, and whether the
two fits predict the same (they must: the matrix is the same).

    .venv/bin/python benchmarks/dmatrix_threads.py [--samples 120] [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from typing import Any

import numpy as np
import xgboost as xgb

from nkpredict.data.expression import prepare_expression
from nkpredict.features.builder import NKFeatureBuilder
from nkpredict.model.boosting import BoostedTrees, BoostingData, use_trainer
from nkpredict.simulate.cohort import simulate_cohort
from nkpredict.simulate.config import SimulationConfig

ALL = "all cores"
OWN = "run's threads"


def _all_cores_trainer(
    params: dict[str, Any],
    train: BoostingData,
    num_boost_round: int,
    validation: BoostingData | None,
    early_stopping_rounds: int | None,
) -> xgb.Booster:
    """:func:`xgboost.train` with matrices built on XGBoost's default threads (the old way)."""
    evals = [] if validation is None else [(validation.dmatrix(None), "validation")]
    return xgb.train(
        params,
        train.dmatrix(None),
        num_boost_round=num_boost_round,
        evals=evals,
        early_stopping_rounds=early_stopping_rounds,
        verbose_eval=False,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=120)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    cohort = simulate_cohort(SimulationConfig(n_samples=args.samples, n_genes=500, seed=0))
    features = NKFeatureBuilder().fit_transform(prepare_expression(cohort.counts).matrix)
    X, y = features.to_numpy(), cohort.labels["resistant"].to_numpy()
    times: dict[str, list[float]] = {ALL: [], OWN: []}
    margins: dict[str, np.ndarray] = {}
    for _ in range(args.repeats):
        for name in times:
            start = time.perf_counter()
            if name == ALL:
                with use_trainer(_all_cores_trainer):
                    trees = BoostedTrees().fit(X, y)
            else:
                trees = BoostedTrees().fit(X, y)
            times[name].append(time.perf_counter() - start)
            margins[name] = trees.predict_margin(X)
    medians = {name: statistics.median(values) for name, values in times.items()}
    print(f"cores {os.cpu_count()}, load {os.getloadavg()[0]:.1f}, X {X.shape}")
    for name, median in medians.items():
        print(f"{name:>14}: median of {args.repeats} fits {median * 1000:8.1f} ms")
    print(f"ratio {ALL} / {OWN}: {medians[ALL] / medians[OWN]:.1f}x")
    print(f"same predictions: {np.array_equal(margins[ALL], margins[OWN])}")


if __name__ == "__main__":
    main()
