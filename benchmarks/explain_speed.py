"""Explanations per second: XGBoost's native TreeSHAP vs ``shap.TreeExplainer``.

Trains a model on a simulated cohort, simulates an independent cohort of 10,000 samples and
times :func:`nkpredict.explain.tree_shap` (what :func:`nkpredict.explain.explain` runs) for
1, 100 and 10,000 samples with each implementation, plus the whole ``explain()`` call
(features, TreeSHAP, margins, gene values) with ``method="auto"``. Each timing is the median
of several repeats and includes everything a request pays for: DMatrix construction for the
native path, building the ``TreeExplainer`` for the shap path.

Run ``python benchmarks/explain_speed.py`` and paste the printed table into BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections.abc import Callable

import shap
import xgboost as xgb

from nkpredict.explain import AUTO_METHOD, explain, tree_shap
from nkpredict.model import NKResistanceModel
from nkpredict.simulate import SimulationConfig, simulate_cohort

SIZES = (1, 100, 10_000)
TIME_BUDGET_S = 2.0  # per measurement: repeat until this much time is spent (at least 3 runs)
MIN_REPEATS = 3


def median_seconds(call: Callable[[], object]) -> float:
    """Median wall time of ``call`` over repeats filling :data:`TIME_BUDGET_S`."""
    call()  # warm-up (first-call allocations, lazy imports)
    times: list[float] = []
    while len(times) < MIN_REPEATS or sum(times) < TIME_BUDGET_S:
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train-samples", type=int, default=1000)
    parser.add_argument("--n-genes", type=int, default=2000)
    args = parser.parse_args()

    train = simulate_cohort(SimulationConfig(n_samples=args.train_samples, n_genes=args.n_genes))
    model = NKResistanceModel().fit(train.counts, train.labels["resistant"])
    cohort = simulate_cohort(
        SimulationConfig(n_samples=max(SIZES), n_genes=args.n_genes, seed=2024)
    )
    prepared = model.prepare(cohort.counts)
    features = model.features(prepared)
    booster = model.boosted_trees.booster_

    print(
        f"Model: {model.boosted_trees.n_rounds_} trees of depth "
        f"{model.boosted_trees.max_depth}, {features.shape[1]} features "
        f"(trained on {args.train_samples} simulated samples). "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; "
        f"xgboost {xgb.__version__}, shap {shap.__version__}; auto = {AUTO_METHOD}.\n"
    )
    print(
        "| samples | native TreeSHAP (expl/s) | shap.TreeExplainer (expl/s) | native speed-up "
        "| explain(), auto, end-to-end (expl/s) |"
    )
    print("|---:|---:|---:|---:|---:|")
    for n in SIZES:
        block = features.iloc[:n]
        native = median_seconds(lambda b=block: tree_shap(booster, b, "native"))
        other = median_seconds(lambda b=block: tree_shap(booster, b, "shap"))
        whole = median_seconds(lambda p=prepared.rows(slice(0, n)): explain(model, p))
        print(
            f"| {n:,} | {n / native:,.0f} | {n / other:,.0f} | {other / native:.1f}x "
            f"| {n / whole:,.0f} |"
        )


if __name__ == "__main__":
    main()
