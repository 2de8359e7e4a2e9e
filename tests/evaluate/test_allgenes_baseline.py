"""The all-genes baseline is plain early-stopped XGBoost: no biological prior."""

from __future__ import annotations

import numpy as np

from nkpredict.evaluate.baselines import baseline_estimators


def test_all_genes_baseline_has_no_prior() -> None:
    factory = baseline_estimators("classification")["xgb_allgenes"]
    trees = factory()
    rng = np.random.default_rng(0)
    X = rng.normal(size=(80, 30))
    y = (X[:, 0] + rng.normal(size=80) > 0).astype(int)
    trees.fit(X, y)
    assert trees.prior is False and trees.prior_ is None
    assert 0 < trees.n_rounds_ <= trees.n_estimators


def test_all_genes_baseline_stops_early_on_one_grouped_inner_split() -> None:
    """One early-stopped run on an inner split that keeps groups whole chooses the rounds;
    the trees are then refitted on every training sample."""
    trees = baseline_estimators("classification")["xgb_allgenes"]()
    rng = np.random.default_rng(1)
    X = rng.normal(size=(120, 40))
    y = (X[:, 0] + 0.5 * rng.normal(size=120) > 0).astype(int)
    groups = np.repeat(np.arange(30), 4)
    folds = trees.inner_cv_folds(y.astype(np.float32), groups)
    assert len(folds) == 1
    fit, validation = folds[0]
    assert not set(groups[fit]) & set(groups[validation])
    assert 0.1 <= validation.size / y.size <= 0.35
    trees.fit(X, y, groups=groups)
    assert trees.n_rounds_ < trees.n_estimators  # stopped early
    assert trees.booster_.num_boosted_rounds() == trees.n_rounds_  # refitted on all samples
