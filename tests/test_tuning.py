"""Tests for the time-budgeted hyperparameter search."""

from __future__ import annotations

import time

import numpy as np
import pytest

from nkpredict.model.boosting import BoostedTrees, BoostingData
from nkpredict.model.tuning import SEARCH_SPACE


def test_search_runs_inside_fit_within_budget_and_in_range() -> None:
    rng = np.random.default_rng(0)
    values = rng.normal(size=(240, 12))
    target = (values[:, 0] + 0.5 * rng.normal(size=240) > 0).astype(int)
    start = time.perf_counter()
    trees = BoostedTrees(tuning_budget=1.5, n_estimators=200).fit(values, target)
    elapsed = time.perf_counter() - start
    assert elapsed < 15
    assert set(trees.tuned_params_) == set(SEARCH_SPACE)
    for name, (_, low, high) in SEARCH_SPACE.items():
        assert low <= trees.tuned_params_[name] <= high
    assert trees.get_params()["tuning_budget"] == 1.5  # estimator parameters are untouched
    accuracy = (trees.predict(values) == target).mean()
    assert accuracy > 0.75


def test_no_tuning_by_default() -> None:
    values = np.random.default_rng(1).normal(size=(60, 3))
    trees = BoostedTrees(n_estimators=20).fit(values, (values[:, 0] > 0).astype(int))
    assert not hasattr(trees, "tuned_params_")


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_validation_loss_is_finite(task: str) -> None:
    rng = np.random.default_rng(2)
    values = rng.normal(size=(80, 4))
    target = (values[:, 0] > 0).astype(float) if task == "classification" else values[:, 0]
    data = BoostingData(values.astype(np.float32), target.astype(np.float32))
    loss = BoostedTrees(task=task, n_estimators=30).validation_loss(
        data.rows(np.arange(60)), data.rows(np.arange(60, 80))
    )
    assert np.isfinite(loss) and loss >= 0


def test_trial_count_is_reproducible_and_respects_groups() -> None:
    rng = np.random.default_rng(3)
    values = rng.normal(size=(120, 6))
    target = (values[:, 0] + 0.5 * rng.normal(size=120) > 0).astype(int)
    groups = np.repeat(np.arange(40), 3)
    first = BoostedTrees(tuning_trials=4, n_estimators=60).fit(values, target, groups=groups)
    second = BoostedTrees(tuning_trials=4, n_estimators=60).fit(values, target, groups=groups)
    assert first.tuned_params_ == second.tuned_params_  # a count, not the clock
    fit, validation = first.inner_positions(target.astype(float), groups)
    assert not set(groups[fit]) & set(groups[validation])
    capped = BoostedTrees(tuning_trials=10_000, tuning_budget=0.5, n_estimators=30)
    start = time.perf_counter()
    capped.fit(values, target)
    assert time.perf_counter() - start < 10  # the time budget caps a large trial count
