"""Explanations per second: compiled TreeSHAP vs XGBoost's native TreeSHAP vs ``shap``.

Trains a model on a simulated cohort, simulates an independent cohort of 10,000 samples and
times :func:`nkpredict.explain.attributions.tree_shap` (what
:func:`nkpredict.explain.attributions.explain` runs) for
1, 100 and 10,000 samples with each implementation (``compiled``: the tables of
:mod:`nkpredict.fast.shap`; ``native``: XGBoost's ``pred_contribs``; ``shap``:
``shap.TreeExplainer``), plus the whole ``explain()`` call (features, TreeSHAP, margins, gene
values, labelled tables) with ``method="auto"``. Each timing is the median of several repeats
and includes everything a request pays for: DMatrix construction for the native path,
building the ``TreeExplainer`` for the shap path (the compiled tables are built once per
model, like at service start-up; their build time is printed).

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

from nkpredict.explain.attributions import AUTO_METHOD, compiled_shap, explain, tree_shap
from nkpredict.model.fitted import NKResistanceModel
from nkpredict.simulate.cohort import simulate_cohort
from nkpredict.simulate.config import SimulationConfig

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
    started = time.perf_counter()
    if compiled_shap(booster) is None:
        raise SystemExit("this model cannot be compiled: nothing to compare")
    build_s = time.perf_counter() - started

    print(
        f"Model: {model.boosted_trees.n_rounds_} trees of depth "
        f"{model.boosted_trees.max_depth}, {features.shape[1]} features "
        f"(trained on {args.train_samples} simulated samples). "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; "
        f"xgboost {xgb.__version__}, shap {shap.__version__}; auto = {AUTO_METHOD}; compiled "
        f"tables built in {build_s * 1e3:.0f} ms.\n"
    )
    print(
        "| samples | compiled (expl/s) | native XGBoost (expl/s) | shap.TreeExplainer (expl/s) "
        "| compiled / native | explain(), auto, end-to-end (expl/s) |"
    )
    print("|---:|---:|---:|---:|---:|---:|")
    for n in SIZES:
        block = features.iloc[:n]
        compiled = median_seconds(lambda b=block: tree_shap(booster, b, "compiled"))
        native = median_seconds(lambda b=block: tree_shap(booster, b, "native"))
        other = median_seconds(lambda b=block: tree_shap(booster, b, "shap"))
        whole = median_seconds(lambda p=prepared.rows(slice(0, n)): explain(model, p))
        print(
            f"| {n:,} | {n / compiled:,.0f} | {n / native:,.0f} | {n / other:,.0f} "
            f"| {native / compiled:.1f}x | {n / whole:,.0f} |"
        )


if __name__ == "__main__":
    main()
